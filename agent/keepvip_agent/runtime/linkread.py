"""A port's link and source address, read over an rtnetlink socket of our own.

The port re-reads its interface on link events and every few seconds as a
safety net (:mod:`.agent`). Through pyroute2 that read was an address dump of
the whole interface, every bound VIP included, each reply decoded into a full
message object: with 263 VIPs on a node it was the largest item in the
agent's profile (22 % of a master's samples at 1 s adverts). Here it is two
requests on a blocking socket of our own (one link, one address dump of the
port's family and interface, filtered by the kernel where it can), and the
replies are read for the four fields the port needs: the link's index, MAC
and operational state, and each address with its flags. The kernel answers
both inside the request's system call; a few hundred addresses parse in well
under a millisecond, so the loop is not held for long.

Because the socket is ours, no dump lock is needed (pyroute2's socket, which
the purge and route lookups share, keeps :func:`~.netinfo.dump_lock`).

Message layout (``include/uapi/linux/rtnetlink.h``, ``if_link.h``, ``if_addr.h``)::

    nlmsghdr   len:u32 type:u16 flags:u16 seq:u32 pid:u32
    ifinfomsg  family:u8 pad:u8 type:u16 index:i32 flags:u32 change:u32
    ifaddrmsg  family:u8 prefixlen:u8 flags:u8 scope:u8 index:u32
    rtattr*    len:u16 type:u16 value (padded to 4 bytes)
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Collection, Iterator
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.runtime.netinfo import (
    IFA_F_DADFAILED,
    IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
    LinkInfo,
)
from keepvip_agent.vrrp.packet import IPAddress

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x001, 0x300
IFLA_ADDRESS, IFLA_IFNAME, IFLA_OPERSTATE, IFLA_CARRIER = 1, 3, 16, 33
IFA_ADDRESS, IFA_FLAGS = 1, 8
IF_OPER_UNKNOWN, IF_OPER_UP = 0, 6
TIMEOUT = 1.0

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(value), kind) + value
    return raw + b"\x00" * (-len(raw) % 4)


def link_request(seq: int, name: str) -> bytes:
    """RTM_GETLINK for one interface by name."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(
        IFLA_IFNAME, name.encode() + b"\x00"
    )
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body


def address_dump_request(seq: int, family: int, index: int) -> bytes:
    """RTM_GETADDR dump of one family; with strict checking the kernel keeps only ``index``."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    body = _IFADDRMSG.pack(af, 0, 0, 0, index)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_GETADDR, flags, seq, 0) + body


def messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, seq, body offset, end) of each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        yield kind, seq, offset + _NLMSGHDR.size, offset + length
        offset += (length + 3) & ~3


def attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, value offset, value end) of each rtattr between ``offset`` and ``end``."""
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > end:
            return
        yield kind & 0x3FFF, offset + _RTATTR.size, offset + length
        offset += (length + 3) & ~3


def parse_link(data: bytes, body: int, end: int) -> tuple[int, bytes, bool]:
    """(index, MAC, up) of one RTM_NEWLINK body: up means operstate up or unknown with carrier."""
    index = _IFINFOMSG.unpack_from(data, body)[2]
    mac, oper, carrier = b"\x00" * 6, IF_OPER_UNKNOWN, 1
    for kind, start, stop in attrs(data, body + _IFINFOMSG.size, end):
        if kind == IFLA_ADDRESS:
            mac = data[start:stop]
        elif kind == IFLA_OPERSTATE and stop > start:
            oper = data[start]
        elif kind == IFLA_CARRIER and stop > start:
            carrier = data[start]
    return index, mac, oper in (IF_OPER_UP, IF_OPER_UNKNOWN) and carrier == 1


def parse_address(data: bytes, body: int, end: int) -> tuple[int, int, bytes | None]:
    """(interface index, flags, packed IFA_ADDRESS) of one RTM_NEWADDR body.

    The flags are IFA_FLAGS when present (32 bits), else the header's 8.
    """
    _family, _plen, flags, _scope, index = _IFADDRMSG.unpack_from(data, body)
    packed: bytes | None = None
    for kind, start, stop in attrs(data, body + _IFADDRMSG.size, end):
        if kind == IFA_ADDRESS:
            packed = data[start:stop]
        elif kind == IFA_FLAGS and stop - start >= 4:
            flags = _U32.unpack_from(data, start)[0]
    return index, flags, packed


def primary(
    family: int, found: list[tuple[int, bytes]], exclude: Collection[bytes]
) -> IPAddress | None:
    """The source address among ``(flags, packed)`` in kernel order (see :mod:`.netinfo`).

    IPv4: the first non-secondary address that is not one of ours; IPv6: the
    first link-local one that is neither tentative nor failed DAD.
    """
    for flags, packed in found:
        if packed in exclude:
            continue
        if family == 4 and len(packed) == 4 and not flags & IFA_F_SECONDARY:
            return IPv4Address(packed)
        if family == 6 and len(packed) == 16:
            addr = IPv6Address(packed)
            if addr.is_link_local and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                return addr
    return None


class LinkReader:
    """Reads one interface's :class:`~.netinfo.LinkInfo` for one family; the caller's namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            self._sock.bind((0, 0))
            self._sock.settimeout(TIMEOUT)
            # Kernels before 4.20 refuse this: the dump is then filtered by index below.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:
            self._sock.close()
            raise
        self._seq = 0

    def read(self, name: str, family: int, exclude: Collection[bytes] = ()) -> LinkInfo | None:
        """The interface's state and its ``family`` source address, or None if it does not exist.

        ``exclude``: packed addresses (our VIPs) that are never the source.
        Raises OSError when the kernel refuses or does not answer.
        """
        reply = [
            (data, body, end)
            for data in self._request(link_request(self._next(), name))
            for kind, _seq, body, end in messages(data)
            if kind == RTM_NEWLINK
        ]
        if not reply:
            return None
        index, mac, up = parse_link(*reply[0])
        addresses: list[tuple[int, bytes]] = []
        for data in self._request(address_dump_request(self._next(), family, index)):
            for kind, _seq, body, end in messages(data):
                if kind == RTM_NEWADDR:
                    got, flags, packed = parse_address(data, body, end)
                    if got == index and packed is not None:
                        addresses.append((flags, packed))
        source = primary(family, addresses, exclude)
        v4 = source if isinstance(source, IPv4Address) else None
        v6 = source if isinstance(source, IPv6Address) else None
        return LinkInfo(name, index, mac, up, v4, v6)

    def copies(self, wanted: Collection[IPAddress]) -> list[tuple[int, int, IPAddress]]:
        """(interface index, prefix length, address) of every copy of ``wanted`` on any interface.

        What a starting instance purges (:meth:`.addresses.AddressManager.purge`): one dump
        per family, read for three fields; through pyroute2 each start parsed every address
        of the node (about 1260 on a master of 263 VirtualIPs and 13 shared routers) behind
        the shared dump lock, the largest part of a new VirtualIP's way to its master.
        """
        packed = {a.packed: a for a in wanted}
        out: list[tuple[int, int, IPAddress]] = []
        for family in sorted({a.version for a in wanted}):
            for data in self._request(address_dump_request(self._next(), family, 0)):
                for kind, _seq, body, end in messages(data):
                    if kind != RTM_NEWADDR:
                        continue
                    index, _flags, raw = parse_address(data, body, end)
                    if raw is not None and raw in packed:
                        out.append((index, _IFADDRMSG.unpack_from(data, body)[1], packed[raw]))
        return out

    def _next(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _request(self, message: bytes) -> list[bytes]:
        """Send one request; the datagrams that answer it, up to NLMSG_DONE or its one reply.

        ENODEV (no such interface) answers with no datagrams.
        """
        seq = _NLMSGHDR.unpack_from(message)[3]
        dump = bool(_NLMSGHDR.unpack_from(message)[2] & NLM_F_DUMP)
        self._sock.send(message)
        out: list[bytes] = []
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError as exc:
                raise OSError(errno.ETIMEDOUT, "no netlink answer reading a link") from exc
            mine = [m for m in messages(data) if m[1] == seq]
            if not mine:
                continue  # a stale answer to an earlier request that timed out
            for kind, _seq, body, _end in mine:
                if kind == NLMSG_ERROR:
                    code = -int(struct.unpack_from("=i", data, body)[0])
                    if code in (errno.ENODEV, 0):
                        return out
                    raise OSError(code, os.strerror(code))
                if kind == NLMSG_DONE:
                    return [*out, data]  # the last replies may share its datagram
            out.append(data)
            if not dump:
                return out

    def close(self) -> None:
        self._sock.close()
