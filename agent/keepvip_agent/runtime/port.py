"""One network interface and address family: its socket, its announcer, its link state.

Instances on the same interface share a Port. When the interface is missing,
down or has no usable source address, the Port says so to each instance as a
``fault`` health report named after the interface, so one broken interface
degrades exactly the VIPs on it, visibly, and they rejoin by themselves when
it comes back. Refreshes are driven by netlink events (see :mod:`.agent`),
not polling.

The port knows its instances only as :class:`PortListener` (their VRID and
VIPs in, advertisements and link changes out), defined here: the instance
module imports this one, never the other way round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from ipaddress import IPv4Interface, IPv6Interface
from typing import TYPE_CHECKING, Protocol

from keepvip_agent.runtime.announcer import Announcer
from keepvip_agent.runtime.linkread import LinkReader
from keepvip_agent.runtime.netinfo import LinkInfo
from keepvip_agent.runtime.vrrp_socket import AdvertisementHandler, VrrpSocket
from keepvip_agent.vrrp.packet import IPAddress
from keepvip_api.model import OnFailure

if TYPE_CHECKING:
    from keepvip_agent.runtime.metrics import Metrics

logger = logging.getLogger(__name__)
INTERFACE_FAULT = OnFailure(action="fault")
"""How an instance takes a broken interface: out of the election, back when it heals."""


class PortListener(AdvertisementHandler, Protocol):
    """An instance on a port, as the port sees it."""

    @property
    def vrid(self) -> int: ...

    @property
    def addresses(self) -> Sequence[IPv4Interface | IPv6Interface]:
        """Its VIPs: the same object while its configuration is unchanged."""
        ...

    def link_changed(self, health_name: str, problem: str | None, source: IPAddress | None) -> None:
        """The interface became usable (``problem`` None, ``source`` its address) or not."""
        ...


class Port:
    def __init__(
        self, ifname: str, family: int, reader: LinkReader | None, metrics: Metrics
    ) -> None:
        self.ifname = ifname
        self.family = family
        self._reader = reader
        """None in unit tests, which set :attr:`link` themselves."""
        self._metrics = metrics
        self.link: LinkInfo | None = None
        self.sock: VrrpSocket | None = None
        self.announcer: Announcer | None = None
        self.instances: dict[int, PortListener] = {}
        self.problem: str | None = "not checked yet"
        self._lock = asyncio.Lock()
        self._asked = 0
        self._covered = 0
        self._vips_key: tuple[Sequence[IPv4Interface | IPv6Interface], ...] = ()
        self._vips_cache: frozenset[IPAddress] = frozenset()
        self._vips_packed: frozenset[bytes] = frozenset()
        self._soon: asyncio.Task[None] | None = None
        self._reported: tuple[str | None, IPAddress | None] | None = None
        """The (problem, source) last reported to every instance."""

    @property
    def source(self) -> IPAddress | None:
        return self.link.primary(self.family) if self.link else None

    @property
    def health_name(self) -> str:
        return f"interface {self.ifname}"

    def vip_addresses(self) -> set[IPAddress]:
        return {a.ip for inst in self.instances.values() for a in inst.addresses}

    def carries(self, address: IPAddress) -> bool:
        """Is this one of our instances' VIPs (which never count as the link's own address)?"""
        return address in self._vips()

    def _vips(self) -> frozenset[IPAddress]:
        # Rebuilt only when the instances or their addresses change (reconfigure
        # replaces the spec object; tuples compare by identity first, so an
        # unchanged key costs little): this runs for every address notification.
        key = tuple(inst.addresses for inst in self.instances.values())
        if key != self._vips_key:
            self._vips_key = key
            self._vips_cache = frozenset(self.vip_addresses())
            self._vips_packed = frozenset(a.packed for a in self._vips_cache)
        return self._vips_cache

    def attach(self, inst: PortListener) -> None:
        self.instances[inst.vrid] = inst
        if self.sock is not None:
            self.sock.handlers[inst.vrid] = inst
        self._report(inst)

    def detach(self, inst: PortListener) -> None:
        self.instances.pop(inst.vrid, None)
        if self.sock is not None:
            self.sock.handlers.pop(inst.vrid, None)

    def refresh_soon(self) -> asyncio.Task[None]:
        """A :meth:`refresh` in a task of its own, shared by every request made before it runs.

        A burst of netlink events (one drain of the event socket) costs one read,
        not one per event: the read is synchronous, so a task that has started
        has also finished, and a request after it gets a new one.
        """
        if self._soon is None or self._soon.done():
            self._soon = asyncio.get_running_loop().create_task(self.refresh())
        return self._soon

    async def refresh(self) -> None:
        """Re-read the link; open or close the socket; tell the instances.

        Requests that queue up behind a running refresh fold into one: a
        refresh that started after a request was made answers it.
        """
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._covered >= ticket:
                return
            self._covered = self._asked
            try:
                if self._reader is None:
                    raise OSError("no link reader")
                self._vips()
                link = self._reader.read(self.ifname, self.family, self._vips_packed)
            except Exception as exc:  # netlink trouble must not kill the agent
                link = None
                problem: str | None = f"cannot read interface {self.ifname}: {exc}"
            else:
                problem = self._problem_of(link)
            old = self.link
            self.link = link
            if link is None or (
                old is not None and (old.index != link.index or old.mac != link.mac)
            ):
                self._close()
            if link is not None and self.sock is None:
                try:
                    self._open(link)
                except OSError as exc:
                    problem = f"cannot open VRRP socket on {self.ifname}: {exc.strerror or exc}"
            if problem != self.problem:
                if problem:
                    logger.warning("%s: %s", self.ifname, problem)
                elif self.problem != "not checked yet":
                    logger.info("%s: usable again", self.ifname)
            self.problem = problem
            if self.sock is not None and link is not None:
                src = link.primary(self.family)
                self.sock.local = {src} if src else set()
            self._report_all()

    def _report_all(self) -> None:
        # Only a change is news: the periodic safety refresh of hundreds of instances
        # otherwise re-reports the same verdict to each (attach reports to a new one).
        verdict = (self.problem, self.source)
        if verdict != self._reported:
            self._reported = verdict
            for inst in list(self.instances.values()):
                self._report(inst)

    def _problem_of(self, link: LinkInfo | None) -> str | None:
        if link is None:
            return f"interface {self.ifname} does not exist"
        if not link.up:
            return f"interface {self.ifname} is down"
        if link.primary(self.family) is None:
            kind = "IPv4 address" if self.family == 4 else "usable IPv6 link-local address"
            return f"interface {self.ifname} has no {kind}"
        return None

    def _report(self, inst: PortListener) -> None:
        inst.link_changed(self.health_name, self.problem, self.source)

    def _open(self, link: LinkInfo) -> None:
        loop = asyncio.get_running_loop()
        self.sock = VrrpSocket(
            link.name, link.index, self.family, self._metrics.drop_counter(link.name), loop
        )
        self.sock.handlers.update(self.instances)
        self.announcer = Announcer(link.name, link.mac)

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.announcer is not None:
            self.announcer.close()
            self.announcer = None

    def close(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
        self._close()
