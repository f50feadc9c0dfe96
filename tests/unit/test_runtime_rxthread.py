"""The runner with the receive thread: what it hands over, what it takes back, and when.

The thread itself is tested on real sockets in test_rxwatch.py and on the
kernel in the netns tier; here a scripted stand-in (``ScriptedThread``: the
:class:`~keepvip_agent.runtime.rxwatch.RxWatch` surface the runner uses, with
its repeats, sends and ends played by the test) lets the loop run on fake time,
so each assertion is an exact time: a backup whose repeats the thread absorbed
must take over exactly a master-down interval after the last of them, however
the thread gives its timer back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from keepvip_agent.vrrp.packet import VRRP_GROUP_V4, decode
from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import EPS, HIGHER, MDI_100, OURS, Rig, advert, now, run, virtualip


@dataclass
class Handed:
    owner: Any
    sending: bool
    args: tuple[Any, ...]
    count: int = 0
    last: float | None = None
    peeked: int = 0
    active: bool = True


@dataclass
class ScriptedThread:
    """The receive thread as the runner sees it; the test plays its repeats, sends and ends."""

    slots: list[Handed] = field(default_factory=list)

    def expect(self, owner: Any, *args: Any) -> int:
        self.slots.append(Handed(owner, False, args))
        return len(self.slots) - 1

    def send_every(self, owner: Any, *args: Any) -> int:
        self.slots.append(Handed(owner, True, args))
        return len(self.slots) - 1

    def send_errors(self, slot: int) -> tuple[int, int] | None:
        return (0, 0) if self.slots[slot].active else None

    def withdraw(self, slot: int) -> tuple[int, float | None]:
        h = self.slots[slot]
        assert h.active, "withdrawn twice"
        h.active = False
        return h.count - h.peeked, h.last

    def peek(self, slot: int) -> tuple[int, float | None]:
        h = self.slots[slot]
        n, h.peeked = h.count - h.peeked, h.count
        return n, h.last

    # -- what the test plays ------------------------------------------------------------

    def current(self) -> Handed:
        live = [h for h in self.slots if h.active]
        assert len(live) == 1, live
        return live[0]

    def repeat(self, at: float, due: float | None = None) -> None:
        """The thread absorbed one repeat (backup) or sent one advert due at ``due`` (master)."""
        h = self.current()
        h.count += 1
        h.last = due if due is not None else at

    def end(self, expired: bool) -> None:
        h = self.current()
        h.active = False
        h.owner.expectation_ended(expired, (h.count - h.peeked, h.last))


def state(rig: Rig) -> State:
    return rig.runner.state


def rig_with_thread(**spec: Any) -> tuple[Rig, ScriptedThread]:
    rig = Rig(virtualip(**spec))
    thread = ScriptedThread()
    rig.sock.rx = thread
    rig.sock.current_key = b"the master's bytes"
    return rig, thread


def test_a_backup_hands_its_timer_over_and_takes_over_a_master_down_after_the_last_repeat() -> None:
    async def main() -> None:
        rig, thread = rig_with_thread()
        await rig.start()
        rig.hear(advert(150), HIGHER)
        h = thread.current()
        assert not h.sending and h.args[2] == b"the master's bytes"
        assert h.args[3:] == (pytest.approx(now(), abs=EPS), pytest.approx(MDI_100))
        for _ in range(10):  # ten seconds of repeats in the thread; no timer in Python
            await asyncio.sleep(1.0)
            thread.repeat(now())
        last = now()
        assert state(rig) is State.BACKUP
        assert dict(rig.runner.last_heard) == pytest.approx({HIGHER: last}, abs=EPS)
        await asyncio.sleep(MDI_100 - 0.1)
        thread.end(expired=True)  # the thread's deadline (played a little early: no take-over)
        assert state(rig) is State.BACKUP
        await asyncio.sleep(0.2)  # the Python timer it got back runs out
        assert state(rig) is State.MASTER
        assert rig.master_at() == pytest.approx(last + MDI_100, abs=EPS)

    run(main)


def test_anything_else_reaching_the_router_first_takes_the_timer_back_with_the_repeats() -> None:
    async def main() -> None:
        rig, thread = rig_with_thread()
        await rig.start()
        rig.hear(advert(150), HIGHER)
        for _ in range(5):
            await asyncio.sleep(1.0)
            thread.repeat(now())
        last = now()
        await asyncio.sleep(0.5)
        rig.runner.set_peers(frozenset({HIGHER}))  # the master is still a peer: a no-op
        assert not thread.slots[0].active  # taken back, and the router knows the last repeat
        assert state(rig) is State.BACKUP
        await asyncio.sleep(MDI_100 - 0.5 - 0.01)
        assert state(rig) is State.BACKUP
        await asyncio.sleep(0.02)
        assert state(rig) is State.MASTER
        assert rig.master_at() == pytest.approx(last + MDI_100, abs=EPS)

    run(main)


def test_a_master_hands_its_adverts_over_and_the_router_keeps_their_cadence() -> None:
    async def main() -> None:
        rig, thread = rig_with_thread(preempt=True)
        rig.sock.current_key = None
        await rig.elected()
        assert len(rig.sock.sent) == 1  # the take-over advert, from Python; the rest handed over
        h = thread.current()
        assert h.sending
        _fd, family, ifindex, src, packets, interval, first = h.args
        assert (family, ifindex, src, interval) == (4, 7, OURS.packed, 1.0)
        assert first == pytest.approx(rig.master_at() + 1.0, abs=EPS)
        ((payload, dst),) = packets
        assert dst == VRRP_GROUP_V4.packed and decode(payload, OURS, VRRP_GROUP_V4).priority == 100
        for k in range(3):  # the thread sends three, on their schedule
            await asyncio.sleep(1.0)
            thread.repeat(now(), due=first + k)
        assert len(rig.sock.sent) == 1  # nothing from Python meanwhile
        await asyncio.sleep(0.5)
        thread.end(expired=False)  # the socket went away: Python's timer again
        await asyncio.sleep(0.6)
        assert len(rig.sock.sent) == 2
        assert rig.sock.sent[-1][0] == pytest.approx(first + 3, abs=EPS)  # the cadence kept
        assert thread.current().args[6] == pytest.approx(first + 4, abs=EPS)  # handed again

    run(main)


def test_a_master_that_hears_a_better_one_takes_its_adverts_back_first() -> None:
    async def main() -> None:
        rig, thread = rig_with_thread()
        rig.sock.current_key = None
        await rig.elected()
        first = thread.current().args[6]
        for k in range(2):
            await asyncio.sleep(1.0)
            thread.repeat(now(), due=first + k)
        rig.hear(advert(150), HIGHER)
        assert not thread.slots[0].active
        assert state(rig) is State.BACKUP
        await asyncio.sleep(0.1)
        assert not rig.kernel.bound

    run(main)
