"""The VirtualIP model (``keepvip.io/v1alpha1``), field by field.

Strict and frozen: a YAML file and an API object are validated by the same
rules (the loader feeds both through JSON, as the API server would see them),
and nothing downstream can mutate a spec it was handed. Rules that span
fields (v2 needs whole seconds and IPv4; names unique) are model validators
here and CEL rules in the CRD, tested against each other on a real API server.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator
from pydantic.config import JsonDict

from keepvip_api import election
from keepvip_api.base import BY_NAME, Model
from keepvip_api.cluster import OnFailure, ServiceRef, Toleration, TrackPods
from keepvip_api.election import MAX_NODES, NodePriority
from keepvip_api.errors import field_problems
from keepvip_api.types import (
    Address,
    InterfaceAddress,
    duration_in,
    format_duration,
    int_in,
)

__all__ = [
    "Announce",
    "Authentication",
    "Check",
    "ExecCheck",
    "HTTPGetCheck",
    "LinkCheck",
    "Metadata",
    "NodePriority",
    "Notify",
    "OnFailure",
    "ServiceRef",
    "TCPSocketCheck",
    "Toleration",
    "TrackPods",
    "VirtualIP",
    "VirtualIPSpec",
]

MAX_ADDRESSES = 240
"""Below the 255 an advertisement's one-octet Count IPvX Addr allows (RFC 9568 5.2.6) because
the API server's estimated cost of the CEL rule "an address is listed twice" (pairs of parsed
addresses, so the square of this) exceeds its per-rule budget at 255 (v1.36: by 1.09x)."""
MAX_ADVERTISED = {4: 255, 6: 77}
"""Election-family addresses an advertisement may list so that it fits the IPv6 minimum link
MTU of 1280 bytes: IPv6 header 40 + VRRP header 8 + 16 per address (IPv4: 20 + 8 + 4 x 255 is
1048 bytes). More IPv6 addresses would need adverts that list only some of them (keepalived's
virtual_ipaddress_excluded); a VirtualIP simply may not carry more."""


def _ip(v: str) -> str:
    """CEL for the IP of an address that may carry a /prefix (invalid strings map to ::)."""
    return f"(isIP({v}) ? ip({v}) : (isCIDR({v}) ? cidr({v}).ip() : ip('::')))"


def _interval_rule(version: int, lo: str, hi: str, step_ms: int, text: str) -> JsonDict:
    d = "duration(self.advertInterval)"
    return {
        "rule": f"self.version != {version} || ({d} >= duration('{lo}') && {d} <= duration('{hi}')"
        f" && {d}.getMilliseconds() % {step_ms} == 0)",
        "message": f"must be {text} for version {version}",
        "fieldPath": ".advertInterval",
    }


# The CRD's versions of VirtualIPSpec._cross_field_rules; both are exercised by
# the same table of bad inputs against a real API server.
SPEC_RULES: list[JsonValue] = [
    _interval_rule(3, "10ms", "40.95s", 10, "10ms..40.95s in 10ms steps"),
    _interval_rule(2, "1s", "255s", 1000, "whole seconds 1s..255s"),
    {
        "rule": f"self.version != 2 || self.addresses.all(a, {_ip('a')}.family() == 4)",
        "message": "version 2 carries IPv4 addresses only",
        "fieldPath": ".addresses",
    },
    {
        "rule": "self.version == 2 || !has(self.authentication)",
        "message": "only version 2 has authentication (RFC 9568 removed it)",
        "fieldPath": ".authentication",
    },
    {
        "rule": "!has(self.authentication) || !has(self.authHMAC)",
        "message": "authentication (the v2 password) and authHMAC exclude each other",
        "fieldPath": ".authHMAC",
    },
    {
        "rule": f"self.addresses.all(a, self.addresses.exists_one(b, {_ip('b')} == {_ip('a')}))",
        "message": "an address is listed twice",
        "fieldPath": ".addresses",
    },
    {
        "rule": f"self.addresses.filter(a, {_ip('a')}.family() == "
        f"{_ip('self.addresses[0]')}.family()).size() <= "
        f"({_ip('self.addresses[0]')}.family() == 4 ? {MAX_ADVERTISED[4]} : {MAX_ADVERTISED[6]})",
        "message": f"an advertisement lists at most {MAX_ADVERTISED[4]} IPv4 or "
        f"{MAX_ADVERTISED[6]} IPv6 addresses (of addresses[0]'s family)",
        "fieldPath": ".addresses",
    },
    {
        "rule": "!has(self.serviceRef) || !has(self.serviceRef.addressPerService) || "
        "!self.serviceRef.addressPerService || size(self.addresses) == 1 + "
        "(has(self.serviceRef.sharedWith) ? size(self.serviceRef.sharedWith) : 0)",
        "message": "serviceRef.addressPerService: one address per Service (name and sharedWith)",
        "fieldPath": ".addresses",
    },
    {
        "rule": "!has(self.unicastPeers) || self.unicastPeers.all(p, "
        f"!isIP(p) || ip(p).family() == {_ip('self.addresses[0]')}.family())",
        "message": "must be of the family of addresses[0], on which the election runs",
        "fieldPath": ".unicastPeers",
    },
]


class TCPSocketCheck(Model):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int_in(1, 65535)  # type: ignore[valid-type]


class HTTPGetCheck(Model):
    url: str = Field(pattern=r"^https?://", max_length=2048)
    expect_status: tuple[int_in(100, 599), ...] = ()  # type: ignore[valid-type]
    """Statuses that count as healthy; empty means any 2xx or 3xx."""


class ExecCheck(Model):
    command: tuple[str, ...] = Field(min_length=1)
    """Run without a shell; exit status 0 is healthy, anything else (including a failure to start) is not."""


class LinkCheck(Model):
    interface: str = Field(min_length=1, max_length=15)
    """Healthy while the interface exists, is up and has carrier."""


class Check(Model):
    """One health check; exactly one of tcpSocket, httpGet, exec, link."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.tcpSocket), has(self.httpGet), has(self.exec), "
                    "has(self.link)].filter(x, x).size() == 1",
                    "message": "exactly one of tcpSocket, httpGet, exec, link is required",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    tcp_socket: TCPSocketCheck | None = None
    http_get: HTTPGetCheck | None = None
    exec: ExecCheck | None = None
    link: LinkCheck | None = None
    interval: duration_in(0.1, 3600) = 1.0  # type: ignore[valid-type]
    timeout: duration_in(0.01, 3600) = 1.0  # type: ignore[valid-type]
    rise: int_in(1, 100) = 1  # type: ignore[valid-type]
    """Consecutive successes that make a failing check healthy again."""
    fall: int_in(1, 100) = 1  # type: ignore[valid-type]
    """Consecutive failures that make a healthy check fail."""
    on_failure: OnFailure

    @model_validator(mode="after")
    def _exactly_one_probe(self) -> Check:
        kinds = [k for k in ("tcp_socket", "http_get", "exec", "link") if getattr(self, k)]
        if len(kinds) != 1:
            raise field_problems(
                [
                    (
                        "",
                        f"exactly one of tcpSocket, httpGet, exec, link is required (got {len(kinds)})",
                    )
                ]
            )
        return self

    @property
    def kind(self) -> str:
        for k in ("tcp_socket", "http_get", "exec", "link"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated to have one probe")  # pragma: no cover


class Notify(Model):
    """Commands (argv, no shell) run on entering a state, like keepalived's notify scripts.

    They get KEEPVIP_NAME, KEEPVIP_STATE, KEEPVIP_OLD_STATE, KEEPVIP_PRIORITY and
    KEEPVIP_REASON in their environment.
    """

    master: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    fault: tuple[str, ...] = ()


class Announce(Model):
    """Gratuitous ARP / unsolicited NA on becoming master."""

    count: int_in(1, 100) = 3  # type: ignore[valid-type]
    """How many announcements on becoming master (the first goes at once)."""
    interval: duration_in(0, 10) = 0.05  # type: ignore[valid-type]
    """Time between those announcements."""
    refresh: duration_in(0, 3600) = 0.0  # type: ignore[valid-type]
    """Announce again this often while master; 0s turns it off."""


class Authentication(Model):
    """VRRPv2 simple-text authentication (keepalived ``auth_type PASS``). Not a security measure."""

    password: str = Field(min_length=1, max_length=8)


class VirtualIPSpec(Model):
    addresses: tuple[InterfaceAddress, ...] = Field(min_length=1, max_length=MAX_ADDRESSES)
    """VIPs, IPv4 and/or IPv6; they move together. The election runs on addresses[0]'s family."""
    interface: election.Interface
    """Default: the interface whose connected route covers addresses[0]."""
    virtual_router_id: int_in(1, 255) | None = Field(  # type: ignore[valid-type]
        default=None, alias="virtualRouterID"
    )
    """VRID; required standalone, allocated by the operator when left out in Kubernetes."""
    version: Literal[2, 3] = 3
    """VRRP version: 3 (RFC 9568, IPv4 and IPv6) or 2 (RFC 3768, IPv4) for keepalived fleets."""
    advert_interval: election.AdvertInterval
    """v3: 10ms steps from 10ms to 40.95s; v2: whole seconds 1s..255s."""
    priority: election.Priority  # type: ignore[valid-type]
    """Priority of nodes not listed in ``nodes``."""
    nodes: election.Nodes
    """Per-node priorities; names are Kubernetes node names (standalone: --node)."""
    preempt: election.Preempt
    """False (default): a healthy master keeps the VIP when a higher-priority node returns."""
    preempt_delay: election.PreemptDelay  # type: ignore[valid-type]
    """With preempt: how long a lower-priority master must be seen before we take over."""
    unicast_peers: tuple[Address, ...] = Field(default=(), max_length=MAX_NODES)
    """Send adverts to these addresses instead of the multicast group; others are dropped."""
    checks: tuple[Check, ...] = Field(default=(), max_length=32, json_schema_extra=BY_NAME)
    """Health checks run by each agent on its own node."""
    notify: Notify = Notify()
    """Standalone: commands run on state changes."""
    announce: Announce = Announce()
    """Gratuitous ARP / unsolicited NA on becoming master."""
    address_lifetime: duration_in(2, 3600) = 5.0  # type: ignore[valid-type]
    """Kernel lifetime of the bound VIP, renewed by a live master: a killed agent's VIP expires."""
    authentication: Authentication | None = None
    """VRRPv2 only: keepalived's simple-text password."""
    auth_hmac: election.AuthHMACField
    """Authenticated adverts (HMAC-SHA256 with anti-replay and key rotation, keepalived 2.4's
    auth_hmac); not with version 2's password."""
    node_selector: election.NodeSelector
    """Kubernetes: run agents only on nodes with these labels."""
    tolerations: election.Tolerations
    """Kubernetes: taints the agents tolerate."""
    track_pods: TrackPods | None = None
    """Kubernetes: gate each node on the readiness of these pods on it."""
    service_ref: ServiceRef | None = None
    """Kubernetes: front this Service: the operator publishes the addresses on it and the
    agents gate each node on its endpoints."""
    fencing: election.Fencing
    """Kubernetes: none keeps serving when the API server is unreachable (as keepalived would);
    strict drops the VIP once a master has been cut off from the API longer than its lease."""
    on_cordon: election.OnCordon
    """Kubernetes: yield (default): a node that is cordoned (spec.unschedulable, as kubectl cordon
    and drain set it) or labelled node.kubernetes.io/exclude-from-external-load-balancers hands
    the VIP over without a gap and stays a backup of last resort (priority 1) until it is
    uncordoned; ignore: cordon changes nothing."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": SPEC_RULES})

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualIPSpec:
        problems = self._version_problems()
        seen: set[IPv4Address | IPv6Address] = set()
        for i, a in enumerate(self.addresses):
            if a.ip in seen:
                problems.append((f"addresses[{i}]", f"{a.ip} is listed twice"))
            seen.add(a.ip)
        names = [n.name for n in self.nodes]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(("nodes", f"{name!r} is listed more than once"))
        checks = [c.name for c in self.checks]
        for name in sorted({n for n in checks if checks.count(n) > 1}):
            problems.append(("checks", f"name {name!r} is used more than once"))
        family = self.addresses[0].version
        for i, p in enumerate(self.unicast_peers):
            if p.version != family:
                problems.append(
                    (
                        f"unicastPeers[{i}]",
                        f"{p} is IPv{p.version} but the election runs on IPv{family} "
                        "(the family of addresses[0])",
                    )
                )
        problems += self._address_count_problems()
        if problems:
            raise field_problems(problems)
        return self

    def _version_problems(self) -> list[tuple[str, str]]:
        """What each VRRP version allows: its interval steps, v2's IPv4 only, its authentication."""
        problems: list[tuple[str, str]] = []
        interval = format_duration(self.advert_interval)
        ms = round(self.advert_interval * 1000)
        if self.version == 3 and (ms % 10 or not 10 <= ms <= 40950):
            problems.append(
                ("advertInterval", f"{interval} must be 10ms..40.95s in 10ms steps for version 3")
            )
        if self.version == 2:
            if ms % 1000 or not 1000 <= ms <= 255_000:
                problems.append(
                    ("advertInterval", f"{interval} must be whole seconds 1s..255s for version 2")
                )
            if any(a.version != 4 for a in self.addresses):
                problems.append(("addresses", "version 2 carries IPv4 addresses only"))
            if self.auth_hmac is not None and self.authentication is not None:
                problems.append(
                    (
                        "authHMAC",
                        "authentication (the v2 password) and authHMAC exclude each other",
                    )
                )
        elif self.authentication is not None:
            problems.append(
                ("authentication", "only version 2 has authentication (RFC 9568 removed it)")
            )
        return problems

    def _address_count_problems(self) -> list[tuple[str, str]]:
        """An advertisement must list every election address; addressPerService needs one each."""
        problems: list[tuple[str, str]] = []
        family = self.addresses[0].version
        advertised, limit = len(self.election_addresses), MAX_ADVERTISED[family]
        if advertised > limit:
            problems.append(
                (
                    "addresses",
                    f"{advertised} IPv{family} addresses; an advertisement lists at most "
                    f"{MAX_ADVERTISED[4]} IPv4 or {MAX_ADVERTISED[6]} IPv6 addresses "
                    "(of addresses[0]'s family)",
                )
            )
        ref = self.service_ref
        if ref is not None and ref.address_per_service and len(ref.services) != len(self.addresses):
            problems.append(
                (
                    "addresses",
                    f"serviceRef.addressPerService: {len(ref.services)} Services but "
                    f"{len(self.addresses)} addresses (one address per Service)",
                )
            )
        return problems

    # -- derived values ----------------------------------------------------------

    @property
    def interval_cs(self) -> int:
        return round(self.advert_interval * 100)

    @property
    def election_addresses(self) -> tuple[IPv4Interface | IPv6Interface, ...]:
        """The addresses carried in advertisements: those of addresses[0]'s family."""
        family = self.addresses[0].version
        return tuple(a for a in self.addresses if a.version == family)

    def priority_for(self, node: str) -> int:
        for entry in self.nodes:
            if entry.name == node:
                return int(entry.priority)
        return int(self.priority)


class Metadata(Model):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    namespace: str | None = None


class VirtualIP(Model):
    api_version: Literal["keepvip.io/v1alpha1"]
    kind: Literal["VirtualIP"]
    metadata: Metadata
    spec: VirtualIPSpec

    @property
    def key(self) -> str:
        ns = self.metadata.namespace
        return f"{ns}/{self.metadata.name}" if ns else self.metadata.name
