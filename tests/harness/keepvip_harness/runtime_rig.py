"""Fakes for the runtime's unit tests: a fake-time event loop, fake adapters, one runner rig.

Not a test module: the ``test_runtime_*`` modules import it (pytest puts this
folder on ``sys.path``, as it does for ``tests/netns/agentlab.py``).

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
import selectors
from collections.abc import Callable, Coroutine, Iterable, Mapping
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

import pytest

from keepvip_agent.runtime import checks
from keepvip_agent.runtime.instance import (
    InstanceRunner,
    TransitionRecord,
)
from keepvip_agent.runtime.metrics import Metrics
from keepvip_agent.runtime.netinfo import LinkInfo
from keepvip_agent.runtime.port import Port
from keepvip_agent.runtime.renewals import Renewals
from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    VRRP_GROUP_V4,
    Advertisement,
    DropReason,
    IPAddress,
    decode,
)
from keepvip_agent.vrrp.router import State
from keepvip_api import parse_virtualip
from keepvip_api.model import VirtualIP

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


# -- fake adapters ---------------------------------------------------------------------


class FakeSocket:
    """The port's VRRP socket: records what is sent (decoded again) and what is dropped."""

    def __init__(self) -> None:
        self.handlers: dict[int, Any] = {}
        self.local: set[IPAddress] = set()
        self.sent: list[tuple[float, Advertisement, IPAddress]] = []
        self.drops: list[tuple[DropReason, str]] = []
        self.rx: Any = None
        """No receive thread: the runner keeps its repeats in Python (see rxwatch)."""
        self.current_key: bytes | None = None
        self.fileno = -1
        self.family = 4
        self.ifindex = 7

    def send(self, payload: bytes, src: IPAddress, dst: IPAddress) -> bool:
        self.sent.append((now(), decode(payload, src, dst), dst))
        return True

    def sender(self, src: IPAddress, dst: IPAddress) -> Callable[[bytes], bool]:
        return lambda payload: self.send(payload, src, dst)

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
        self.renewals = Renewals(self)

    def renew(self, items: Iterable[tuple[int, Any, int]]) -> list[tuple[int, OSError]]:
        """The batch write of :class:`Renewals`: logged as one "renew" of its addresses."""
        addrs = tuple(a for _, a, _ in items)
        self.log.append((now(), "renew", addrs))
        self.bound |= set(addrs)
        return []

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


def datagram(payload: bytes, src: IPv4Address, ttl: int = 255) -> bytes:
    """An IPv4 datagram as a raw socket reads it (the header checksum is the kernel's business)."""
    header = bytes([0x45, 0, 0, 20 + len(payload), 0, 0, 0, 0, ttl, 112, 0, 0])
    return header + src.packed + VRRP_GROUP_V4.packed + payload


def scripted_probe(
    monkeypatch: pytest.MonkeyPatch, results: dict[str, tuple[bool, str]], takes: float = 0.0
) -> list[float]:
    """Every probe answers ``results[name]`` after ``takes``; return the list of probe times."""
    times: list[float] = []

    async def probe(check: Any, *_: Any) -> tuple[bool, str]:
        times.append(now())
        if takes:
            await asyncio.sleep(takes)
        return results[check.name]

    monkeypatch.setattr(checks, "_probe", probe)
    return times


def check(name: str, on_failure: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "exec": {"command": ["true"]}, "interval": "1s", "onFailure": on_failure}
