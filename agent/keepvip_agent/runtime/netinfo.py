"""What the runtime needs to know about a network interface, read over netlink.

The VRRP source address is the interface's primary address of the election
family (IPv4: the first global non-secondary address that is not one of our
VIPs; IPv6: the link-local address, RFC 9568 5.1.2.1), and it doubles as the
tie-break address. Reading it fresh whenever the link changes keeps the agent
right when an operator renumbers a node; :mod:`.linkread` reads it, this
module holds what it yields and the route lookup (through pyroute2).
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

from keepvip_agent.vrrp.packet import IPAddress

IFA_F_SECONDARY = 0x01
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254


_DUMP_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def dump_lock(ipr: Any) -> asyncio.Lock:
    """The lock every dump over this netlink socket takes.

    The kernel runs one dump at a time per netlink socket and answers a second
    one with EBUSY; instances starting together (each purging leftover VIPs)
    and port refreshes share the agent's socket, so their dumps queue here.
    """
    lock = _DUMP_LOCKS.get(ipr)
    if lock is None:
        lock = _DUMP_LOCKS[ipr] = asyncio.Lock()
    return lock


@dataclass(frozen=True, slots=True)
class LinkInfo:
    name: str
    index: int
    mac: bytes
    up: bool
    primary_v4: IPv4Address | None
    link_local_v6: IPv6Address | None

    def primary(self, family: int) -> IPAddress | None:
        return self.primary_v4 if family == 4 else self.link_local_v6


async def interface_for(ipr: Any, address: IPAddress) -> str | None:
    """The interface whose connected (scope link) route covers ``address``, longest prefix first."""
    async with dump_lock(ipr):
        return await _interface_for(ipr, address)


async def _interface_for(ipr: Any, address: IPAddress) -> str | None:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    best: tuple[int, int] | None = None
    async for route in await ipr.route("dump", family=family):
        if route.get("RTA_TABLE", route["table"]) != RT_TABLE_MAIN:
            continue
        dst = route.get("RTA_DST")
        plen = route["dst_len"]
        if dst is None or route.get("RTA_GATEWAY") is not None:
            continue
        if address.version == 4 and route["scope"] != RT_SCOPE_LINK:
            continue
        net = ip_network(f"{dst}/{plen}", strict=False)
        if address in net and (best is None or plen > best[0]):
            oif = route.get("RTA_OIF")
            if oif is not None:
                best = (plen, oif)
    if best is None:
        return None
    async for link in await ipr.link("dump", index=best[1]):
        name: str = link.get("IFLA_IFNAME")
        return name
    return None


async def connected_networks(ipr: Any) -> tuple[IPv4Network | IPv6Network, ...]:
    """This node's connected networks (main table, no gateway; IPv4 scope link), both families.

    What a VIP's address is judged against (:mod:`keepvip_api.subnets`) and what the node
    agent publishes for the operator. Left out: IPv6 link-local networks, and networks too
    narrow to have a network or broadcast address (IPv4 /31 and /32, IPv6 /127 and /128:
    among them the prefix routes of IPv6 VIPs, hundreds on a busy node).
    """
    out: list[IPv4Network | IPv6Network] = []
    async with dump_lock(ipr):
        for family in (socket.AF_INET, socket.AF_INET6):
            async for route in await ipr.route("dump", family=family):
                dst = route.get("RTA_DST")
                if (
                    dst is None
                    or route.get("RTA_TABLE", route["table"]) != RT_TABLE_MAIN
                    or route.get("RTA_GATEWAY") is not None
                    or (family == socket.AF_INET and route["scope"] != RT_SCOPE_LINK)
                ):
                    continue
                plen = route["dst_len"]
                if plen > (30 if family == socket.AF_INET else 126):
                    continue
                net = ip_network(f"{dst}/{plen}", strict=False)
                if not net.is_link_local:
                    out.append(net)
    return tuple(dict.fromkeys(out))
