"""A subnet's network and broadcast addresses are never a VIP (pure; agent and operator).

Bound on a node, a VIP at ``192.0.2.255`` of ``192.0.2.0/24`` answers the
segment's broadcasts and takes no unicast; one at ``192.0.2.0`` (or an IPv6
subnet-router anycast address) collides with what routers and old stacks treat
as the subnet itself. Either breaks the segment for everybody, so neither may
be claimed. The networks are a node's connected networks, which only the node
knows: each node agent reads them from its routing table and publishes them on
its node Lease (:data:`NETWORKS_ANNOTATION`); the operator refuses such an
address before any agent runs it (``NetworkAddress``), and every agent refuses
it again when it starts an instance, in standalone mode too.

/31 and /32 (RFC 3021) and IPv6 /127 and /128 have no such addresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

IP = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
NETWORKS_ANNOTATION = "keepvip.io/networks"
"""On a node agent's Lease: the node's connected networks, comma-separated CIDRs."""
MAX_PUBLISHED = 64
"""At most this many networks are published (an annotation stays small on hosts with many
interfaces); the agent's own check sees them all."""


def reserved_role(address: IP, networks: Iterable[Network]) -> tuple[str, Network] | None:
    """("network"|"broadcast"|"subnet-router anycast", its network) if ``address`` is one."""
    for net in networks:
        if net.version != address.version or address not in net:
            continue
        if net.version == 4 and net.prefixlen <= 30:
            if address == net.network_address:
                return "network", net
            if address == net.broadcast_address:
                return "broadcast", net
        if net.version == 6 and net.prefixlen <= 126 and address == net.network_address:
            return "subnet-router anycast", net
    return None


def format_networks(networks: Iterable[Network]) -> str:
    """The annotation's value: sorted, unique, at most :data:`MAX_PUBLISHED`."""
    unique = sorted(set(networks), key=lambda n: (n.version, n.network_address, n.prefixlen))
    return ",".join(str(n) for n in unique[:MAX_PUBLISHED])


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """The annotation read back; an entry that is not a CIDR is skipped (written by hand)."""
    out: list[Network] = []
    for part in (text or "").split(","):
        try:
            out.append(ip_network(part.strip()))
        except ValueError:
            continue
    return tuple(out)
