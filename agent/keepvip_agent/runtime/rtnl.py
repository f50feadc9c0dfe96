"""Two rtnetlink paths that pyroute2 makes too slow for the agent's hot loops.

:class:`AddressWriter` adds or renews an interface address with one request,
synchronously; :class:`LinkEvents` reads link and address notifications and
parses only the three fields the agent looks at.

pyroute2 stays the agent's netlink library for everything else (dumps, link
state, deletes, events). This one request is special: it is the take-over hot
path (the VIP must be bound before the gratuitous ARP goes out) and a master
repeats it for every VIP every third of the address lifetime, which with 256
VIPs is about 150 requests a second. Through pyroute2's asyncio machinery each
costs milliseconds of Python; here it is one ``sendmsg`` of a prebuilt
message and one ``recv`` of the acknowledgement.

Notifications come at the same rate (every renewal is an RTM_NEWADDR), and
pyroute2 decodes each into a full message object; the agent only needs the
interface index, the interface name and the address to decide whether a port
must re-read its link, so :class:`LinkEvents` reads just those.

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

import array
import asyncio
import errno
import logging
import os
import select
import socket
import struct
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

logger = logging.getLogger(__name__)

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
IFLA_IFNAME = 3
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
BATCH = 256
"""Renewals per ``sendmsg`` (about 64 bytes each, far below the socket's send buffer)."""

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_CACHEINFO = struct.Struct("=IIII")
_ERROR = struct.Struct("=i")
_IFINFOMSG = struct.Struct("=BxHiII")
EVENTS_RCVBUF = 1 << 20
SO_ATTACH_FILTER = 26
BPF_LD_H_ABS, BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x28, 0x20, 0x15, 0x06
_SOCK_FILTER = struct.Struct("=HBBI")


def _attr(kind: int, value: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(value), kind) + value
    return raw + b"\x00" * (-len(raw) % 4)


def new_address_request(
    seq: int, index: int, address: IPv4Interface | IPv6Interface, lifetime: int, ack: bool = True
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
    kind = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | (NLM_F_ACK if ack else 0)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_NEWADDR, kind, seq, 0) + body


def parse_ack(data: bytes, seq: int) -> int:
    """The errno of the acknowledgement for ``seq`` in ``data`` (0: done), or -1 if absent."""
    for got, code in parse_errors(data):
        if got == seq:
            return code
    return -1


def parse_errors(data: bytes) -> list[tuple[int, int]]:
    """(seq, errno) of each NLMSG_ERROR in ``data`` (errno 0: an acknowledgement)."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and offset + _NLMSGHDR.size + _ERROR.size <= len(data):
            (error,) = _ERROR.unpack_from(data, offset + _NLMSGHDR.size)
            out.append((seq, -int(error)))
        offset += (length + 3) & ~3
    return out


class AddressWriter:
    """A NETLINK_ROUTE socket of our own for RTM_NEWADDR; the caller's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        # Non-blocking: the kernel has queued its answers when send returns, so a
        # read finds them at once; a read that finds none waits in ``select``.
        self._sock.setblocking(False)
        self._seq = 0

    def replace(self, index: int, address: IPv4Interface | IPv6Interface, lifetime: int) -> None:
        """Add ``address`` on interface ``index`` or renew it; raise OSError if the kernel refuses."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        seq = self._seq
        self._sock.send(new_address_request(seq, index, address, lifetime))
        while True:
            try:
                code = parse_ack(self._sock.recv(65536), seq)
            except (BlockingIOError, InterruptedError):
                if not select.select([self._sock], [], [], ACK_TIMEOUT)[0]:
                    raise OSError(errno.ETIMEDOUT, f"no netlink answer adding {address}") from None
                continue
            if code == 0:
                return
            if code > 0:
                raise OSError(code, f"adding {address}: {os.strerror(code)}")
            # -1: a stale answer to an earlier request that timed out; read on.

    def renew(
        self, items: Sequence[tuple[int, IPv4Interface | IPv6Interface, int]]
    ) -> list[tuple[int, OSError]]:
        """Add or renew many addresses with one ``sendmsg``; the failures, by position in ``items``.

        The requests carry no ACK flag: the kernel runs them inside the system
        call and queues an error message only for those it refuses, so success
        costs no read at all (one non-blocking read finds nothing).
        """
        if not items:
            return []
        first = (self._seq + 1) & 0xFFFFFFFF
        chunks: list[bytes] = []
        for n, (index, address, lifetime) in enumerate(items):
            seq = (first + n) & 0xFFFFFFFF
            chunks.append(new_address_request(seq, index, address, lifetime, ack=False))
        self._seq = (first + len(items) - 1) & 0xFFFFFFFF
        for start in range(0, len(chunks), BATCH):
            self._sock.send(b"".join(chunks[start : start + BATCH]))
        failed: list[tuple[int, OSError]] = []
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return failed
            for seq, code in parse_errors(data):
                n = (seq - first) & 0xFFFFFFFF
                if code and n < len(items):
                    address = items[n][1]
                    failed.append((n, OSError(code, f"renewing {address}: {os.strerror(code)}")))

    @property
    def portid(self) -> int:
        """The socket's netlink port id (what the kernel puts in the notifications we cause)."""
        portid: int = self._sock.getsockname()[0]
        return portid

    def close(self) -> None:
        self._sock.close()


LinkEvent = Callable[[int | None, str | None, IPv4Address | IPv6Address | None], None]
"""Called with (ifindex, ifname, address) per notification; all None after lost events."""


def parse_events(data: bytes) -> list[tuple[int, str | None, IPv4Address | IPv6Address | None]]:
    """(ifindex, ifname, address) of each link or address notification in one datagram."""
    out: list[tuple[int, str | None, IPv4Address | IPv6Address | None]] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        body = offset + _NLMSGHDR.size
        end = offset + length
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFOMSG.size <= end:
            index = _IFINFOMSG.unpack_from(data, body)[2]
            name = None
            for kind_, value in _attrs(data, body + _IFINFOMSG.size, end):
                if kind_ == IFLA_IFNAME:
                    name = value.split(b"\x00", 1)[0].decode(errors="replace")
            out.append((index, name, None))
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDRMSG.size <= end:
            family, _plen, _flags, _scope, index = _IFADDRMSG.unpack_from(data, body)
            address: IPv4Address | IPv6Address | None = None
            for kind_, value in _attrs(data, body + _IFADDRMSG.size, end):
                if kind_ == IFA_ADDRESS:
                    if family == socket.AF_INET and len(value) == 4:
                        address = IPv4Address(value)
                    elif family == socket.AF_INET6 and len(value) == 16:
                        address = IPv6Address(value)
            out.append((index, None, address))
        offset += (length + 3) & ~3
    return out


def _attrs(data: bytes, offset: int, end: int) -> list[tuple[int, bytes]]:
    out = []
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > end:
            break
        out.append((kind & 0x3FFF, data[offset + _RTATTR.size : offset + length]))
        offset += (length + 3) & ~3
    return out


def echo_filter(portid: int) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (code, jt, jf, k) that drops RTM_NEWADDR sent on behalf of ``portid``.

    The kernel stamps an IPv4 address notification with the port id of the
    socket whose request caused it, so this drops the echoes of our own binds
    and renewals (one per VIP per renewal) before they wake the agent; every
    other notification passes. IPv6 notifications carry port id 0 and pass
    (the agent skips them as its own VIPs' after parsing). BPF loads are
    big-endian and netlink headers native, hence the swapped constants.
    """
    kind = struct.unpack("!H", struct.pack("=H", RTM_NEWADDR))[0]
    pid = struct.unpack("!I", struct.pack("=I", portid))[0]
    return [
        (BPF_LD_H_ABS, 0, 0, 4),  # nlmsg_type
        (BPF_JEQ_K, 0, 3, kind),  # not RTM_NEWADDR: accept
        (BPF_LD_W_ABS, 0, 0, 12),  # nlmsg_pid
        (BPF_JEQ_K, 0, 1, pid),  # ours: drop; else accept
        (BPF_RET_K, 0, 0, 0),
        (BPF_RET_K, 0, 0, 0xFFFFFFFF),
    ]


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may go afterwards.

    The program's address comes from an ``array`` (ctypes would cost the agent half a MiB).
    """
    code = array.array("B", b"".join(_SOCK_FILTER.pack(*i) for i in program))
    fprog = struct.pack("@HP", len(program), code.buffer_info()[0])
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class LinkEvents:
    """Link and IPv4/IPv6 address notifications of this network namespace, on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        callback: LinkEvent,
        ignore_portid: int | None = None,
    ) -> None:
        """``ignore_portid``: drop IPv4 address notifications caused by that socket (our writer)."""
        self._loop = loop
        self._callback = callback
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            if ignore_portid is not None:
                attach_filter(self._sock, echo_filter(ignore_portid))
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, EVENTS_RCVBUF)
            self._sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise
        loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    # The kernel dropped notifications: whatever they said is unknown.
                    logger.warning("netlink notifications overran; re-reading every interface")
                    self._callback(None, None, None)
                    continue
                logger.warning("netlink notifications: %s", exc)
                return
            for index, name, address in parse_events(data):
                self._callback(index, name, address)

    def close(self) -> None:
        """Stop reading; safe to call again (the agent's shutdown may run twice)."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
