"""Split-brain arbitration and API fencing as a sans-IO core: the rules, stated once.

VRRP stays the fast path: a backup that stops hearing adverts takes over at
once and never waits for the API. The Lease ``keepvip-<name>`` only settles
what VRRP cannot see: two masters at once while both still reach the API (a
partition of the node network, not of the control plane). Every rule below is
a branch of :class:`Arbiter`; :mod:`keepvip_agent.kube.lease` only reads and
writes the Lease and applies the decisions to the runner.

* A master holds the Lease and renews it every ``renew`` seconds; a missing
  Lease is created, a released one (no holder) is taken at once.
* A master that finds the Lease held by another node waits until it has
  *seen the holder renew* (its renewTime changing) before concluding the
  holder is alive; two renewals seen while master, because a holder that
  stepped down releases the Lease at once and one renewal may have been in
  flight as we took over. It then steps out of the election (``fault``:
  "split brain") and the live holder keeps the VIP.
* A holder that is not seen to renew for the lease duration (``3 * renew``)
  is dead, and a master takes the Lease over.
* Liveness is judged by observed change on this node's monotonic clock, never
  by comparing clocks across nodes: renewTime is opaque here, only compared
  for equality with the last one seen.
* A node that is not master gives back a Lease it still holds.
* The fence lifts when the holder stops renewing (or the Lease goes, or
  another node holds it), or when this node hears the holder's own
  advertisements again (the partition healed): it rejoins as backup.
* ``fencing: strict``: a master cut off from the API for longer than the lease
  duration drops the VIP (``fault``); the fence lifts once the API answered
  within the last ``1.5 * renew``. ``none`` (default) keeps serving, as
  keepalived would.

Every time is passed in (``now``: monotonic seconds), like
:class:`keepvip_operator.leader.Election`; nothing here sleeps, reads a
clock or talks to the API.
"""

from __future__ import annotations

from dataclasses import dataclass

STRICT = "strict"


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The arbiter's part of a Lease as read: who holds it, and its renewTime (opaque)."""

    holder: str | None
    renew: object
    """Only ever compared for equality with the last one seen: never read as a time."""


# -- decisions: the Lease writes (at most one per round) ----------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """No Lease and we are master: create it, held by us for ``duration`` seconds."""

    duration: int


@dataclass(frozen=True, slots=True)
class Renew:
    """We hold the Lease and are master: bump its renewTime."""


@dataclass(frozen=True, slots=True)
class TakeOver:
    """The Lease is free or its holder is dead: make it ours (one more transition)."""

    previous: str | None
    duration: int


@dataclass(frozen=True, slots=True)
class Release:
    """We hold the Lease but are not master: empty its holder and renewTime."""


# -- decisions: reports to the runner's health ------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepDown:
    """Split brain: ``holder`` is alive and renewing; leave the election (fault)."""

    holder: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rejoin:
    """The split brain is over: clear the fault, rejoin as backup."""

    holder: str
    why: str


@dataclass(frozen=True, slots=True)
class ApiFence:
    """``fencing: strict`` and cut off from the API too long: drop the VIP (fault)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ApiReachable:
    """The API answers again: clear the API fence."""

    reason: str = "API server reachable"


Write = Create | Renew | TakeOver | Release
RoundAction = Write | StepDown


@dataclass(slots=True)
class _Seen:
    holder: str | None
    renew: object
    since: float
    """When we last saw the holder or its renewTime change, on our clock."""
    advanced: bool
    """The holder's renewTime changed while we watched: it is alive."""
    renewals_while_master: int = 0
    """Renewals seen since this node became master: proof the holder still thinks it is one."""


class Arbiter:
    """One node's view of one VirtualIP's Lease; every time is passed in.

    A round is :meth:`round` (the Lease as read, at most one decision), then,
    once that decision's write went through, :meth:`heal`. The API fence is
    judged apart by :meth:`check_api`, on its own schedule, so that a hung
    request never delays it.
    """

    def __init__(self, node: str, lease_name: str, *, renew: float = 2.0) -> None:
        self.node, self.lease_name = node, lease_name
        self.renew = renew
        self.duration = 3 * renew
        self.fencing = "none"
        """The VirtualIP's ``fencing``: ``none`` or ``strict``."""
        self.fenced: str | None = None
        """The holder we stepped down for (split brain), or None."""
        self.fenced_at = 0.0
        self.api_fenced = False
        self._seen: _Seen | None = None
        self._holder_alive = False

    # -- the Lease round ---------------------------------------------------------------------

    def round(self, now: float, master: bool, lease: LeaseView | None) -> RoundAction | None:
        """What to do after reading ``lease`` (None: there is none) at ``now``.

        ``master``: whether this node was master when the round began.
        """
        if lease is None:
            self._seen = None
            self._holder_alive = False
            return Create(int(self.duration)) if master else None
        holder = lease.holder
        seen = self._observe(holder, lease.renew, now, master)
        alive = bool(holder) and holder != self.node and now - seen.since < self.duration
        self._holder_alive = alive and seen.advanced
        if master:
            return self._as_master(holder, alive, seen, now)
        if holder == self.node:
            return Release()
        return None

    def _observe(self, holder: str | None, renew: object, now: float, master: bool) -> _Seen:
        """Track the holder's renewals on our own clock."""
        seen = self._seen
        if seen is None or seen.holder != holder:
            self._seen = seen = _Seen(holder, renew, now, advanced=False)
        elif seen.renew != renew:
            seen.renew, seen.since, seen.advanced = renew, now, True
            if master:
                seen.renewals_while_master += 1
        if not master:
            seen.renewals_while_master = 0
        return seen

    def _as_master(
        self, holder: str | None, alive: bool, seen: _Seen, now: float
    ) -> RoundAction | None:
        if holder == self.node:
            return Renew()
        if not alive:
            return TakeOver(holder, int(self.duration))
        if seen.renewals_while_master >= 2 and self.fenced is None:
            # A holder that stepped down releases the Lease at once, and one
            # renewal may have been in flight as we took over: two renewals
            # seen while we are master mean it really still serves.
            holder = str(holder)
            self.fenced, self.fenced_at = holder, now
            return StepDown(holder, f"{holder} holds lease {self.lease_name} and renews it")
        return None

    def heal(self, heard_at: float) -> Rejoin | None:
        """After the round: lift the split-brain fence if it is over.

        ``heard_at``: when this node last heard the fenced holder's own
        advertisements (monotonic; ``-inf`` if never or its address is
        unknown). Only the holder's advertisements prove the partition healed:
        the other nodes on our side of it are advertising too.
        """
        if self.fenced is None:
            return None
        heard = heard_at > self.fenced_at
        if heard or not self._holder_alive:
            why = f"hearing {self.fenced} again" if heard else f"{self.fenced} stopped renewing"
            holder, self.fenced = self.fenced, None
            return Rejoin(holder, why)
        return None

    def releases(self, lease: LeaseView | None) -> bool:
        """Leaving master (or stopping): give the Lease back now if we hold it."""
        return lease is not None and lease.holder == self.node

    # -- API fencing -------------------------------------------------------------------------

    def check_api(self, now: float, last_ok: float, master: bool) -> ApiFence | ApiReachable | None:
        """Judge the API's reachability: ``last_ok`` is when a call last succeeded (monotonic)."""
        cut_off = now - last_ok
        if self.fencing == STRICT and not self.api_fenced and cut_off > self.duration:
            if master:
                self.api_fenced = True
                return ApiFence(f"cut off from the API server for {cut_off:.0f}s (fencing: strict)")
        elif self.api_fenced and cut_off <= self.renew * 1.5:
            self.api_fenced = False
            return ApiReachable()
        return None
