"""The VirtualIPPool model (``keepvip.io/v1alpha1``, cluster-scoped): addresses granted to namespaces.

A pool is what a cluster admin writes once so that users get a VIP by
creating a ``type: LoadBalancer`` Service of class ``keepvip.io/vrrp``: the
operator takes an address from a pool and writes a VirtualIP for the Service
with the pool's placement and election defaults. The pool's address ranges
are parsed here (pure), so the operator's allocator and the CRD agree on
what ``192.0.2.10-192.0.2.20`` means.

A pool is also a grant: ``usedBy: [VirtualIPs]`` lets the VirtualIPs of its
namespaces claim its addresses, and with address grants on (the default in
Kubernetes mode) those are the only addresses a user's VirtualIP may claim
(:mod:`keepvip_api.acceptance`). A pool without ``usedBy`` serves Services
only, as every pool did before the field existed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from keepvip_api import election
from keepvip_api.base import Model
from keepvip_api.errors import SpecError, field_problems, problems_of

IP = IPv4Address | IPv6Address
Usage = Literal["Services", "VirtualIPs"]
SERVICES: Usage = "Services"
VIRTUALIPS: Usage = "VirtualIPs"
POOL_KIND = "VirtualIPPool"
POOL_PLURAL = "virtualippools"
MAX_RANGES = 64


@dataclass(frozen=True, order=True)
class AddressRange:
    """An inclusive range of addresses of one family: ``first..last``."""

    first: IP
    last: IP

    def __contains__(self, address: object) -> bool:
        return (
            isinstance(address, IPv4Address | IPv6Address)
            and address.version == self.first.version
            and int(self.first) <= int(address) <= int(self.last)
        )

    def __iter__(self) -> Iterator[IP]:
        current = int(self.first)
        while current <= int(self.last):
            yield ip_address(current) if self.first.version == 4 else IPv6Address(current)
            current += 1

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_range(value: Any) -> AddressRange:
    """'192.0.2.10', '192.0.2.0/28' or '192.0.2.10-192.0.2.20'.

    An IPv4 CIDR of /30 or wider yields its host addresses: a VIP on the
    network or broadcast address of a LAN would reach nobody or everybody.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an address range string")
    text = value.strip()
    try:
        if "-" in text:
            lo, hi = (ip_address(p.strip()) for p in text.split("-", 1))
            if lo.version != hi.version:
                raise ValueError(f"{value!r} mixes IPv4 and IPv6")
            if int(hi) < int(lo):
                raise ValueError(f"{value!r}: the first address is above the last")
            return AddressRange(lo, hi)
        if "/" in text:
            net = ip_network(text, strict=True)
            if net.version == 4 and net.prefixlen <= 30:
                return AddressRange(net[1], net[-2])
            return AddressRange(net[0], net[-1])
        one = ip_address(text)
        return AddressRange(one, one)
    except ValueError as exc:
        if "mixes" in str(exc) or "above" in str(exc):
            raise
        raise ValueError(
            f"{value!r} is not an address, a CIDR (host bits zero) or a range first-last"
        ) from None


Range = Annotated[
    AddressRange,
    PlainValidator(parse_range),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 100,
            "x-kubernetes-validations": [
                {
                    "rule": "isIP(self) || isCIDR(self) || (self.split('-').size() == 2 && "
                    "self.split('-').all(p, isIP(p.trim())))",
                    "message": "must be an address, a CIDR or a range first-last",
                }
            ],
        }
    ),
]


class VirtualIPPoolSpec(Model):
    addresses: tuple[Range, ...] = Field(min_length=1, max_length=MAX_RANGES)
    """Addresses to hand out: single addresses, CIDRs (IPv4: without the network and broadcast
    addresses) or ranges first-last, IPv4 and/or IPv6. A VIP is bound as /32 (IPv6: /128)."""
    auto_assign: bool = True
    """Give addresses to Services that request none; false: only to Services that ask for one of
    these addresses."""
    namespaces: tuple[str, ...] = Field(default=(), max_length=64)
    """Only Services (and VirtualIPs) in these namespaces may use the pool; empty: every
    namespace."""
    used_by: tuple[Usage, ...] = Field(
        default=(SERVICES,),
        min_length=1,
        max_length=2,
        # Added in 0.3: defaulted by keepvip, not the API server (keepvip_api.crd.AGENT_DEFAULT),
        # so an operator of the previous release still reads every pool during an upgrade.
        json_schema_extra={
            "x-keepvip-agent-default": True,
            "x-kubernetes-list-type": "set",
        },
    )
    """What may take addresses from the pool: Services (LoadBalancer Services, through the
    VirtualIPs the operator makes for them) and/or VirtualIPs (written by users in the pool's
    namespaces; with address grants on, the only addresses a VirtualIP may claim). Left out:
    Services, as before this field existed."""
    shared_router: bool = False
    """Services with externalTrafficPolicy Cluster (single-stack) share one VRRP router, so one
    VRID, per namespace and IP family: up to 240 IPv4 or 77 IPv6 addresses each, one per
    Service, failing over together and not gated on endpoints. Services with policy Local (or
    dual-stack, or sharing an address) keep a VirtualIP each. False: a VirtualIP (and VRID) per
    Service, each gated on its own endpoints."""
    interface: election.Interface
    """Default: the interface whose connected route covers the address."""
    node_selector: election.NodeSelector
    """The nodes that may hold the pool's addresses (agents run only there)."""
    tolerations: election.Tolerations
    """Taints the agents tolerate."""
    advert_interval: election.AdvertInterval
    """VRRPv3 advertisement interval of the VirtualIPs made from this pool."""
    priority: election.Priority  # type: ignore[valid-type]
    """Priority of nodes not listed in ``nodes``."""
    nodes: election.Nodes
    """Per-node priorities."""
    preempt: election.Preempt
    """False (default): a healthy master keeps the VIP when a higher-priority node returns."""
    preempt_delay: election.PreemptDelay  # type: ignore[valid-type]
    """With preempt: how long a lower-priority master must be seen before we take over."""
    fencing: election.Fencing
    """none keeps serving when the API server is unreachable; strict drops the VIP once a master
    has been cut off from the API longer than its lease."""
    on_cordon: election.OnCordon
    """yield (default): a node that is cordoned (spec.unschedulable, as kubectl cordon
    and drain set it) or labelled node.kubernetes.io/exclude-from-external-load-balancers hands
    the VIP over without a gap and stays a backup of last resort (priority 1) until it is
    uncordoned; ignore: cordon changes nothing."""
    auth_hmac: election.AuthHMACField
    """Authenticated adverts for the VirtualIPs made from this pool (secretName: a Secret in the
    agents' namespace)."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualIPPoolSpec:
        problems: list[tuple[str, str]] = []
        ms = round(self.advert_interval * 1000)
        if ms % 10 or not 10 <= ms <= 40950:
            problems.append(("advertInterval", "must be 10ms..40.95s in 10ms steps"))
        names = [n.name for n in self.nodes]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(("nodes", f"{name!r} is listed more than once"))
        if len(set(self.used_by)) != len(self.used_by):
            problems.append(("usedBy", "a value is listed twice"))
        if problems:
            raise field_problems(problems)
        return self

    def used_for(self, usage: Usage) -> bool:
        return usage in self.used_by

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.advertInterval) >= duration('10ms') && "
                    "duration(self.advertInterval) <= duration('40.95s') && "
                    "duration(self.advertInterval).getMilliseconds() % 10 == 0",
                    "message": "must be 10ms..40.95s in 10ms steps",
                    "fieldPath": ".advertInterval",
                }
            ]
        }
    }

    def contains(self, address: IP) -> bool:
        return any(address in r for r in self.addresses)

    def candidates(self) -> Iterator[IP]:
        """Every address of the pool, in the order they are handed out."""
        seen: set[IP] = set()
        for r in self.addresses:
            for a in r:
                if a not in seen:
                    seen.add(a)
                    yield a

    @property
    def size(self) -> int:
        return sum(r.size for r in self.addresses)


class VirtualIPPoolStatus(Model):
    assigned: int | None = None
    """Addresses of the pool in use by VirtualIPs."""
    available: int | None = None
    """Addresses left (capped at 2^31 - 1 for large IPv6 ranges)."""
    services: tuple[str, ...] = ()
    """namespace/name of the Services holding an address of the pool."""


class PoolMetadata(Model):
    model_config = Model.model_config | {"extra": "ignore"}
    name: str = Field(min_length=1, max_length=253)


class VirtualIPPool(Model):
    api_version: Literal["keepvip.io/v1alpha1"]
    kind: Literal["VirtualIPPool"]
    metadata: PoolMetadata
    spec: VirtualIPPoolSpec


def parse_pool(obj: Mapping[str, Any]) -> VirtualIPPool:
    """Validate one VirtualIPPool object; raise :class:`SpecError` listing every problem."""
    try:
        return VirtualIPPool.model_validate_json(json.dumps(obj, default=str))
    except ValidationError as exc:
        raise SpecError(problems_of(exc, "")) from None
