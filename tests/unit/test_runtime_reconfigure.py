"""A changed VirtualIP applied in place under fake loop time: a master stays master."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import (
    VIP,
    VIP2,
    Rig,
    check,
    run,
    scripted_probe,
    virtualip,
)


def test_reconfigure_moves_the_addresses_of_a_master() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        assert rig.runner.reconfigure(virtualip(addresses=[str(VIP2.ip), str(VIP.ip)]))
        await asyncio.sleep(0.01)
        assert rig.kernel.bound == {VIP, VIP2}
        assert VIP2 in {a for _, a in rig.announcer.frames}
        assert rig.runner.reconfigure(virtualip(addresses=[str(VIP2.ip)]))
        await asyncio.sleep(1.0)
        assert rig.kernel.bound == {VIP2}
        assert rig.runner.state is State.MASTER
        # The advertisement carries the new list.
        assert rig.sock.sent[-1][1].addresses == (VIP2.ip,)

    run(main)


def test_reconfigure_priority_of_a_master_is_advertised_at_once() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        await asyncio.sleep(0.5)
        sent = len(rig.sock.sent)
        assert rig.runner.reconfigure(virtualip(priority=150))
        assert rig.runner.priority == 150 == rig.runner.health.configured
        assert rig.sock.priorities()[sent:] == [150]
        assert rig.runner.state is State.MASTER

    run(main)


def test_reconfigure_interval_changes_the_advertisements() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        assert rig.runner.reconfigure(virtualip(advertInterval="500ms"))
        await asyncio.sleep(1.05)  # the adver timer armed at 1 s fires once more
        sent = len(rig.sock.sent)
        await asyncio.sleep(2.0)
        new = rig.sock.sent[sent:]
        assert [adv.interval_cs for _, adv, _ in new] == [50] * 4
        times = [t for t, _, _ in new]
        assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [0.5] * 3

    run(main)


def test_reconfigure_checks_of_a_running_master(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_probe(monkeypatch, {"db": (False, "connection refused")}, takes=0.5)

    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        db = check("db", {"action": "fault"})
        assert rig.runner.reconfigure(virtualip(checks=[db]))
        # A check added to a serving master counts from its first result on.
        await asyncio.sleep(0.4)
        assert rig.runner.state is State.MASTER and rig.runner.faults == frozenset()
        await asyncio.sleep(0.2)
        assert rig.runner.state is State.FAULT
        assert rig.runner.faults == frozenset({"db: connection refused"})
        # Removed: forgotten, and the node rejoins.
        assert rig.runner.reconfigure(virtualip())
        assert rig.runner.state is State.BACKUP and rig.runner.faults == frozenset()

    run(main)


def test_reconfigure_refuses_a_different_virtual_router() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        assert not rig.runner.reconfigure(virtualip(virtualRouterID=52))
        assert not rig.runner.reconfigure(virtualip(version=2))

    run(main)
