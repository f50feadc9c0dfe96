"""Address allocation for LoadBalancer Services from VirtualIPPools (pure, no I/O).

:func:`plan` takes every Service the operator serves, every pool and every
VirtualIP, and says, for the whole cluster at once, which VirtualIP each
Service should have, which of the operator's VirtualIPs should go, what each
Service's ``keepvip.io/AddressAssigned`` condition is, and each pool's status.

The existing VirtualIPs are the source of truth, never the operator's memory:
they survive restarts, so a Service keeps its address across restarts and
pool edits. Decisions, in this order:

1. A Service already served by one of our VirtualIPs keeps it while it still
   fits (same families, same requested addresses, a share still compatible).
   If the pool no longer contains the address (a shrunk or deleted pool) it
   keeps serving it, with reason ``AddressOutsidePool``: taking an address
   away from a live Service would cut its clients off; deleting its VirtualIP
   (or the Service) re-allocates.
2. The others, oldest first (creationTimestamp, then namespace/name), get the
   addresses they request, or join a compatible share, or the first free
   address of the first eligible pool (by name), one per IP family, all from
   one pool. A Service that leaves a shared router (its policy became Local)
   gets its old address back when it is still free.

Shared routers (pool ``sharedRouter: true``): a single-stack Service with
externalTrafficPolicy Cluster that shares no address goes into a VRRP
router of its pool, namespace and family, one address per Service, instead
of a VirtualIP (and a VRID) of its own: into the first such router (by
name) with room, else a new one. A router holds :data:`ROUTER_CAPACITY`
addresses: all of them fit one advertisement (255 IPv4 addresses would;
IPv6 stops at 77 to fit the 1280-byte minimum MTU), so nothing is bound
that the adverts do not list. A member stays while it fits; a Service that
turns Local leaves (its address moves to a VirtualIP of its own); one that
turns Cluster keeps its own VirtualIP (moving a live address without need
would cut its clients off; delete the VirtualIP to move it). Routers are
rebuilt from the VirtualIPs alone (``serviceRef.addressPerService``), so a
restarted operator finds every member where it was.

An address is taken while any VirtualIP names it, **including one being
deleted**: its agents may still hold the address until they are gone, and
two VRRP instances must never claim one address. The waiting Service gets
it when the VirtualIP has left the API (a VirtualIP of ours has no finalizer,
so that is at once unless the deletion waits for its DaemonSet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keepvip_api.model import MAX_ADDRESSES, MAX_ADVERTISED
from keepvip_api.pool import SERVICES
from keepvip_operator.lbmodel import (
    IP,
    MAX_SHARED,
    Holding,
    LBService,
    Pool,
    render_router,
    render_virtualip,
    router_name,
    safe_label,
    vip_name,
)

CONDITION = "keepvip.io/AddressAssigned"
ASSIGNED = "AddressAssigned"
BY_VIRTUALIP = "ServedByVirtualIP"
OUTSIDE = "AddressOutsidePool"
EXHAUSTED = "PoolExhausted"
NOT_IN_POOL = "AddressNotInPool"
IN_USE = "AddressInUse"
NO_POOL = "NoPool"
INVALID = "InvalidRequest"
WAITING = "VirtualIPDeleting"
MAX_AVAILABLE = 2**31 - 1
ROUTER_CAPACITY = {f: min(n, MAX_ADDRESSES) for f, n in MAX_ADVERTISED.items()}
"""Services (one address each) in one shared router, per family."""


@dataclass(frozen=True)
class Outcome:
    """A Service's AddressAssigned condition."""

    status: Literal["True", "False"]
    reason: str
    message: str
    addresses: tuple[IP, ...] = ()
    vip: str | None = None

    @property
    def warning(self) -> bool:
        return self.reason not in (ASSIGNED, BY_VIRTUALIP)


@dataclass(frozen=True)
class Wanted:
    """One of our VirtualIPs as it should be; ``body`` None: leave it as it is."""

    namespace: str
    name: str
    addresses: tuple[IP, ...]
    services: tuple[LBService, ...]
    body: Mapping[str, Any] | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PoolStatus:
    assigned: int
    available: int
    services: tuple[str, ...]

    def body(self) -> dict[str, Any]:
        return {
            "assigned": self.assigned,
            "available": self.available,
            "services": list(self.services),
        }


@dataclass(frozen=True)
class Plan:
    outcomes: Mapping[str, Outcome]
    """Service key -> its condition."""
    wanted: tuple[Wanted, ...]
    delete: tuple[str, ...]
    """Keys of our VirtualIPs that serve no Service any more (or a Service that left)."""
    pools: Mapping[str, PoolStatus]


@dataclass
class _Group:
    """Services on one set of addresses: one VirtualIP."""

    namespace: str
    addresses: tuple[IP, ...]
    pool: Pool | None
    members: list[LBService]
    name: str | None = None
    """The existing VirtualIP's name; None until named."""

    def why_not(self, svc: LBService) -> str | None:
        """Why ``svc`` cannot join; None if it can."""
        first = self.members[0]
        if svc.namespace != self.namespace:
            return f"used by Service {first.key} in another namespace"
        if svc.share_key is None:
            return f"used by Service {first.key}; add the annotation keepvip.io/allow-shared-ip to share it"
        for m in self.members:
            if m.share_key != svc.share_key:
                return (
                    f"used by Service {m.key} with sharing key {m.share_key!r}, "
                    f"not {svc.share_key!r}"
                    if m.share_key
                    else f"used by Service {m.key}, which does not allow sharing"
                )
            overlap = sorted(m.ports & svc.ports)
            if overlap:
                return f"shared with Service {m.key}, whose port {overlap[0]} overlaps"
        if len(self.members) >= MAX_SHARED:
            return f"already shared by {MAX_SHARED} Services (the most one VirtualIP serves)"
        if {a.version for a in self.addresses} != set(svc.families):
            return f"used by Service {first.key} for other IP families"
        return None

    def services_at(self, address: IP) -> list[LBService]:
        return self.members


@dataclass
class _Router:
    """A pool's shared VRRP router: Services of one namespace and family, one address each."""

    namespace: str
    family: int
    pool: Pool | None
    """None: the pool is gone (or invalid); the members keep their addresses."""
    members: list[tuple[LBService, IP]]
    name: str | None = None

    @property
    def addresses(self) -> tuple[IP, ...]:
        return tuple(a for _, a in self.members)

    def services_at(self, address: IP) -> list[LBService]:
        return [s for s, a in self.members if a == address]

    def takes(self, pool: Pool, svc: LBService) -> bool:
        """``svc`` (eligible for ``pool``'s routers) may join this router."""
        return (
            self.pool is pool
            and self.namespace == svc.namespace
            and (self.family,) == svc.families
            and len(self.members) < ROUTER_CAPACITY[self.family]
        )


def _shares(svc: LBService, pool: Pool) -> bool:
    """``svc`` goes into a shared router of ``pool`` (see the module docstring)."""
    return (
        pool.spec.shared_router
        and svc.cluster_policy
        and len(svc.families) == 1
        and svc.share_key is None
        and not svc.request_problem
    )


@dataclass
class _State:
    pools: list[Pool]
    taken: dict[IP, Holding | _Group | _Router] = field(default_factory=dict)
    groups: list[_Group] = field(default_factory=list)
    routers: list[_Router] = field(default_factory=list)
    preferred: dict[str, IP] = field(default_factory=dict)
    """Service key -> the address it had in a router it left (given back when free)."""
    names: set[str] = field(default_factory=set)
    """namespace/name of every VirtualIP, existing or planned."""
    orphans: dict[str, str] = field(default_factory=dict)
    """Service key -> the name of its VirtualIP that no longer fits it."""

    def take(self, group: _Group) -> None:
        self.groups.append(group)
        for a in group.addresses:
            self.taken[a] = group

    def join(self, router: _Router, svc: LBService, address: IP) -> None:
        if router not in self.routers:
            self.routers.append(router)
        router.members.append((svc, address))
        self.taken[address] = router

    def pool_for(self, svc: LBService, addresses: Iterable[IP]) -> Pool | None:
        wanted = list(addresses)
        for pool in self.pools:
            if (
                pool.serves(svc.namespace)
                and (svc.pool is None or pool.name == svc.pool)
                and all(pool.spec.contains(a) for a in wanted)
            ):
                return pool
        return None


def plan(services: Iterable[LBService], pools: Iterable[Pool], vips: Iterable[Holding]) -> Plan:
    """Decide every Service's VirtualIP (see the module docstring)."""
    svcs = sorted(services, key=lambda s: s.order)
    by_key = {s.key: s for s in svcs}
    holdings = sorted(vips, key=lambda h: h.key)
    # Pools used only by VirtualIPs (usedBy) are grants, never handed out to Services.
    st = _State(pools=sorted((p for p in pools if p.spec.used_for(SERVICES)),
                             key=lambda p: p.name))  # fmt: skip
    st.names = {h.key for h in holdings}
    outcomes: dict[str, Outcome] = {}
    placed: set[str] = set()
    delete: list[str] = []

    # 1. What the VirtualIPs already serve, kept while it still fits.
    for h in holdings:
        _keep(h, by_key, st, outcomes, placed, delete)

    # 2. Everyone else, oldest first.
    for svc in svcs:
        if svc.key in placed:
            continue
        outcome = _place(svc, st)
        if outcome is not None:
            outcomes[svc.key] = outcome

    wanted = [_finish(g, st, outcomes) for g in st.groups]
    wanted += [_finish_router(r, st, outcomes) for r in st.routers]
    reused = {w.key for w in wanted}
    return Plan(
        outcomes=outcomes,
        wanted=tuple(wanted),
        delete=tuple(k for k in delete if k not in reused),
        pools=_pool_statuses(st),
    )


def _keep(
    h: Holding,
    by_key: Mapping[str, LBService],
    st: _State,
    outcomes: dict[str, Outcome],
    placed: set[str],
    delete: list[str],
) -> None:
    """Step 1 for one VirtualIP: the address is taken; our Services on it keep it if they fit."""
    members = [by_key[f"{h.namespace}/{n}"] for n in h.services if f"{h.namespace}/{n}" in by_key]
    members = [m for m in members if m.key not in placed]
    if not h.managed or h.deleting:
        for a in h.addresses:
            st.taken.setdefault(a, h)
    if not h.managed:
        # A VirtualIP someone wrote for the Service (serviceRef): it is served, no pool needed.
        for m in members:
            outcomes[m.key] = Outcome(
                "True",
                BY_VIRTUALIP,
                f"VirtualIP {h.name} (not from a pool) fronts this Service",
                h.addresses,
                h.name,
            )
            placed.add(m.key)
        return
    owners = {uid for _n, uid in h.owners}
    members = [m for m in members if m.uid in owners]
    if h.per_service and not h.deleting:
        _keep_router(h, members, st, placed, delete)
        return
    if h.deleting:
        for m in members:
            outcomes[m.key] = Outcome(
                "False", WAITING, f"its VirtualIP {h.name} is being deleted; waiting for it to go"
            )
            placed.add(m.key)
        return
    group = _Group(h.namespace, h.addresses, None, [], name=h.name)
    for m in sorted(members, key=lambda s: s.order):
        if _keeps(m, h) and (not group.members or group.why_not(m) is None):
            group.members.append(m)
    if not group.members:
        # Its Services left (or no longer fit): the name is reused if one of them gets a
        # new address in step 2 (the VirtualIP is updated in place), else the VirtualIP goes.
        for m in members:
            st.orphans.setdefault(m.key, h.name)
        delete.append(h.key)
        return
    group.pool = st.pool_for(group.members[0], h.addresses)
    st.take(group)
    placed.update(m.key for m in group.members)


def _keep_router(
    h: Holding, members: list[LBService], st: _State, placed: set[str], delete: list[str]
) -> None:
    """Step 1 for a shared router: the members that still fit stay, in their order."""
    pool = next((p for p in st.pools if safe_label(p.name) == h.pool_label), None)
    router = _Router(h.namespace, h.addresses[0].version, pool, [], h.name)
    by_name = {m.name: m for m in members}
    for name, address in zip(h.services, h.addresses, strict=False):
        svc = by_name.get(name)
        if svc is None or svc.key in placed:
            continue
        if (
            svc.cluster_policy
            and svc.families == (address.version,)
            and svc.share_key is None
            and not svc.request_problem
            and (not svc.requested or svc.requested == (address,))
            and (svc.pool is None or pool is None or svc.pool == pool.name)
        ):
            st.join(router, svc, address)
            placed.add(svc.key)
        else:  # it moves out (say, to externalTrafficPolicy Local): offer its address back
            st.preferred[svc.key] = address
    if not router.members:
        delete.append(h.key)


def _keeps(svc: LBService, h: Holding) -> bool:
    """The Service still fits the VirtualIP it has."""
    if svc.request_problem:
        return False
    if {a.version for a in h.addresses} != set(svc.families):
        return False
    return not svc.requested or set(svc.requested) == set(h.addresses)


def _place(svc: LBService, st: _State) -> Outcome | None:
    """Find ``svc`` an address (joining or founding a group); the failure, else None."""
    if svc.request_problem:
        return Outcome("False", INVALID, svc.request_problem)
    if svc.requested:
        return _place_requested(svc, st)
    if svc.share_key:
        for group in st.groups:
            fits = group.pool is not None and group.pool.serves(svc.namespace)
            if fits and group.why_not(svc) is None and (svc.pool is None or _in(group, svc.pool)):
                group.members.append(svc)
                return None
    eligible = [
        p
        for p in st.pools
        if p.serves(svc.namespace)
        and (p.name == svc.pool if svc.pool else p.spec.auto_assign)
        and all(any(r.first.version == f for r in p.spec.addresses) for f in svc.families)
    ]
    if not eligible:
        families = " and ".join(f"IPv{f}" for f in svc.families)
        which = f"pool {svc.pool!r}" if svc.pool else "no VirtualIPPool with autoAssign"
        return Outcome(
            "False",
            NO_POOL,
            f"{which} serves namespace {svc.namespace} with {families} addresses"
            if not svc.pool
            else f"{which} does not exist, does not serve namespace {svc.namespace} "
            f"or has no {families} addresses",
        )
    for pool in eligible:
        if _shares(svc, pool):
            address = _free(pool, svc.families[0], svc, st)
            if address is not None:
                _join_router(pool, svc, address, st)
                return None
            continue
        chosen = [_free(pool, f, svc, st) for f in svc.families]
        if all(a is not None for a in chosen):
            st.take(_Group(svc.namespace, tuple(a for a in chosen if a), pool, [svc]))
            return None
    listed = ", ".join(f"{p.name} ({p.spec.size} addresses)" for p in eligible)
    return Outcome("False", EXHAUSTED, f"every address of pool(s) {listed} is in use")


def _in(group: _Group, pool_name: str) -> bool:
    return group.pool is not None and group.pool.name == pool_name


def _join_router(pool: Pool, svc: LBService, address: IP, st: _State) -> None:
    """Into the first router of the pool, namespace and family with room, else a new one."""
    router = next((r for r in st.routers if r.takes(pool, svc)), None)
    if router is None:
        router = _Router(svc.namespace, svc.families[0], pool, [])
    st.join(router, svc, address)


def _free(pool: Pool, family: int, svc: LBService, st: _State) -> IP | None:
    """The address ``svc`` had in a router it left, if free and in ``pool``; else the first free."""
    had = st.preferred.get(svc.key)
    if (
        had is not None
        and had.version == family
        and had not in st.taken
        and pool.spec.contains(had)
    ):
        return had
    return _first_free(pool, family, st)


def _first_free(pool: Pool, family: int, st: _State) -> IP | None:
    for a in pool.spec.candidates():
        if a.version == family and a not in st.taken:
            return a
    return None


def _place_requested(svc: LBService, st: _State) -> Outcome | None:
    wanted = tuple(sorted(svc.requested, key=lambda a: svc.families.index(a.version)))
    listed = ", ".join(str(a) for a in wanted)
    holders = {id(st.taken[a]): st.taken[a] for a in wanted if a in st.taken}
    if holders:
        holder = next(iter(holders.values()))
        if (
            isinstance(holder, _Group)
            and len(holders) == 1
            and set(holder.addresses) == set(wanted)
        ):
            why = holder.why_not(svc)
            if why is None:
                holder.members.append(svc)
                return None
            return Outcome("False", IN_USE, f"{listed} is {why}")
        if isinstance(holder, _Router):
            users = ", ".join(s.key for a in wanted for s in holder.services_at(a))
            return Outcome("False", IN_USE, f"{listed}: used by Service {users}")
        if isinstance(holder, _Group):
            return Outcome(
                "False",
                IN_USE,
                f"{listed}: used by Service {holder.members[0].key} (other addresses)",
            )
        return Outcome("False", IN_USE, f"{listed}: used by VirtualIP {holder.key}")
    pool = st.pool_for(svc, wanted)
    if pool is None:
        serving = [p.name for p in st.pools if p.serves(svc.namespace)]
        where = ", ".join(serving) if serving else "none"
        return Outcome(
            "False",
            NOT_IN_POOL,
            f"{listed} is not in a VirtualIPPool that serves namespace {svc.namespace} "
            f"(pools serving it: {where})",
        )
    if _shares(svc, pool):
        _join_router(pool, svc, wanted[0], st)
        return None
    st.take(_Group(svc.namespace, wanted, pool, [svc]))
    return None


def _finish(group: _Group, st: _State, outcomes: dict[str, Outcome]) -> Wanted:
    """Name the group's VirtualIP, render it, and say what each member has."""
    if group.name is None:
        first = min(group.members, key=lambda s: s.name)
        again = [st.orphans[m.key] for m in group.members if m.key in st.orphans]
        name = again[0] if again else vip_name(first.name)
        if again:
            st.names.discard(f"{group.namespace}/{name}")
        st.orphans = {k: v for k, v in st.orphans.items() if v != name}
        if f"{group.namespace}/{name}" in st.names:  # a VirtualIP someone else named so
            name = vip_name(f"{first.name}-{first.uid[:8]}")
        group.name = name
        st.names.add(f"{group.namespace}/{name}")
    listed = ", ".join(str(a) for a in group.addresses)
    body = None
    if group.pool is not None:
        body = render_virtualip(
            group.namespace, group.name, group.pool, group.addresses, group.members
        )
        outcome = Outcome(
            "True",
            ASSIGNED,
            f"{listed} from pool {group.pool.name} (VirtualIP {group.name})",
            group.addresses,
            group.name,
        )
    else:
        outcome = Outcome(
            "True",
            OUTSIDE,
            f"{listed} is no longer in a VirtualIPPool that serves namespace {group.namespace}; "
            f"it keeps serving. Delete VirtualIP {group.name} (or the Service) to get an "
            "address from the pools",
            group.addresses,
            group.name,
        )
    for m in group.members:
        outcomes[m.key] = outcome
    return Wanted(group.namespace, group.name, group.addresses, tuple(group.members), body)


def _finish_router(router: _Router, st: _State, outcomes: dict[str, Outcome]) -> Wanted:
    """Name a new router, render it, and say what each member has."""
    pool = router.pool
    if router.name is None:
        assert pool is not None  # a new router is always opened for a pool
        n = 0
        while f"{router.namespace}/{router_name(pool.name, router.family, n)}" in st.names:
            n += 1
        router.name = router_name(pool.name, router.family, n)
        st.names.add(f"{router.namespace}/{router.name}")
    body = None
    if pool is not None:
        body = render_router(router.namespace, router.name, pool, router.members)
    for svc, address in router.members:
        if pool is not None and pool.serves(router.namespace) and pool.spec.contains(address):
            outcomes[svc.key] = Outcome(
                "True",
                ASSIGNED,
                f"{address} from pool {pool.name} (shared VRRP router {router.name})",
                (address,),
                router.name,
            )
        else:
            outcomes[svc.key] = Outcome(
                "True",
                OUTSIDE,
                f"{address} is no longer in a VirtualIPPool that serves namespace "
                f"{router.namespace}; it keeps serving (shared VRRP router {router.name})",
                (address,),
                router.name,
            )
    return Wanted(
        router.namespace,
        router.name,
        router.addresses,
        tuple(s for s, _ in router.members),
        body,
    )


def _pool_statuses(st: _State) -> dict[str, PoolStatus]:
    out = {}
    for pool in st.pools:
        mine = [a for a in st.taken if pool.spec.contains(a)]
        services = sorted(
            m.key
            for a in mine
            if isinstance(g := st.taken[a], _Group | _Router)
            for m in g.services_at(a)
        )
        out[pool.name] = PoolStatus(
            assigned=len(mine),
            available=min(pool.spec.size - len(mine), MAX_AVAILABLE),
            services=tuple(dict.fromkeys(services)),
        )
    return out
