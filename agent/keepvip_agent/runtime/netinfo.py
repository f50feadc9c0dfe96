"""What the runtime needs to know about a network interface, read over netlink.

The VRRP source address is the interface's primary address of the election
family (IPv4: the first global non-secondary address that is not one of our
VIPs; IPv6: the link-local address, RFC 9568 5.1.2.1), and it doubles as the
tie-break address. Reading it fresh whenever the link changes keeps the agent
right when an operator renumbers a node.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
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


async def read_link(ipr: Any, name: str, exclude: Collection[IPAddress] = ()) -> LinkInfo | None:
    """The interface's state and primary addresses, or None if it does not exist."""
    async with dump_lock(ipr):
        return await _read_link(ipr, name, exclude)


async def _read_link(ipr: Any, name: str, exclude: Collection[IPAddress]) -> LinkInfo | None:
    found = await ipr.link_lookup(ifname=name)
    if not found:
        return None
    index = found[0]
    up = False
    mac = b"\x00" * 6
    async for link in await ipr.link("dump", index=index):
        mac = bytes.fromhex((link.get("IFLA_ADDRESS") or "00:00:00:00:00:00").replace(":", ""))
        oper = link.get("IFLA_OPERSTATE")
        up = oper in ("UP", "UNKNOWN") and link.get("IFLA_CARRIER", 1) == 1
    v4: IPv4Address | None = None
    v6: IPv6Address | None = None
    async for msg in await ipr.addr("dump", index=index):
        addr = ip_address(msg.get("IFA_ADDRESS"))
        flags = msg.get("IFA_FLAGS", msg["flags"])
        if addr in exclude:
            continue
        if isinstance(addr, IPv4Address):
            if v4 is None and not flags & IFA_F_SECONDARY:
                v4 = addr
        elif addr.is_link_local and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) and v6 is None:
            v6 = addr
    return LinkInfo(name, index, mac, up, v4, v6)


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
    agent publishes for the operator. IPv6 link-local networks are left out.
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
                net = ip_network(f"{dst}/{route['dst_len']}", strict=False)
                if not net.is_link_local:
                    out.append(net)
    return tuple(dict.fromkeys(out))
