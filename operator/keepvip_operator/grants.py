"""Addresses are granted, not taken: the operator's judgement of one VirtualIP generation (pure).

Kubernetes cannot say this with CEL (a rule sees one object, never the
pools or the Nodes), so the operator judges every generation before any
agent runs it: the agents run a VirtualIP only at ``status.acceptedGeneration``
(:func:`keepvip_api.acceptance.acceptance`), so nothing is bound first and
judged later. Refused, in this order, each with a one-line message naming
the address or field and what to do:

* ``NodeAddress``: an address is a Node's own (InternalIP, ExternalIP);
* ``NetworkAddress``: an address is the network or broadcast address of a
  network a node agent reports as connected on its node (:mod:`keepvip_api.subnets`);
* ``AddressNotGranted``: an address lies in no VirtualIPPool that serves the
  namespace and is used by VirtualIPs (by Services, for the VirtualIPs this
  operator makes for LoadBalancer Services);
* ``CommandsNotAllowed``, ``CheckTargetNotAllowed``: commands, or checks
  aimed at the node itself, in a namespace the admin does not trust.

The first two apply with address grants on (the default); the last two
always. A pool is narrowed, or grants are turned on over VirtualIPs that
already serve: a generation accepted before stays accepted when only
``AddressNotGranted`` speaks against it; condition ``AddressOutsidePool``
and a Warning say so, and the VIP keeps serving until its spec changes
(as a LoadBalancer Service's address does, :mod:`keepvip_operator.pools`).
Editing a pool never drops traffic by surprise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from keepvip_api import acceptance as a
from keepvip_api.acceptance import Trust
from keepvip_api.model import VirtualIP
from keepvip_api.pool import SERVICES, VIRTUALIPS
from keepvip_api.subnets import Network, reserved_role
from keepvip_operator.conditions import Cond
from keepvip_operator.lbmodel import Pool

IP = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Verdict:
    accepted_generation: int | None
    """What ``status.acceptedGeneration`` says after this judgement."""
    conditions: tuple[Cond, ...]
    """``Accepted``, and ``AddressOutsidePool`` while a kept generation is outside its pools."""

    @property
    def accepted(self) -> Cond:
        return self.conditions[0]


def _granting(pools: Sequence[Pool], namespace: str, usage: str) -> list[Pool]:
    return [p for p in pools if p.serves(namespace) and usage in p.spec.used_by]


def _not_granted(
    vip: VirtualIP, namespace: str, managed: bool, pools: Sequence[Pool]
) -> str | None:
    usage = SERVICES if managed else VIRTUALIPS
    granting = _granting(pools, namespace, usage)
    outside = [x.ip for x in vip.spec.addresses if not any(p.spec.contains(x.ip) for p in granting)]
    if not outside:
        return None
    listed = ", ".join(map(str, outside))
    where = ", ".join(p.name for p in granting) or "none"
    return (
        f"{listed} {'is' if len(outside) == 1 else 'are'} in no VirtualIPPool granted to "
        f"namespace {namespace} for {usage} (pools granting it: {where}); use an address of "
        f"those pools, or ask a cluster admin for a pool with usedBy [{usage}] and namespace "
        f"{namespace} in its namespaces"
    )


def _node_address(vip: VirtualIP, nodes: Mapping[IP, str]) -> str | None:
    for x in vip.spec.addresses:
        node = nodes.get(x.ip)
        if node is not None:
            return (
                f"{x.ip} is the address of Node {node}; a VIP there would take the node's "
                "traffic: choose an address no node holds"
            )
    return None


def _network_address(vip: VirtualIP, networks: Mapping[str, Sequence[Network]]) -> str | None:
    for x in vip.spec.addresses:
        for node in sorted(networks):
            role = reserved_role(x.ip, networks[node])
            if role is not None:
                what, net = role
                return (
                    f"{x.ip} is the {what} address of {net}, a network of Node {node}: "
                    "no host can be reached there; choose a host address of that network"
                )
    return None


def judge(
    vip: VirtualIP,
    *,
    generation: int,
    managed: bool,
    pools: Sequence[Pool],
    node_addresses: Mapping[IP, str],
    node_networks: Mapping[str, Sequence[Network]] | None = None,
    trust: Trust,
    namespace_labels: Mapping[str, str] | None,
    accepted_before: int | None,
) -> Verdict:
    """Judge one generation of a valid VirtualIP.

    ``managed``: made by this operator for LoadBalancer Services (judged against pools
    used by Services). ``node_addresses``: every Node's own address, to its Node's name.
    ``node_networks``: each node's connected networks, as its agent reports them.
    ``accepted_before``: ``status.acceptedGeneration`` as last written (or read).
    """
    namespace = vip.metadata.namespace or ""
    refusal: tuple[str, str] | None = None
    outside: str | None = None
    if trust.address_grants:
        why = _node_address(vip, node_addresses)
        subnet = _network_address(vip, node_networks or {})
        if why is not None:
            refusal = (a.NODE_ADDRESS, why)
        elif subnet is not None:
            refusal = (a.NETWORK_ADDRESS, subnet)
        else:
            outside = _not_granted(vip, namespace, managed, pools)
    if refusal is None:
        refusal = a.trust_problems(
            vip.spec, namespace, trust, namespace_labels, set(node_addresses)
        )
    if refusal is None and outside is not None:
        if accepted_before == generation:  # serving already: keep it, and say so
            return Verdict(generation, (
                Cond(a.ACCEPTED, "True", a.ACCEPTED_EARLIER,
                     "accepted before its address left the pools; it keeps serving until "
                     "its spec changes"),
                Cond(a.ADDRESS_OUTSIDE_POOL, "True", a.ADDRESS_NOT_GRANTED, outside),
            ))  # fmt: skip
        refusal = (a.ADDRESS_NOT_GRANTED, outside)
    if refusal is not None:
        reason, message = refusal
        return Verdict(accepted_before, (Cond(a.ACCEPTED, "False", reason, message),))
    if trust.address_grants:
        granted = Cond(a.ACCEPTED, "True", a.GRANTED, "its addresses are granted to namespace "
                       f"{namespace}")  # fmt: skip
    else:
        granted = Cond(a.ACCEPTED, "True", a.NOT_ENFORCED, "address grants are off")
    return Verdict(generation, (granted,))


def invalid(accepted_before: int | None) -> Verdict:
    """An invalid spec is not judged: nothing new is accepted."""
    return Verdict(accepted_before, (
        Cond(a.ACCEPTED, "False", a.INVALID_SPEC, "not judged while the spec is invalid"),
    ))  # fmt: skip


def node_address_map(nodes: Mapping[str, Sequence[IP]]) -> dict[IP, str]:
    """Every Node's own addresses, to the Node's name (the first in name order wins)."""
    out: dict[IP, str] = {}
    for name in sorted(nodes, reverse=True):
        for address in nodes[name]:
            out[address] = name
    return out
