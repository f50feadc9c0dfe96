"""Who may make a node do what: the rules a VirtualIP is accepted by in Kubernetes mode (pure).

The node agents run as root in the host network with NET_ADMIN, so a
VirtualIP is an instruction to every node it selects. In a shared cluster the
operator judges each generation first (``keepvip_operator.grants``) and the
agents run only a generation it accepted (:func:`acceptance`); commands and
node-local check targets are judged here once, so the operator's refusal
and the agent's own (defence in depth) never disagree.

What the cluster admin allows is :class:`Trust` (chart values
``tenancy.*``, the operator's and the agent's flags): address grants on or
off, and the namespaces trusted with commands (``exec`` checks, notify
hooks) and with checks aimed at the node itself. Standalone mode has no
tenants: the host's admin writes the file, and none of this applies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal
from urllib.parse import urlsplit

from keepvip_api.model import VirtualIPSpec

IP = IPv4Address | IPv6Address
ACCEPTED = "Accepted"
"""Condition: the operator judged this generation (True: the agents may run it)."""
ADDRESS_OUTSIDE_POOL = "AddressOutsidePool"
"""Condition: an accepted VirtualIP's address left its pool (the pool was narrowed); it keeps
serving until its spec changes."""
GRANTED = "Granted"
NOT_ENFORCED = "GrantsNotEnforced"
ACCEPTED_EARLIER = "AcceptedEarlier"
ADDRESS_NOT_GRANTED = "AddressNotGranted"
NODE_ADDRESS = "NodeAddress"
NETWORK_ADDRESS = "NetworkAddress"
COMMANDS_NOT_ALLOWED = "CommandsNotAllowed"
CHECK_TARGET_NOT_ALLOWED = "CheckTargetNotAllowed"
INVALID_SPEC = "InvalidSpec"
Acceptance = Literal["accepted", "refused", "pending"]


@dataclass(frozen=True)
class Trust:
    """What the cluster admin allows tenants (namespaces) to make the nodes do."""

    address_grants: bool = True
    """A VirtualIP's addresses must lie in a VirtualIPPool granted to its namespace and used by
    VirtualIPs (or, for the VirtualIPs the operator makes for LoadBalancer Services, by
    Services). Off: any address (single-tenant clusters)."""
    trusted_namespaces: frozenset[str] = frozenset()
    """Namespaces whose VirtualIPs may run commands and aim checks at the node itself."""
    trusted_label: tuple[str, str] | None = None
    """A namespace label (key, value) that trusts a namespace the same way."""

    def trusts(self, namespace: str, labels: Mapping[str, str] | None) -> bool:
        if namespace in self.trusted_namespaces:
            return True
        if self.trusted_label is None or labels is None:
            return False
        key, value = self.trusted_label
        return labels.get(key) == value

    def how_to_trust(self, namespace: str) -> str:
        """The one-line advice a refusal ends with."""
        label = (
            f" or label it {self.trusted_label[0]}={self.trusted_label[1]}"
            if (self.trusted_label)
            else ""
        )
        return (
            f"a cluster admin may add namespace {namespace} to the chart value "
            f"tenancy.trustedNamespaces{label}"
        )


def parse_label(text: str) -> tuple[str, str] | None:
    """``key=value`` (the chart's ``tenancy.trustedNamespaceLabel``); empty: None."""
    text = text.strip()
    if not text:
        return None
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r} is not key=value")
    return key.strip(), value.strip()


def commands(spec: VirtualIPSpec) -> list[str]:
    """The fields of ``spec`` that run a command on the node."""
    out = [f"checks[{i}].exec" for i, c in enumerate(spec.checks) if c.exec is not None]
    out += [f"notify.{state}" for state in ("master", "backup", "fault")
            if getattr(spec.notify, state)]  # fmt: skip
    return out


def _target_problem(host: str, node_addresses: Collection[IP]) -> str | None:
    try:
        address = ip_address(host.strip("[]"))
    except ValueError:
        return "is not an IP address (a name could resolve to anything the node reaches)"
    if address.is_loopback or address.is_unspecified:
        return "is the node's own loopback"
    if address.is_link_local:
        return "is link-local (metadata services, the node's own links)"
    if address.is_multicast:
        return "is multicast"
    if address in node_addresses:
        return "is a node's own address (the kubelet and other node services listen there)"
    return None


def check_target_problems(spec: VirtualIPSpec, node_addresses: Collection[IP]) -> list[str]:
    """Checks aimed at the node itself, one line each, for an untrusted namespace.

    TCP and HTTP checks run in the node's network namespace, and their result is
    readable in status: a tenant could probe what only the node reaches. So a
    tenant's target must be an IP address that is neither loopback, link-local,
    unspecified nor multicast, nor any node's own address: a pod, a Service or
    an address outside the cluster.
    """
    out: list[str] = []
    for i, check in enumerate(spec.checks):
        if check.tcp_socket is not None:
            field, host = f"checks[{i}].tcpSocket.host", check.tcp_socket.host
        elif check.http_get is not None:
            field, host = f"checks[{i}].httpGet.url", urlsplit(check.http_get.url).hostname or ""
        else:
            continue
        why = _target_problem(host, node_addresses)
        if why is not None:
            out.append(f"{field}: {host or '(no host)'} {why}")
    return out


def trust_problems(
    spec: VirtualIPSpec,
    namespace: str,
    trust: Trust,
    labels: Mapping[str, str] | None,
    node_addresses: Collection[IP],
) -> tuple[str, str] | None:
    """(reason, one-line message) when an untrusted namespace asks for what needs trust."""
    if trust.trusts(namespace, labels):
        return None
    advice = trust.how_to_trust(namespace)
    ran = commands(spec)
    if ran:
        return COMMANDS_NOT_ALLOWED, (
            f"{', '.join(ran)}: commands run as root on the nodes and are not allowed in "
            f"namespace {namespace}; remove them, or {advice}"
        )
    aimed = check_target_problems(spec, node_addresses)
    if aimed:
        return CHECK_TARGET_NOT_ALLOWED, (
            f"{aimed[0]}; aim the check at a pod or a Service address, or {advice}"
        )
    return None


def node_addresses(node: Mapping[str, Any]) -> set[IP]:
    """A Node's own addresses: ``status.addresses`` of type InternalIP and ExternalIP."""
    out: set[IP] = set()
    for entry in (node.get("status") or {}).get("addresses") or ():
        if isinstance(entry, Mapping) and entry.get("type") in ("InternalIP", "ExternalIP"):
            try:
                out.add(ip_address(str(entry.get("address"))))
            except ValueError:
                continue
    return out


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in status.get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return None


def acceptance(obj: Mapping[str, Any]) -> Acceptance:
    """Whether the operator accepted the object's current generation (what the agents obey).

    ``accepted``: ``status.acceptedGeneration`` equals ``metadata.generation``; so is an
    object an operator of an earlier release judged (``observedGeneration`` current and no
    ``Accepted`` condition at all: it was serving before acceptance existed).
    ``refused``: ``Accepted`` is False for the current generation. ``pending``: not judged
    yet. Only the operator writes these (the status subresource; tenants are given no
    ``virtualips/status``).
    """
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    generation = meta.get("generation")
    if not isinstance(generation, int):
        return "pending"
    if status.get("acceptedGeneration") == generation:
        return "accepted"
    cond = _condition(status, ACCEPTED)
    if cond is None:
        return "accepted" if status.get("observedGeneration") == generation else "pending"
    if cond.get("status") == "False" and cond.get("observedGeneration") == generation:
        return "refused"
    return "pending"


def refusal(obj: Mapping[str, Any]) -> str:
    """The operator's one line for a refused object (its ``Accepted`` condition)."""
    cond = _condition(obj.get("status") or {}, ACCEPTED) or {}
    return f"{cond.get('reason', 'Refused')}: {cond.get('message', '')}"
