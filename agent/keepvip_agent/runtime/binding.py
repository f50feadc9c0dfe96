"""The VIPs of one instance on its interface: bind, announce, renew, release.

The election only says which way to go (:meth:`Binding.want`); this module
makes the kernel follow. Addresses converge to the wanted state in one task
(unbind, or bind again), so an acquire and a release racing each other
cannot interleave their netlink calls. Binding is the exception that keeps a
take-over fast: it is one synchronous netlink request per address, done at
once, so the gratuitous ARP leaves right behind the first advertisement
instead of a loop iteration later.

A bound VIP carries a kernel lifetime (see :mod:`.addresses`) that the
agent's :class:`~.renewals.Renewals` renews, in batches, while master; a task
of the binding re-announces when ``announce.refresh`` asks for it. A master that cannot bind its VIP is worse than no master: the
failure is reported as the ``addresses`` fault, so the instance leaves the
election and a backup takes over; the fault clears itself after a while and
the node rejoins.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from ipaddress import IPv4Interface, IPv6Interface
from typing import TYPE_CHECKING, Any, Protocol

from keepvip_agent.health import HealthBoard
from keepvip_agent.runtime.renewals import Lease, Renewals
from keepvip_api.model import OnFailure, VirtualIPSpec

if TYPE_CHECKING:
    from keepvip_agent.runtime.metrics import InstanceMetrics
    from keepvip_agent.runtime.port import Port

log = logging.getLogger(__name__)
VipAddress = IPv4Interface | IPv6Interface
ADDRESS_FAULT_NAME = "addresses"
ADDRESS_FAULT = OnFailure(action="fault")
ADDRESS_FAULT_HOLD = 10.0
"""How long a failed bind keeps the instance out of the election before it retries."""


class AddressBackend(Protocol):
    """What binding needs of the address writer (:class:`~.addresses.AddressManager`)."""

    @property
    def renewals(self) -> Renewals:
        """Who renews the lifetimes of bound VIPs."""
        ...

    def bind_now(self, index: int, addresses: Iterable[VipAddress], lifetime: int) -> None: ...

    async def bind(self, index: int, addresses: Iterable[VipAddress], lifetime: int) -> None: ...

    async def unbind(self, index: int, addresses: Iterable[VipAddress]) -> None: ...

    async def purge(self, addresses: Iterable[VipAddress]) -> list[str]: ...


class Binding:
    """The address side of one instance: wanted state, bound state, renewal, announcements."""

    def __init__(
        self,
        name: str,
        spec: VirtualIPSpec,
        port: Port,
        backend: AddressBackend,
        metrics: InstanceMetrics,
        health: HealthBoard,
        is_master: Callable[[], bool],
    ) -> None:
        self.name = name
        self.spec = spec
        self._port = port
        self._backend = backend
        self._metrics = metrics
        self._health = health
        self._is_master = is_master
        self._loop = asyncio.get_running_loop()
        self._want_bound = False
        self.bound = False
        self.problem: str | None = None
        """Why the last bind or unbind failed, while that still keeps us out."""
        self._converging: asyncio.Task[None] | None = None
        self._lease: Lease | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def purge(self) -> None:
        """Before joining: remove copies of our VIPs left on any interface (a crash, a move)."""
        removed = await self._backend.purge(self.spec.addresses)
        if removed:
            log.warning(
                "%s: removed leftover VIP copies before joining: %s", self.name, ", ".join(removed)
            )

    def want(self, bound: bool) -> None:
        """The election's wish: hold the VIPs (master) or not."""
        self._want_bound = bound
        if self._converging is None or self._converging.done():
            if bound:
                if not self.bound:
                    self._bind()
            else:
                self._converging = self._loop.create_task(self._converge())

    def readdress(self, previous: Sequence[VipAddress]) -> None:
        """:attr:`spec` changed from ``previous`` addresses: while bound, bind the new
        list and unbind what left it."""
        removed = [a for a in previous if a not in self.spec.addresses]
        if self.bound and (removed or set(self.spec.addresses) - set(previous)):
            self._spawn(self._readdress(removed))

    async def close(self) -> None:
        """Let a release under way finish, then stop renewing."""
        if self._converging is not None:
            await self._converging
        self._stop_renewing()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- announcements -----------------------------------------------------------------

    def announce(self) -> None:
        announcer = self._port.announcer
        # A burst armed while master must stop when we step down (the address is
        # still bound until the release task has run).
        if announcer is not None and self.bound and self._is_master():
            self._metrics.announcements.inc(announcer.announce(self.spec.addresses))

    def announce_burst(self) -> None:
        self.announce()
        a = self.spec.announce
        for i in range(1, a.count):
            self._loop.call_later(i * a.interval, self.announce)

    # -- convergence -------------------------------------------------------------------

    def _bind(self) -> None:
        """Bind (or renew) the VIPs now, announce them and keep renewing them."""
        link = self._port.link
        if link is None:
            self.bound = False
            return
        lifetime = math.ceil(self.spec.address_lifetime)
        try:
            self._backend.bind_now(link.index, self.spec.addresses, lifetime)
        except Exception as exc:
            self._failed(exc)
            return
        self.bound = True
        self._metrics.bound.set(1)
        self.announce_burst()
        self._stop_renewing()
        self._lease = self._backend.renewals.keep(
            self.name, link.index, self.spec.addresses, lifetime, self._is_master
        )
        if self.spec.announce.refresh:
            self._refreshing = self._spawn(self._refresh(self.spec.announce.refresh))

    async def _converge(self) -> None:
        while self.bound != self._want_bound:
            link = self._port.link
            if link is None:
                self.bound = False
                return
            if self._want_bound:
                self._bind()
                if not self.bound:
                    return
                continue
            self._stop_renewing()
            try:
                await self._backend.unbind(link.index, self.spec.addresses)
            except Exception as exc:
                self._failed(exc)
                return
            self.bound = False
            self._metrics.bound.set(0)

    async def _readdress(self, removed: Sequence[VipAddress]) -> None:
        link = self._port.link
        if link is None:
            return
        await self._backend.bind(
            link.index, self.spec.addresses, math.ceil(self.spec.address_lifetime)
        )
        if self._lease is not None:
            self._lease.addresses = self.spec.addresses  # renew the new list from now on
        await self._backend.unbind(link.index, removed)
        self.announce()

    def _failed(self, exc: Exception) -> None:
        # Master without its VIP is worse than no master: leave the election so
        # a backup takes over, and say why.
        self.problem = f"cannot {'bind' if self._want_bound else 'unbind'} addresses: {exc}"
        log.error("%s: %s", self.name, self.problem)
        if self._want_bound:
            self._health.report(ADDRESS_FAULT_NAME, False, ADDRESS_FAULT, self.problem)
            self._spawn(self._clear_fault(ADDRESS_FAULT_HOLD))

    async def _clear_fault(self, after: float) -> None:
        await asyncio.sleep(after)
        self.problem = None
        self._health.report(ADDRESS_FAULT_NAME, True, ADDRESS_FAULT, "ok")

    def _stop_renewing(self) -> None:
        self._backend.renewals.forget(self._lease)
        self._lease = None
        if self._refreshing is not None:
            self._refreshing.cancel()
            self._refreshing = None

    async def _refresh(self, every: float) -> None:
        """``announce.refresh``: announce again every so often while master."""
        while True:
            await asyncio.sleep(every)
            self.announce()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
