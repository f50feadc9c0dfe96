"""Address lifetime renewals of every bound VIP of the agent, in batches.

A bound VIP carries a kernel lifetime (see :mod:`.addresses`) and its master
renews it every third of it. One renewal per VIP, each on its own timer and
with its own netlink round trip, was a fifth of a 263-instance master's
profile at 1 s adverts. Here one timer serves every bound VIP of the agent
and each wake-up renews, in one ``sendmsg``, every VIP that is due within
half a period: renewing a little early is harmless (the lifetime restarts),
so VIPs bound at different times fall into step after their first renewal
and the agent settles at about one batch per period.

What this keeps: a VIP is renewed every lifetime/6 to lifetime/3 while its
instance is master, so it never expires under a live master, and it still
outlives a dead agent by at most its lifetime (``addressLifetime``, 5 s by
default; the kernel's expiry worker adds up to a second).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface
from typing import Protocol

log = logging.getLogger(__name__)
VipAddress = IPv4Interface | IPv6Interface
EARLY = 0.5
"""How much of its period a renewal may come early to join a batch."""


class BatchWriter(Protocol):
    def renew(self, items: Sequence[tuple[int, VipAddress, int]]) -> list[tuple[int, OSError]]: ...


@dataclass(eq=False, slots=True)
class Lease:
    """One instance's bound VIPs, renewed while ``active()`` (its router is master)."""

    name: str
    index: int
    addresses: Sequence[VipAddress]
    lifetime: int
    active: Callable[[], bool]
    due: float = 0.0

    @property
    def period(self) -> float:
        return self.lifetime / 3


class Renewals:
    """The one renewal timer of an agent (or of a test's fake kernel)."""

    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer
        self._leases: set[Lease] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.batches = 0
        """Batches sent so far (for tests and the curious)."""

    def keep(
        self,
        name: str,
        index: int,
        addresses: Sequence[VipAddress],
        lifetime: int,
        active: Callable[[], bool],
    ) -> Lease:
        """Renew ``addresses`` (just bound with ``lifetime``) until :meth:`forget`."""
        loop = asyncio.get_running_loop()
        lease = Lease(name, index, addresses, lifetime, active)
        lease.due = loop.time() + lease.period
        self._leases.add(lease)
        self._arm(loop, lease.due)
        return lease

    def forget(self, lease: Lease | None) -> None:
        """Stop renewing (the VIPs are being released); a later due time just finds none."""
        if lease is not None:
            self._leases.discard(lease)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(at, self._fire)
            self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if not self._leases:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [lease for lease in self._leases if lease.due - EARLY * lease.period <= now]
        items: list[tuple[int, VipAddress, int]] = []
        owners: list[Lease] = []
        for lease in due:
            lease.due = now + lease.period
            if lease.active():
                for address in lease.addresses:
                    items.append((lease.index, address, lease.lifetime))
                    owners.append(lease)
        if items:
            self.batches += 1
            try:
                failed = self._writer.renew(items)
            except OSError as exc:
                log.error("cannot renew %d address lifetimes: %s", len(items), exc)
            else:
                for n, error in failed:
                    log.error("%s: cannot renew address lifetime: %s", owners[n].name, error)
        self._arm(loop, min(lease.due for lease in self._leases))
