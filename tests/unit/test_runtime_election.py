"""The runner in the election under fake loop time: its timer, the advertisements it hears, its public surface."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from keepvip_agent.vrrp.packet import (
    VRRP_GROUP_V4,
)
from keepvip_agent.vrrp.router import State
from keepvip_api.model import OnFailure
from keepvip_harness.runtime_rig import (
    EPS,
    HIGHER,
    LOWER,
    MDI_100,
    OURS,
    VIP,
    Rig,
    advert,
    now,
    run,
    virtualip,
)


def test_fake_loop_time_costs_no_real_time() -> None:
    async def main() -> None:
        t0 = now()
        await asyncio.sleep(3600)
        assert now() - t0 == pytest.approx(3600, abs=1e-3)

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 1.0


# -- master-down timer (RFC 9568 6.4.2) ----------------------------------------------------


def test_master_down_timer_makes_a_silent_backup_master() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        t0 = await rig.start()
        assert rig.runner.state is State.BACKUP
        await asyncio.sleep(MDI_100 - 0.01)
        assert rig.runner.state is State.BACKUP and rig.sock.sent == []
        await asyncio.sleep(0.02)
        assert rig.runner.state is State.MASTER
        # Exactly on time: armed a millisecond early (epoll rounds up), the rest waited out.
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=1e-4)
        # The advertisement the router built, to the VRRP group, then the VIP and its GARPs.
        _, adv, dst = rig.sock.sent[0]
        assert (adv.version, adv.vrid, adv.priority, adv.interval_cs, adv.addresses) == (
            3, 51, 100, 100, (VIP.ip,),
        )  # fmt: skip
        assert dst == VRRP_GROUP_V4
        assert rig.kernel.bound == {VIP}
        await asyncio.sleep(3.0)
        sent = [t for t, _, _ in rig.sock.sent]
        assert [round(b - a, 3) for a, b in itertools.pairwise(sent)] == [1.0, 1.0, 1.0]
        garps = [round(t - rig.master_at(), 3) for t, _ in rig.announcer.frames]
        assert garps == [0.0, 0.05, 0.1]  # announce.count 3, 50 ms apart
        assert [(r.old, r.new, r.reason) for r in rig.runner.transitions] == [
            (State.INITIALIZE, State.BACKUP, "startup"),
            (State.BACKUP, State.MASTER, "master down timer expired"),
        ]
        assert rig.records == list(rig.runner.transitions)

    run(main)


# -- advertisement received: a backup (6.4.2) -----------------------------------------------


def test_backup_hearing_a_higher_priority_master_stays_backup() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        for _ in range(10):
            rig.hear(advert(150), HIGHER)
            heard = now()
            await asyncio.sleep(1.0)
        assert rig.runner.state is State.BACKUP
        assert rig.sock.sent == [] and rig.kernel.bound == set()
        assert dict(rig.runner.last_heard) == pytest.approx({HIGHER: heard}, abs=EPS)
        # The master falls silent: take over one master-down interval after its last word.
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER
        assert rig.master_at() == pytest.approx(heard + MDI_100, abs=EPS)

    run(main)


def test_backup_without_preempt_keeps_a_lower_priority_master() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        for _ in range(10):
            rig.hear(advert(50), LOWER)
            await asyncio.sleep(1.0)
        assert rig.runner.state is State.BACKUP and rig.sock.sent == []

    run(main)


def test_backup_with_preempt_displaces_a_lower_priority_master() -> None:
    async def main() -> None:
        rig = Rig(virtualip(preempt=True))
        t0 = await rig.start()
        for _ in range(6):
            rig.hear(advert(50), LOWER)
            await asyncio.sleep(1.0)
        # The lower master's adverts are discarded: the timer from startup runs out.
        assert rig.runner.state is State.MASTER
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=EPS)

    run(main)


# -- advertisement received: a master (6.4.3) -----------------------------------------------


def test_master_hearing_a_lower_priority_master_stays_and_announces_again() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        await asyncio.sleep(1.0)
        before = len(rig.announcer.frames)
        rig.hear(advert(50), LOWER)
        await asyncio.sleep(0.5)
        assert rig.runner.state is State.MASTER and rig.kernel.bound == {VIP}
        assert len(rig.announcer.frames) == before + 3  # a whole burst
        # At most once per advertisement interval.
        rig.hear(advert(50), LOWER)
        await asyncio.sleep(0.2)
        assert len(rig.announcer.frames) == before + 3

    run(main)


def test_master_hearing_a_higher_priority_master_steps_down() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        sent = len(rig.sock.sent)
        rig.hear(advert(150), HIGHER)
        await asyncio.sleep(0.01)
        # One last advertisement at our own priority, then the VIP goes.
        assert rig.sock.priorities()[sent:] == [100]
        assert rig.runner.state is State.BACKUP
        assert rig.kernel.bound == set()
        last = rig.runner.transitions[-1]
        assert (last.old, last.new) == (State.MASTER, State.BACKUP)
        assert last.reason == f"higher priority master {HIGHER} (priority 150)"
        await asyncio.sleep(2.0)
        assert len(rig.sock.sent) == sent + 1  # a backup is silent

    run(main)


def test_equal_priorities_are_decided_by_the_higher_source_address() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        rig.hear(advert(100), LOWER)
        assert rig.runner.state is State.MASTER
        rig.hear(advert(100), HIGHER)
        assert rig.runner.state is State.BACKUP

    run(main)


def test_unicast_adverts_go_to_each_peer() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        rig.runner.set_peers(frozenset({LOWER, HIGHER}))
        await asyncio.sleep(MDI_100 + 0.01)
        assert {dst for _, _, dst in rig.sock.sent} == {LOWER, HIGHER}

    run(main)


# -- the public surface ----------------------------------------------------------------------


def test_the_public_surface() -> None:
    async def main() -> None:
        rig = Rig(virtualip(priority=120))
        await rig.elected()
        r = rig.runner
        assert (r.name, r.node, r.family, r.source) == ("web", "node-a", 4, OURS)
        assert (r.state, r.priority, r.faults) == (State.MASTER, 120, frozenset())
        assert [t.new for t in r.transitions] == [State.BACKUP, State.MASTER]
        with pytest.raises(TypeError):
            r.last_heard[HIGHER] = 0.0  # type: ignore[index]
        r.health.report("extra", False, OnFailure(action="demote", weight=20), "failing")
        assert r.priority == 100
        r.health.forget("extra")
        assert r.priority == 120

    run(main)
