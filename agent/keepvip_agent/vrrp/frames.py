"""Ethernet frames that move clients to the new master: gratuitous ARP and unsolicited NA.

Built by pure functions so tests check them byte by byte without a socket;
the runtime sends them on an AF_PACKET socket.

Gratuitous ARP is an ARP *request* with sender and target protocol address
both the VIP, broadcast. Linux updates an existing neighbour entry from it
even inside the lock time (``arp_is_garp``), which is what clients need after
a failover; it does not create entries, so it cannot poison anything new.

The unsolicited neighbour advertisement (RFC 4861 7.2.6) goes to ff02::1 with
the Override flag and the target link-layer address option, hop limit 255.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.vrrp.checksum import internet_checksum

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6
ALL_NODES_MAC = bytes.fromhex("333300000001")
ALL_NODES_V6 = IPv6Address("ff02::1")
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ICMPV6_NEIGHBOR_ADVERT = 136
ICMPV6_PROTOCOL = 58
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LLADDR = 2


def gratuitous_arp(mac: bytes, address: IPv4Address) -> bytes:
    """A broadcast ARP request announcing that ``address`` is at ``mac``."""
    ether = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARPHRD_ETHER, 0x0800, 6, 4, ARPOP_REQUEST)
    arp += mac + address.packed + b"\x00" * 6 + address.packed
    return ether + arp


def unsolicited_na(mac: bytes, address: IPv6Address) -> bytes:
    """An unsolicited neighbour advertisement for ``address`` to all nodes, Override set."""
    icmp = struct.pack("!BBHI", ICMPV6_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE)
    icmp += address.packed + struct.pack("!BB", ND_OPT_TARGET_LLADDR, 1) + mac
    pseudo = address.packed + ALL_NODES_V6.packed + struct.pack("!I3xB", len(icmp), ICMPV6_PROTOCOL)
    csum = internet_checksum(pseudo + icmp)
    icmp = icmp[:2] + struct.pack("!H", csum) + icmp[4:]
    ipv6 = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6_PROTOCOL, 255)
    ipv6 += address.packed + ALL_NODES_V6.packed
    ether = ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6)
    return ether + ipv6 + icmp
