"""Add or renew an interface address with one rtnetlink request, synchronously.

pyroute2 stays the agent's netlink library for everything else (dumps, link
state, deletes, events). This one request is special: it is the take-over hot
path (the VIP must be bound before the gratuitous ARP goes out) and a master
repeats it for every VIP every third of the address lifetime, which with 256
VIPs is about 150 requests a second. Through pyroute2's asyncio machinery each
costs milliseconds of Python; here it is one ``sendmsg`` of a prebuilt
message and one ``recv`` of the acknowledgement.

The kernel handles an rtnetlink request inside ``sendmsg`` (under the RTNL
lock) and queues the acknowledgement before returning, so the ``recv`` after
it does not wait; the socket still has a timeout so a surprise cannot hang
the loop for long.

Message layout (``include/uapi/linux/if_addr.h``, ``netlink.h``)::

    nlmsghdr   len:u32 type:u16 flags:u16 seq:u32 pid:u32
    ifaddrmsg  family:u8 prefixlen:u8 flags:u8 scope:u8 index:u32
    rtattr*    len:u16 type:u16 value (padded to 4 bytes):
               IFA_ADDRESS, IFA_LOCAL (the address), IFA_CACHEINFO
               (preferred, valid, 0, 0: lifetimes in seconds), IFA_FLAGS (u32)
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import IPv4Interface, IPv6Interface

NETLINK_ROUTE = 0
RTM_NEWADDR = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x001
NLM_F_ACK = 0x004
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_CACHEINFO = 6
IFA_FLAGS = 8
IFA_F_NODAD = 0x02
ACK_TIMEOUT = 1.0

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_CACHEINFO = struct.Struct("=IIII")
_ERROR = struct.Struct("=i")


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(value), kind) + value
    return raw + b"\x00" * (-len(raw) % 4)


def new_address_request(
    seq: int, index: int, address: IPv4Interface | IPv6Interface, lifetime: int
) -> bytes:
    """RTM_NEWADDR with create+replace: add the address or renew its lifetime.

    IPv6 addresses carry IFA_F_NODAD (see :mod:`.addresses`); IPv4 ones get no
    broadcast address, as ``ip addr add`` without ``brd`` does.
    """
    flags = IFA_F_NODAD if address.version == 6 else 0
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    packed = address.ip.packed
    body = (
        _IFADDRMSG.pack(family, address.network.prefixlen, flags, 0, index)
        + _attr(IFA_LOCAL, packed)
        + _attr(IFA_ADDRESS, packed)
        + _attr(IFA_CACHEINFO, _CACHEINFO.pack(lifetime, lifetime, 0, 0))
        + _attr(IFA_FLAGS, struct.pack("=I", flags))
    )
    kind = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_NEWADDR, kind, seq, 0) + body


def parse_ack(data: bytes, seq: int) -> int:
    """The errno of the acknowledgement for ``seq`` in ``data`` (0: done), or -1 if absent."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, got_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and got_seq == seq:
            (error,) = _ERROR.unpack_from(data, offset + _NLMSGHDR.size)
            return -int(error)
        offset += (length + 3) & ~3
    return -1


class AddressWriter:
    """A NETLINK_ROUTE socket of our own for RTM_NEWADDR; the caller's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._sock.settimeout(ACK_TIMEOUT)
        self._seq = 0

    def replace(self, index: int, address: IPv4Interface | IPv6Interface, lifetime: int) -> None:
        """Add ``address`` on interface ``index`` or renew it; raise OSError if the kernel refuses."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        self._sock.send(new_address_request(seq, index, address, lifetime))
        while True:
            try:
                code = parse_ack(self._sock.recv(65536), seq)
            except TimeoutError as exc:
                raise OSError(errno.ETIMEDOUT, f"no netlink answer adding {address}") from exc
            if code == 0:
                return
            if code > 0:
                raise OSError(code, f"adding {address}: {os.strerror(code)}")
            # -1: a stale answer to an earlier request that timed out; read on.

    def close(self) -> None:
        self._sock.close()
