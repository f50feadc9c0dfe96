"""The instance runner with fake adapters under fake loop time: every path, no root, no sleeping.

The runner is driven as production drives it (its port hands it
advertisements, its own timer fires, its checks report), but the adapters
are fakes: a VRRP socket that records what is sent and what is dropped, an
announcer that records the addresses announced, and an address writer that
keeps a set of bound VIPs. Sent payloads are decoded again with the real
codec, so the advertisement the router built is checked byte for byte.

Time is the event loop's: :class:`FakeTimeLoop` (after kopf's ``looptime``)
jumps its clock ahead whenever everything is idle, so a 10 s scenario runs in
milliseconds and timer deadlines are met exactly. Its clock also ticks a
microsecond per reading, like a real one that moves while code runs: the
runner waits out the last millisecond before a take-over by reading the
clock (see ``TAKEOVER_LEAD``), which a frozen clock would never end.
"""

from __future__ import annotations

import asyncio
import itertools
import selectors
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest

from keepvip_agent.health import HealthBoard
from keepvip_agent.runtime import checks
from keepvip_agent.runtime.binding import Binding
from keepvip_agent.runtime.instance import (
    HANDOVER_GRACE,
    InstanceRunner,
    TransitionRecord,
)
from keepvip_agent.runtime.metrics import Metrics
from keepvip_agent.runtime.netinfo import LinkInfo
from keepvip_agent.runtime.port import Port
from keepvip_agent.runtime.vrrp_socket import Receiver
from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    VRRP_GROUP_V4,
    Advertisement,
    DropReason,
    IPAddress,
    decode,
    encode,
)
from keepvip_agent.vrrp.router import State
from keepvip_api import parse_virtualip
from keepvip_api.model import OnFailure, VirtualIP

# -- fake loop time --------------------------------------------------------------------


class _FakeTimeSelector(selectors.BaseSelector):
    """A selector that never blocks: where the loop would wait, its clock jumps instead."""

    def __init__(self, loop: FakeTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("fake loop time: nothing is scheduled and nothing can wake us")
        self._loop.advance(timeout)
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class FakeTimeLoop(asyncio.SelectorEventLoop):
    TICK = 1e-6
    """How far the clock moves each time it is read."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        super().__init__(_FakeTimeSelector(self))

    def time(self) -> float:
        self._now += self.TICK
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = FakeTimeLoop()
    try:
        loop.run_until_complete(main())
    finally:
        # As asyncio.run does: cancel what the test left running (checks, renewals).
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


def test_fake_loop_time_costs_no_real_time() -> None:
    async def main() -> None:
        t0 = now()
        await asyncio.sleep(3600)
        assert now() - t0 == pytest.approx(3600, abs=1e-3)

    started = time.monotonic()
    run(main)
    assert time.monotonic() - started < 1.0


# -- fake adapters ---------------------------------------------------------------------


class FakeSocket:
    """The port's VRRP socket: records what is sent (decoded again) and what is dropped."""

    def __init__(self) -> None:
        self.handlers: dict[int, Any] = {}
        self.local: set[IPAddress] = set()
        self.sent: list[tuple[float, Advertisement, IPAddress]] = []
        self.drops: list[tuple[DropReason, str]] = []

    def send(self, payload: bytes, src: IPAddress, dst: IPAddress) -> bool:
        self.sent.append((now(), decode(payload, src, dst), dst))
        return True

    def count_drop(self, reason: DropReason, detail: str, src: object) -> None:
        self.drops.append((reason, detail))

    def close(self) -> None:
        pass

    def priorities(self) -> list[int]:
        return [adv.priority for _, adv, _ in self.sent]


class FakeAnnouncer:
    def __init__(self) -> None:
        self.frames: list[tuple[float, IPv4Interface]] = []

    def announce(self, addresses: Iterable[IPv4Interface]) -> int:
        sent = [(now(), a) for a in addresses]
        self.frames += sent
        return len(sent)

    def close(self) -> None:
        pass


class FakeKernel:
    """The address writer: a set of bound VIPs, a log of calls, failures on demand."""

    def __init__(self) -> None:
        self.bound: set[IPv4Interface] = set()
        self.log: list[tuple[float, str, tuple[IPv4Interface, ...]]] = []
        self.fail_bind = False
        self.unbind_takes = 0.0

    def bind_now(self, index: int, addresses: Iterable[Any], lifetime: int) -> None:
        if self.fail_bind:
            raise OSError("Operation not permitted")
        addrs = tuple(addresses)
        self.log.append((now(), "bind", addrs))
        self.bound |= set(addrs)

    async def bind(self, index: int, addresses: Iterable[Any], lifetime: int) -> None:
        self.bind_now(index, addresses, lifetime)

    async def unbind(self, index: int, addresses: Iterable[Any]) -> None:
        addrs = tuple(addresses)
        self.log.append((now(), "unbind", addrs))
        if self.unbind_takes:
            await asyncio.sleep(self.unbind_takes)
        self.bound -= set(addrs)

    async def purge(self, addresses: Iterable[Any]) -> list[str]:
        return []


# -- the scenario --------------------------------------------------------------------------

OURS = IPv4Address("192.0.2.5")
HIGHER = IPv4Address("192.0.2.9")
LOWER = IPv4Address("192.0.2.2")
VIP = IPv4Interface("192.0.2.100/32")
VIP2 = IPv4Interface("192.0.2.101/32")
MDI_100 = 3 + 156 / 256  # master-down interval at priority 100, 1 s adverts
EPS = 1e-3


def virtualip(**spec: Any) -> VirtualIP:
    body: dict[str, Any] = {"addresses": [str(VIP.ip)], "virtualRouterID": 51, "interface": "eth0"}
    body.update(spec)
    head = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "web"}}
    return parse_virtualip(head | {"spec": body}, standalone=True)


def advert(priority: int, *, version: int = 3, interval_cs: int = 100) -> Advertisement:
    auth = bytes(8) if version == 2 else b""
    return Advertisement(version, 51, priority, interval_cs, (VIP.ip,), AUTH_NONE, auth)


class Rig:
    """One runner on a port whose socket, announcer and address writer are fakes."""

    def __init__(self, vip: VirtualIP) -> None:
        metrics = Metrics()
        self.port = Port("eth0", 4, None, metrics)
        self.port.link = LinkInfo("eth0", 7, b"\x02\x00\x00\x00\x00\x05", True, OURS, None)
        self.port.problem = None
        self.sock = FakeSocket()
        self.announcer = FakeAnnouncer()
        self.port.sock = self.sock  # type: ignore[assignment]
        self.port.announcer = self.announcer  # type: ignore[assignment]
        self.kernel = FakeKernel()
        self.runner = InstanceRunner(vip, "node-a", self.port, self.kernel, metrics)
        self.records: list[TransitionRecord] = []
        self.runner.add_listener(lambda runner, record: self.records.append(record))

    async def start(self) -> float:
        await self.runner.start()
        return now()

    async def elected(self) -> float:
        """Start and stay silent until the master-down timer makes us master; return when."""
        await self.start()
        await asyncio.sleep(MDI_100 + 0.01)
        assert self.runner.state is State.MASTER
        return self.records[-1].at

    def hear(self, adv: Advertisement, source: IPAddress) -> None:
        """An advertisement arrives on the port's socket (already decoded, demuxed by VRID)."""
        self.sock.handlers[adv.vrid].on_advertisement(adv, source)

    def master_at(self) -> float:
        """Loop time of the first advertisement sent (a take-over sends one at once)."""
        return self.sock.sent[0][0]


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


# -- malformed or unwanted packets: counted and dropped --------------------------------------


def test_an_advertisement_of_the_wrong_version_is_counted_and_dropped() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        t0 = await rig.start()
        for _ in range(6):
            rig.hear(advert(200, version=2), HIGHER)
            await asyncio.sleep(1.0)
        assert [r for r, _ in rig.sock.drops] == [DropReason.VERSION] * 6
        # Dropped, not heard: the master-down timer from startup ran out regardless.
        assert rig.runner.state is State.MASTER
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=EPS)

    run(main)


def datagram(payload: bytes, src: IPv4Address, ttl: int = 255) -> bytes:
    """An IPv4 datagram as a raw socket reads it (the header checksum is the kernel's business)."""
    header = bytes([0x45, 0, 0, 20 + len(payload), 0, 0, 0, 0, ttl, 112, 0, 0])
    return header + src.packed + VRRP_GROUP_V4.packed + payload


def test_malformed_datagrams_are_counted_and_dropped_and_the_runner_goes_on() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        drops: list[DropReason] = []
        rx = Receiver("eth0", drops.append)  # the port's socket, less the socket
        rx.handlers[51] = rig.runner
        rx.local = {OURS}
        good = encode(advert(150), HIGHER, VRRP_GROUP_V4)
        other_vrid = encode(
            Advertisement(3, 52, 150, 100, (VIP.ip,), 0, b""), HIGHER, VRRP_GROUP_V4
        )
        rx.ipv4(b"\x45\x00\x00")
        rx.ipv4(datagram(good[:6] + bytes([good[6] ^ 0xFF]) + good[7:], HIGHER))
        rx.ipv4(datagram(good, HIGHER, ttl=64))
        rx.ipv4(datagram(good[:5], HIGHER))
        rx.ipv4(datagram(other_vrid, HIGHER))
        rx.ipv4(datagram(encode(advert(150), OURS, VRRP_GROUP_V4), OURS))  # our own: not a drop
        assert drops == [
            DropReason.MALFORMED,
            DropReason.CHECKSUM,
            DropReason.TTL,
            DropReason.MALFORMED,
            DropReason.UNKNOWN_VRID,
        ]
        assert rig.runner.last_heard == {} and rig.runner.state is State.BACKUP
        rx.ipv4(datagram(good, HIGHER))
        rx.ipv4(datagram(good, HIGHER))  # the same bytes again (the decoded cache): heard too
        assert set(rig.runner.last_heard) == {HIGHER}
        assert len(drops) == 5

    run(main)


def test_an_advertisement_from_a_stranger_is_dropped_when_peers_are_known() -> None:
    async def main() -> None:
        rig = Rig(virtualip(unicastPeers=[str(LOWER)]))
        t0 = await rig.start()
        for _ in range(6):
            rig.hear(advert(200), HIGHER)
            await asyncio.sleep(1.0)
        assert [r for r, _ in rig.sock.drops] == [DropReason.PEER] * 6
        assert rig.runner.last_heard == {}
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=EPS)
        # Peers found by other means (Kubernetes) do not widen a static list.
        rig.runner.set_peers(frozenset({HIGHER}))
        rig.hear(advert(200), HIGHER)
        assert len(rig.sock.drops) == 7 and rig.runner.state is State.MASTER
        rig.hear(advert(200), LOWER)
        assert set(rig.runner.last_heard) == {LOWER}
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


# -- a check changes health ------------------------------------------------------------------


def scripted_probe(
    monkeypatch: pytest.MonkeyPatch, results: dict[str, tuple[bool, str]], takes: float = 0.0
) -> list[float]:
    """Every probe answers ``results[name]`` after ``takes``; return the list of probe times."""
    times: list[float] = []

    async def probe(check: Any) -> tuple[bool, str]:
        times.append(now())
        if takes:
            await asyncio.sleep(takes)
        return results[check.name]

    monkeypatch.setattr(checks, "_probe", probe)
    return times


def check(name: str, on_failure: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "exec": {"command": ["true"]}, "interval": "1s", "onFailure": on_failure}


def test_a_failing_demote_check_lowers_the_advertised_priority_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = {"app": (True, "ok")}
    probes = scripted_probe(monkeypatch, results)

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "demote", "weight": 60})]))
        await rig.elected()
        results["app"] = (False, "exit status 1")
        sent = len(rig.sock.sent)
        await asyncio.sleep(0.5)  # the next probe fails
        assert rig.runner.priority == 40
        # Told at once, not at the next Adver_Timer, which restarts from there.
        ((at, adv, _),) = rig.sock.sent[sent:]
        assert adv.priority == 40 and at == pytest.approx(probes[-1], abs=EPS)
        await asyncio.sleep(1.0)
        assert rig.sock.priorities()[sent:] == [40, 40]
        assert rig.sock.sent[-1][0] == pytest.approx(probes[-2] + 1.0, abs=EPS)
        assert rig.runner.state is State.MASTER and rig.runner.faults == frozenset()
        results["app"] = (True, "ok")
        await asyncio.sleep(1.0)
        assert rig.runner.priority == 100 == rig.runner.health.configured

    run(main)


def test_a_failing_fault_check_takes_the_master_out_and_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = {"app": (True, "ok")}
    scripted_probe(monkeypatch, results)

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "fault"})]))
        await rig.elected()
        results["app"] = (False, "exit status 1")
        sent = len(rig.sock.sent)
        await asyncio.sleep(1.1)
        assert rig.runner.state is State.FAULT
        assert rig.runner.faults == frozenset({"app: exit status 1"})
        assert rig.sock.priorities()[sent:] == [0]  # release at once
        assert rig.kernel.bound == set()
        results["app"] = (True, "ok")
        await asyncio.sleep(1.0)
        assert rig.runner.state is State.BACKUP and rig.runner.faults == frozenset()
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER

    run(main)


def test_a_node_never_becomes_master_before_its_checks_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted_probe(monkeypatch, {"app": (False, "connection refused")})

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "fault"})]))
        await rig.start()
        assert rig.runner.state is State.FAULT
        await asyncio.sleep(10)
        assert rig.sock.sent == [] and rig.kernel.bound == set()

    run(main)


def test_a_broken_interface_is_a_fault_until_it_heals() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        rig.runner.link_changed(rig.port.health_name, "interface eth0 is down", None)
        await asyncio.sleep(0.01)
        assert rig.runner.state is State.FAULT
        assert rig.runner.faults == frozenset({"interface eth0: interface eth0 is down"})
        assert rig.kernel.bound == set()
        rig.runner.link_changed(rig.port.health_name, None, OURS)
        assert rig.runner.state is State.BACKUP

    run(main)


def test_a_vip_that_cannot_be_bound_takes_the_node_out_for_a_while() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        rig.kernel.fail_bind = True
        await rig.start()
        await asyncio.sleep(MDI_100 + 0.01)
        assert rig.runner.state is State.FAULT
        assert rig.sock.priorities() == [100, 0]  # took over, could not bind, released
        (fault,) = rig.runner.faults
        assert fault.startswith("addresses: cannot bind addresses: Operation not permitted")
        rig.kernel.fail_bind = False
        await asyncio.sleep(10.0)
        assert rig.runner.state is State.BACKUP
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER and rig.kernel.bound == {VIP}

    run(main)


# -- reconfigure in place ----------------------------------------------------------------------


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


# -- graceful handover ---------------------------------------------------------------------


def test_stop_hands_over_before_it_releases_the_vip() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        sent = len(rig.sock.sent)
        stopping = asyncio.get_running_loop().create_task(rig.runner.stop())
        await asyncio.sleep(0.3)  # the backups count down their skew
        assert rig.sock.priorities()[sent:] == [0]
        assert rig.runner.state is State.INITIALIZE
        assert rig.kernel.bound == {VIP}  # make before break: clients are still answered here
        rig.hear(advert(90), LOWER)  # the successor's first advertisement
        heard = now()
        await stopping
        (unbound,) = [t for t, op, _ in rig.kernel.log if op == "unbind"]
        assert unbound == pytest.approx(heard + HANDOVER_GRACE, abs=EPS)
        assert rig.kernel.bound == set()
        assert rig.port.instances == {}

    run(main)


def test_stop_without_a_successor_releases_after_any_backup_must_have_taken_over() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        t0 = now()
        await rig.runner.stop()
        (unbound,) = [t for t, op, _ in rig.kernel.log if op == "unbind"]
        assert unbound == pytest.approx(t0 + 1.0 + HANDOVER_GRACE, abs=EPS)
        assert rig.kernel.bound == set()

    run(main)


def test_stop_of_a_backup_sends_nothing() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        await rig.runner.stop()
        assert rig.sock.sent == [] and rig.kernel.log == []
        assert rig.runner.state is State.INITIALIZE

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


# -- the binding on its own --------------------------------------------------------------------


def test_binding_converges_when_acquire_and_release_race() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        kernel = rig.kernel
        kernel.unbind_takes = 0.05
        binding = Binding(
            "web",
            rig.runner.spec,
            rig.port,
            kernel,
            Metrics().instance("web"),
            HealthBoard(100, lambda health: None),
            lambda: True,
        )
        binding.want(True)  # bound on return: the GARP follows at once
        assert binding.bound and kernel.bound == {VIP}
        assert len(rig.announcer.frames) == 1
        binding.want(False)
        await asyncio.sleep(0.01)
        binding.want(True)  # master again while the release is still in netlink
        await asyncio.sleep(0.1)
        assert binding.bound and kernel.bound == {VIP}
        assert [op for _, op, _ in kernel.log] == ["bind", "unbind", "bind"]
        binding.want(False)
        binding.want(True)
        binding.want(False)  # only the last wish counts
        await binding.close()
        assert not binding.bound and kernel.bound == set()

    run(main)
