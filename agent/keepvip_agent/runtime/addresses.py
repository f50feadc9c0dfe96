"""Bind and release virtual addresses over netlink, with a kernel lifetime.

A bound VIP carries ``valid_lft``/``preferred_lft`` of a few seconds and the
master renews it well before it runs out. If the agent is SIGKILLed or hangs,
nobody renews it and the kernel removes the address by itself: the stale VIP
that keepalived leaves behind cannot happen. IPv6 VIPs are added with
IFA_F_NODAD so they are usable at once and can never end up ``dadfailed``
(the VRRP election, not DAD, decides who may hold them).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv6Interface, ip_address
from typing import Any

from keepvip_agent.runtime.linkread import LinkReader
from keepvip_agent.runtime.netinfo import dump_lock
from keepvip_agent.runtime.netlinklib import NetlinkError
from keepvip_agent.runtime.renewals import Renewals
from keepvip_agent.runtime.rtnl import AddressWriter

logger = logging.getLogger(__name__)

VipAddress = IPv4Interface | IPv6Interface


class AddressManager:
    """The only writer of addresses in the agent: pyroute2 for deletes and dumps,
    :class:`~keepvip_agent.runtime.rtnl.AddressWriter` for the add/renew hot paths."""

    def __init__(self, ipr: Any, reader: LinkReader | None = None) -> None:
        self._ipr = ipr
        self._reader = reader
        """Finds leftover copies for :meth:`purge` without pyroute2's dump (None: pyroute2)."""
        self._writer = AddressWriter()  # opened now: the first take-over must not wait for it
        self.renewals = Renewals(self._writer)
        """Every bound VIP's lifetime, renewed in batches (one ``sendmsg`` per due time)."""

    @property
    def writer_portid(self) -> int:
        """The netlink port id of the add/renew socket (see :func:`.rtnl.echo_filter`)."""
        return self._writer.portid

    async def bind(self, index: int, addresses: Iterable[VipAddress], lifetime: int) -> None:
        """Add or renew every address with the given lifetime (seconds)."""
        self.bind_now(index, addresses, lifetime)

    def bind_now(self, index: int, addresses: Iterable[VipAddress], lifetime: int) -> None:
        """:meth:`bind` without the coroutine: one netlink round trip per address
        (tens of microseconds), bound on return, so a gratuitous ARP can follow."""
        for a in addresses:
            self._writer.replace(index, a, lifetime)

    async def unbind(self, index: int, addresses: Iterable[VipAddress]) -> None:
        for a in addresses:
            try:
                await self._ipr.addr(
                    "del", index=index, address=str(a.ip), prefixlen=a.network.prefixlen
                )
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                    raise

    async def purge(self, addresses: Iterable[VipAddress]) -> list[str]:
        """Remove leftover copies of these addresses from every interface; say what went."""
        wanted = {a.ip for a in addresses}
        removed: list[str] = []
        if self._reader is not None:
            found = [(addr, index, plen) for index, plen, addr in self._reader.copies(wanted)]
        else:
            async with dump_lock(self._ipr):
                found = [
                    (ip_address(msg.get("IFA_ADDRESS")), msg["index"], msg["prefixlen"])
                    async for msg in await self._ipr.addr("dump")
                ]
        for addr, index, prefixlen in found:
            if addr in wanted:
                try:
                    await self._ipr.addr("del", index=index, address=str(addr), prefixlen=prefixlen)
                    removed.append(f"{addr}/{prefixlen} (ifindex {index})")
                except NetlinkError as exc:
                    if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT):
                        raise
        return removed
