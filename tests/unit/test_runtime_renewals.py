"""Address lifetime renewals in batches, under fake loop time."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from ipaddress import IPv4Interface
from typing import Any

import pytest

from keepvip_agent.runtime.renewals import Renewals
from keepvip_harness.runtime_rig import VIP, Rig, now, run, virtualip

A, B, C = (IPv4Interface(f"198.51.100.{k}/32") for k in (1, 2, 3))
LIFETIME = 6  # seconds: a period of 2 s


class Writer:
    def __init__(self) -> None:
        self.batches: list[tuple[float, tuple[Any, ...]]] = []
        self.refuse: set[IPv4Interface] = set()

    def renew(self, items: Sequence[tuple[int, Any, int]]) -> list[tuple[int, OSError]]:
        self.batches.append((now(), tuple(a for _, a, _ in items)))
        return [
            (n, OSError(19, "No such device"))
            for n, (_, a, _) in enumerate(items)
            if a in self.refuse
        ]

    def times(self, address: IPv4Interface) -> list[float]:
        return [t for t, addrs in self.batches if address in addrs]


def test_vips_bound_at_different_times_fall_into_one_batch_and_never_lapse() -> None:
    async def main() -> None:
        writer = Writer()
        renewals = Renewals(writer)
        bound = {}
        for address, delay in ((A, 0.0), (B, 0.7), (C, 1.3)):
            await asyncio.sleep(delay)
            bound[address] = now()
            renewals.keep("x", 1, [address], LIFETIME, lambda: True)
        await asyncio.sleep(20)
        for address in (A, B, C):
            times = [bound[address], *writer.times(address)]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            # Never later than a third of the lifetime, never earlier than a sixth.
            assert all(LIFETIME / 6 - 1e-3 <= g <= LIFETIME / 3 + 1e-3 for g in gaps), gaps
        # After the first round all three go together: one sendmsg per period.
        last = writer.batches[-5:]
        assert all(addrs == (A, B, C) or set(addrs) == {A, B, C} for _, addrs in last)
        assert len(writer.batches) <= 20 / (LIFETIME / 3) + 3

    run(main)


def test_only_masters_renew_and_a_forgotten_lease_stops() -> None:
    async def main() -> None:
        writer = Writer()
        renewals = Renewals(writer)
        master = {"a": True, "b": False}
        la = renewals.keep("a", 1, [A], LIFETIME, lambda: master["a"])
        renewals.keep("b", 1, [B], LIFETIME, lambda: master["b"])
        await asyncio.sleep(5)
        assert writer.times(A) and not writer.times(B)
        renewals.forget(la)
        master["b"] = True
        seen = len(writer.times(A))
        await asyncio.sleep(5)
        assert len(writer.times(A)) == seen and writer.times(B)

    run(main)


def test_a_refused_renewal_is_logged_with_its_instance(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        writer = Writer()
        writer.refuse = {B}
        renewals = Renewals(writer)
        renewals.keep("ns/a", 1, [A], LIFETIME, lambda: True)
        renewals.keep("ns/b", 1, [B], LIFETIME, lambda: True)
        await asyncio.sleep(2.5)

    with caplog.at_level(logging.ERROR):
        run(main)
    assert [r.getMessage() for r in caplog.records] == [
        "ns/b: cannot renew address lifetime: [Errno 19] No such device"
    ]


def test_a_master_renews_its_vip_and_stops_when_it_steps_down() -> None:
    async def main() -> None:
        rig = Rig(virtualip(addressLifetime="3s"))
        await rig.elected()
        await asyncio.sleep(5)
        renewed = [t for t, what, addrs in rig.kernel.log if what == "renew" and VIP in addrs]
        assert len(renewed) >= 4  # every 0.5 to 1 s
        await rig.runner.stop()
        stopped = now()
        await asyncio.sleep(5)
        assert not [t for t, what, _ in rig.kernel.log if what == "renew" and t > stopped]

    run(main)
