"""VRID and metrics-port allocation, and conflicts between VirtualIPs (pure).

The operator cannot see which VirtualIPs share a network segment, so it
treats every pair as able to meet: two VirtualIPs conflict when they claim
the same address, or the same VRID for the same address family (RFC 9568
keeps IPv4 and IPv6 virtual routers apart, so 51 over IPv4 and 51 over IPv6
do not meet). The rule is always "the older object wins" (creationTimestamp,
then namespace/name): the newer one gets ``Conflict=True`` and no agents, and
a running VirtualIP is never stopped by one created after it. The older one
wins even while it is blocked itself, so an object's fate never flips
because a third one came or went.

Allocation is conservative while it can be: an allocated VRID is unique
across both families and across every VRID any other VirtualIP names in its
spec or status, so an edit that moves a VirtualIP to the other family never
makes its VRID collide. Only when all 255 are taken that way does a
VirtualIP get a VRID the other family uses (VRIDs are 255 per segment *and
address family*), so each family has its 255. The 256th VirtualIP of a
family gets ``Conflict=True`` with reason ``NoVRID`` (and the Warning Event
every conflict gets), never a VRID someone else has. An allocated VRID is
kept as long as no older object of its family uses it (a running VIP keeps
its VRRP identity). A claim whose family is unknown (an invalid spec, a
reservation) counts for both families.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address

from keepvip_operator.observed import Observed

VRIDS = range(1, 256)
NO_VRID = "NoVRID"
"""The Conflict reason when every VRID of the family is taken (issue 12's contract name)."""


@dataclass(frozen=True)
class Claim:
    """What one VirtualIP holds that others must not: its addresses and its VRID."""

    key: str
    created: datetime
    addresses: frozenset[IPv4Address | IPv6Address]
    family: int | None
    """The election's address family (of addresses[0]); None for an invalid spec."""
    spec_vrid: int | None
    status_vrid: int | None

    @property
    def vrid(self) -> int | None:
        return self.spec_vrid if self.spec_vrid is not None else self.status_vrid

    @property
    def vrids(self) -> set[int]:
        return {v for v in (self.spec_vrid, self.status_vrid) if v is not None}

    def older_than(self, other: Claim) -> bool:
        return (self.created, self.key) < (other.created, other.key)


def claim_of(obs: Observed, *, status_vrid: int | None = None) -> Claim:
    """``status_vrid`` stands in for a VRID allocated but not yet seen in the status."""
    vip = obs.vip
    return Claim(
        key=obs.key,
        created=obs.created,
        addresses=frozenset(a.ip for a in vip.spec.addresses) if vip else frozenset(),
        family=vip.spec.addresses[0].version if vip else None,
        spec_vrid=vip.spec.virtual_router_id if vip else obs.raw_spec_vrid,
        status_vrid=obs.status_vrid if obs.status_vrid is not None else status_vrid,
    )


def lowest_free(used: Iterable[int], candidates: Iterable[int]) -> int | None:
    taken = set(used)
    return next((c for c in candidates if c not in taken), None)


def _meets(me: Claim, other: Claim) -> bool:
    """The two may run the same virtual router: same family, or one family unknown."""
    return me.family is None or other.family is None or me.family == other.family


def choose_vrid(me: Claim, others: Iterable[Claim]) -> int | None:
    """The VRID ``me`` runs with: its spec's, else its allocated one, else the lowest free.

    The lowest free across both families first, else the lowest free in its
    own family (see the module docstring); None when all 255 of its family
    are taken.
    """
    if me.spec_vrid is not None:
        return me.spec_vrid
    others = [o for o in others if o.key != me.key]
    by_older = {v for o in others if o.older_than(me) and _meets(me, o) for v in o.vrids}
    if me.status_vrid is not None and me.status_vrid not in by_older:
        return me.status_vrid
    anywhere = lowest_free((v for o in others for v in o.vrids), VRIDS)
    if anywhere is not None:
        return anywhere
    return lowest_free((v for o in others if _meets(me, o) for v in o.vrids), VRIDS)


@dataclass(frozen=True)
class Conflict:
    reason: str
    """AddressInUse, VirtualRouterIDInUse or NoVRID (condition reasons)."""
    message: str


def find_conflicts(me: Claim, vrid: int | None, others: Iterable[Claim]) -> list[Conflict]:
    """Why ``me`` (running with ``vrid``) must not be rolled out; empty if it may."""
    out: list[Conflict] = []
    older = sorted(
        (o for o in others if o.key != me.key and o.older_than(me)),
        key=lambda o: (o.created, o.key),
    )
    for other in older:
        shared = sorted(me.addresses & other.addresses, key=lambda a: (a.version, a))
        if shared:
            listed = ", ".join(str(a) for a in shared)
            word = "address" if len(shared) == 1 else "addresses"
            out.append(
                Conflict("AddressInUse", f"{word} {listed} already claimed by {other.key} (older)")
            )
        if vrid is not None and vrid == other.vrid and me.family == other.family:
            out.append(
                Conflict(
                    "VirtualRouterIDInUse",
                    f"virtualRouterID {vrid} already used by {other.key} for IPv{me.family} (older)",
                )
            )
    if vrid is None:
        family = f"IPv{me.family}" if me.family else "its address family"
        out.append(
            Conflict(
                NO_VRID,
                f"no virtualRouterID left: all 255 for {family} are in use (VRIDs are 255 "
                "per segment and address family); free one, or serve LoadBalancer Services "
                "with externalTrafficPolicy Cluster from a pool (they share a VRRP router)",
            )
        )
    return out


def choose_port(current: int | None, used: Iterable[int], first: int, count: int) -> int | None:
    """The metrics port of one VirtualIP's agents, given the ports the others use.

    The current port is kept while nobody else has it (changing it restarts
    the agents); otherwise the lowest free one in ``first .. first+count-1``.
    """
    taken = set(used)
    candidates = range(first, first + count)
    if current is not None and current in candidates and current not in taken:
        return current
    return lowest_free(taken, candidates)
