"""LoadBalancer Services, pools and VirtualIPs as the allocator sees them (pure, no I/O).

The only place that reads raw Service, VirtualIPPool and VirtualIP objects
for the load-balancer feature, and the place that renders the VirtualIP the
operator writes for a Service. The allocator (:mod:`keepvip_operator.pools`)
takes only these frozen values.

Names: a Service's own VirtualIP is ``lb-<service>``; a pool's shared VRRP
router (Services with externalTrafficPolicy Cluster, pool ``sharedRouter``)
is ``lb-pool-<pool>-ipv<family>-<n>``, one address per Service
(``serviceRef.addressPerService``). Service names are DNS
labels of up to 63 characters, and a VirtualIP name must fit a label value
(63, it labels the agent pods), so a long name is cut and suffixed with a
hash of the whole name (``lb-<first 50>-<8 hex>``): deterministic, so a
restarted operator finds the same object, and distinct for distinct names.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from typing import Any

from keepvip_api import SpecError, from_api_object, pool_from_api_object
from keepvip_api.election import POOL_FIELDS
from keepvip_api.model import VirtualIPSpec
from keepvip_api.pool import VirtualIPPoolSpec
from keepvip_api.times import EPOCH, parse_time
from keepvip_operator import names

IP = IPv4Address | IPv6Address
LOAD_BALANCER_CLASS = "keepvip.io/vrrp"
REQUEST_ANNOTATION = "keepvip.io/load-balancer-ips"
"""Comma-separated addresses a Service asks for (one per IP family)."""
SHARE_ANNOTATION = "keepvip.io/allow-shared-ip"
"""Services of a namespace with the same value may share an address on distinct ports."""
POOL_ANNOTATION = "keepvip.io/address-pool"
"""Take the address from this pool only (even one with autoAssign: false)."""
POOL_LABEL = "keepvip.io/pool"
SERVICE_LABEL = "keepvip.io/service"
ROUTER_LABEL = "keepvip.io/shared-router"
"""On a pool's shared router: ``ipv4`` or ``ipv6``."""
VIP_PREFIX = "lb-"
MAX_SHARED = 17
"""Services on one address (allow-shared-ip): kept at the 17 that serviceRef held before
sharedWith grew to 239 for shared routers (one address per Service there)."""
FAMILY = {"IPv4": 4, "IPv6": 6}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def safe_label(value: str) -> str:
    """A label value (at most 63 characters) standing for ``value``, hashed when too long."""
    if len(value) <= names.MAX_LABEL_VALUE:
        return value
    return f"{value[:50].rstrip('-.')}-{_hash(value)}"


def router_name(pool: str, family: int, n: int) -> str:
    """The ``n``-th shared router of ``pool`` for IPv``family`` (see the module docstring)."""
    tail = f"-ipv{family}-{n}"
    full = f"{VIP_PREFIX}pool-{pool}"
    if len(full) + len(tail) > names.MAX_LABEL_VALUE:
        full = f"{VIP_PREFIX}pool-{pool[:30].rstrip('-.')}-{_hash(pool)}"
    return full + tail


def vip_name(service: str) -> str:
    """The VirtualIP made for Service ``service`` (see the module docstring)."""
    full = VIP_PREFIX + service
    if len(full) <= names.MAX_LABEL_VALUE:
        return full
    return f"{VIP_PREFIX}{service[:50].rstrip('-')}-{_hash(service)}"


@dataclass(frozen=True, order=True)
class Port:
    port: int
    protocol: str

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class LBService:
    """A LoadBalancer Service this operator serves."""

    namespace: str
    name: str
    uid: str
    created: datetime
    generation: int
    families: tuple[int, ...]
    """4 and/or 6, the primary first (spec.ipFamilies)."""
    requested: tuple[IP, ...] = ()
    request_problem: str | None = None
    """Why the requested addresses cannot be read; the Service gets no address then."""
    share_key: str | None = None
    ports: frozenset[Port] = frozenset()
    pool: str | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    """status.conditions as read (the operator's condition among them)."""
    cluster_policy: bool = True
    """externalTrafficPolicy Cluster (the default): any node can serve it, so it may share a
    VRRP router; Local needs a router of its own, gated on the node's own endpoints."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.created, self.key)


def serves(spec: Mapping[str, Any], *, default_load_balancer: bool) -> bool:
    """A LoadBalancer Service of our class (or of none, when we are the default)."""
    if spec.get("type") != "LoadBalancer":
        return False
    cls = spec.get("loadBalancerClass")
    return cls == LOAD_BALANCER_CLASS or (cls is None and default_load_balancer)


def read_service(body: Mapping[str, Any], *, default_load_balancer: bool) -> LBService | None:
    """The Service as the allocator sees it; None if it is not ours (or being deleted)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    if meta.get("deletionTimestamp") or not serves(
        spec, default_load_balancer=default_load_balancer
    ):
        return None
    annotations = meta.get("annotations") or {}
    families = tuple(FAMILY[f] for f in spec.get("ipFamilies") or ("IPv4",) if f in FAMILY)
    raw = annotations.get(REQUEST_ANNOTATION) or spec.get("loadBalancerIP") or ""
    requested: list[IP] = []
    problem = None
    for part in filter(None, (p.strip() for p in str(raw).split(","))):
        try:
            requested.append(ip_address(part))
        except ValueError:
            problem = f"{part!r} in {REQUEST_ANNOTATION} is not an IP address"
    if not problem:
        problem = _request_problem(requested, families or (4,))
    ports = frozenset(
        Port(int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
        for p in spec.get("ports") or ()
        if isinstance(p, Mapping)
    )
    status = body.get("status") or {}
    return LBService(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
        generation=int(meta.get("generation") or 0),
        families=families or (4,),
        requested=tuple(requested),
        request_problem=problem,
        share_key=str(annotations.get(SHARE_ANNOTATION) or "") or None,
        ports=ports,
        pool=str(annotations.get(POOL_ANNOTATION) or "") or None,
        conditions=tuple(c for c in status.get("conditions") or () if isinstance(c, Mapping)),
        cluster_policy=spec.get("externalTrafficPolicy") != "Local",
    )


def _request_problem(requested: list[IP], families: tuple[int, ...]) -> str | None:
    if not requested:
        return None
    versions = [a.version for a in requested]
    if len(set(versions)) != len(versions):
        return f"{REQUEST_ANNOTATION}: at most one address per IP family"
    if set(versions) != set(families):
        want = " and ".join(f"IPv{f}" for f in families)
        return f"the Service's ipFamilies ask for {want}; the requested addresses do not match"
    return None


@dataclass(frozen=True)
class Pool:
    name: str
    spec: VirtualIPPoolSpec
    status: Mapping[str, Any] = field(default_factory=dict)

    def serves(self, namespace: str) -> bool:
        return not self.spec.namespaces or namespace in self.spec.namespaces


def is_managed(labels: Mapping[str, Any]) -> bool:
    """A VirtualIP made by this operator for Services (labelled with the pool)."""
    return POOL_LABEL in labels and labels.get(names.MANAGED_BY_LABEL) == names.FIELD_MANAGER


def read_pool(body: Mapping[str, Any]) -> Pool | SpecError:
    """The pool, or why it is invalid (an invalid pool hands out nothing)."""
    try:
        pool = pool_from_api_object(body)
    except SpecError as exc:
        return exc
    return Pool(pool.metadata.name, pool.spec, dict(body.get("status") or {}))


@dataclass(frozen=True)
class Holding:
    """A VirtualIP: the addresses it takes, and for ours the Services it serves."""

    namespace: str
    name: str
    addresses: tuple[IP, ...]
    managed: bool
    """Made by this operator for Services (labelled with the pool)."""
    services: tuple[str, ...] = ()
    """serviceRef's Services (the named one first)."""
    owners: tuple[tuple[str, str], ...] = ()
    """(name, uid) of the Services in ownerReferences."""
    pool_label: str | None = None
    deleting: bool = False
    spec: VirtualIPSpec | None = None
    per_service: bool = False
    """A shared router: ``services[i]`` has ``addresses[i]`` (serviceRef.addressPerService)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def read_virtualip(body: Mapping[str, Any]) -> Holding:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    labels = meta.get("labels") or {}
    addresses: list[IP] = []
    for a in spec.get("addresses") or () if isinstance(spec, Mapping) else ():
        try:
            addresses.append(ip_interface(str(a)).ip)
        except ValueError:
            continue  # an invalid spec: the operator reports it on the VirtualIP
    parsed: VirtualIPSpec | None = None
    with contextlib.suppress(SpecError):  # invalid: the addresses still count
        parsed = from_api_object(body).spec
    ref = parsed.service_ref if parsed else None
    managed = is_managed(labels)
    return Holding(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        addresses=tuple(addresses),
        managed=managed,
        services=ref.services if ref else (),
        owners=tuple(
            (str(o.get("name")), str(o.get("uid")))
            for o in meta.get("ownerReferences") or ()
            if isinstance(o, Mapping) and o.get("kind") == "Service"
        ),
        pool_label=labels.get(POOL_LABEL),
        deleting=bool(meta.get("deletionTimestamp")),
        spec=parsed,
        per_service=bool(ref and ref.address_per_service),
    )


# -- rendering ----------------------------------------------------------------------------------


def render_virtualip(
    namespace: str,
    name: str,
    pool: Pool,
    addresses: Iterable[IP],
    services: Iterable[LBService],
) -> dict[str, Any]:
    """The VirtualIP for these Services on these addresses, with the pool's defaults.

    One Service: it is the controller owner. Shared: every Service is an
    owner, none the controller, so the VirtualIP goes with the last one.
    The spec is validated by the model; a failure here is a bug (raises SpecError).
    """
    members = sorted(services, key=lambda s: s.name)
    defaults = pool.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec: dict[str, Any] = {k: defaults[k] for k in POOL_FIELDS if k in defaults}
    spec["addresses"] = [str(a) for a in addresses]
    ref: dict[str, Any] = {"name": members[0].name}
    if len(members) > 1:
        ref["sharedWith"] = [s.name for s in members[1:]]
    spec["serviceRef"] = ref
    shared = len(members) > 1
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                names.MANAGED_BY_LABEL: names.FIELD_MANAGER,
                POOL_LABEL: safe_label(pool.name),
                SERVICE_LABEL: members[0].name,
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": s.name,
                    "uid": s.uid,
                    "controller": not shared,
                }
                for s in members
            ],
        },
        "spec": spec,
    }
    from_api_object(body)  # raises SpecError: the pool model and the VirtualIP model disagree
    return body


def render_router(
    namespace: str, name: str, pool: Pool, members: Sequence[tuple[LBService, IP]]
) -> dict[str, Any]:
    """A pool's shared VRRP router: one address per Service, in the order given.

    ``addressPerService`` publishes each Service with its own address only;
    ``trackEndpoints: false`` because the agents gate a router on *every*
    Service it fronts, and with externalTrafficPolicy Cluster that judgement
    is the same on every node: it could only take every Service's address
    down because one of them has no Ready endpoint (kube-proxy rejects
    connections to that one instead). Every Service is an owner, none the
    controller: the router goes with the last one.
    """
    first, *rest = (s for s, _ in members)
    defaults = pool.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    spec: dict[str, Any] = {k: defaults[k] for k in POOL_FIELDS if k in defaults}
    spec["addresses"] = [str(a) for _, a in members]
    ref: dict[str, Any] = {"name": first.name}
    if rest:
        ref["sharedWith"] = [s.name for s in rest]
    spec["serviceRef"] = ref | {"addressPerService": True, "trackEndpoints": False}
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                names.MANAGED_BY_LABEL: names.FIELD_MANAGER,
                POOL_LABEL: safe_label(pool.name),
                ROUTER_LABEL: f"ipv{members[0][1].version}",
            },
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": s.name,
                    "uid": s.uid,
                    "controller": False,
                }
                for s, _ in members
            ],
        },
        "spec": spec,
    }
    from_api_object(body)  # raises SpecError: the pool model and the VirtualIP model disagree
    return body
