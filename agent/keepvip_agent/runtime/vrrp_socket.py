"""The raw VRRP socket of one interface and address family, shared by its instances.

One socket per (interface, family) carries every VRID on it; packets are
demultiplexed by VRID to the instance that owns it. The read side drains the
socket on each wake-up (bounded). A busy port (a drain that found
:data:`HOLDOFF_BURST` datagrams or more: many masters' adverts arriving
together) then stops listening for :data:`HOLDOFF` and drains again: the
adverts that trickle in over the burst cost one wake-up, not one each, and
an event-loop wake-up costs far more in Python than reading a datagram.

Everything a packet can do wrong ends as a counted drop with a reason and a
rate-limited log line (STYLE habit 4): this loop never raises on input. That
side is :class:`Receiver`, which holds no socket: datagrams in, calls to the
instance owning the VRID (or counted drops) out, so unit tests feed it bytes.

Real sockets are read by the receive thread of :mod:`.rxwatch` where it is
built: it absorbs the repeats instances expect and hands everything else to
:meth:`VrrpSocket.deliver`, which feeds the same :class:`Receiver`.

Sending uses IP_PKTINFO / IPV6_PKTINFO to pin the source address, because the
version 3 checksum covers it and receivers verify it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Protocol

from keepvip_agent.runtime import rxwatch
from keepvip_agent.vrrp.packet import (
    HEADER_LEN,
    TRAILER_LEN,
    V2_AUTH_LEN,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    VRRP_PROTOCOL,
    VRRP_TTL,
    Advertisement,
    DropReason,
    IPAddress,
    PacketError,
    decode,
)

logger = logging.getLogger(__name__)

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
IP_MULTICAST_ALL = 49
MAX_DRAIN = 256
HOLDOFF_BURST = 2
HOLDOFF = 0.001
"""At most this long between an advert's arrival and its processing on a busy port: its
master-down timer restarts up to this much later (never earlier) than the datagram came."""
DECODED_CACHE = 4096
"""Distinct IPv4 packets remembered as decoded (a few per VRID is typical)."""
RCVBUF = 1 << 20


class AdvertisementHandler(Protocol):
    def on_advertisement(self, adv: Advertisement, source: IPAddress) -> None: ...


DropCounter = Callable[[DropReason], None]


class _RateLimitedLog:
    """At most one log line per reason per period; the counters carry the rest."""

    def __init__(self, period: float = 10.0) -> None:
        self._period = period
        self._last: dict[str, float] = {}

    def __call__(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self._period:
            self._last[key] = now
            logger.warning(msg, *args)


class Receiver:
    """The receive side of one socket: datagrams in, advertisements to their VRID's handler."""

    def __init__(self, ifname: str, on_drop: DropCounter) -> None:
        self.ifname = ifname
        self.handlers: dict[int, AdvertisementHandler] = {}
        self._on_drop = on_drop
        self._log = _RateLimitedLog()
        self._decoded: dict[bytes, tuple[Advertisement, IPAddress]] = {}
        self._seen: dict[bytes, tuple[Advertisement, IPAddress]] = {}
        """Whole datagrams after the TTL and protocol (addresses and payload) that decoded,
        came from another router and carried no trailer: the first look-up of :meth:`ipv4`."""
        self._seen6: dict[tuple[object, ...], tuple[Advertisement, IPAddress]] = {}
        """The same for IPv6, keyed by (sender, payload, ancillary values)."""
        self._local: set[IPAddress] = set()

    @property
    def local(self) -> set[IPAddress]:
        """Our own source addresses: what we hear from them is our own advertisement."""
        return self._local

    @local.setter
    def local(self, addresses: set[IPAddress]) -> None:
        if addresses != self._local:
            self._seen.clear()  # they hold only packets from others
            self._seen6.clear()
        self._local = addresses

    def ipv4(self, data: bytes) -> None:
        """One IPv4 datagram, IP header included (a raw socket's read)."""
        # The common case first: these very bytes came before (from a master, every
        # interval). A 20-byte header and TTL 255 leave nothing else in the header that
        # decoding looks at, and the source and destination are part of the key.
        if len(data) >= 20 and data[0] == 0x45 and data[8] == VRRP_TTL:
            seen = self._seen.get(data[12:])
            if seen is not None:
                handler = self.handlers.get(seen[0].vrid)
                if handler is not None:
                    handler.on_advertisement(*seen)
                    return
        self._ipv4_full(data)

    def _ipv4_full(self, data: bytes) -> None:
        if len(data) < 20 or data[0] >> 4 != 4:
            self._drop(DropReason.MALFORMED, "short or non-IPv4 datagram", "?")
            return
        if data[8] != VRRP_TTL:
            self._drop(DropReason.TTL, f"TTL {data[8]}", IPv4Address(data[12:16]))
            return
        ihl = (data[0] & 0x0F) * 4
        payload, trailer = data[ihl:], b""
        if len(payload) >= HEADER_LEN:
            # An authentication trailer (its length tells it, see packet.TRAILER_LEN): the
            # IPv4 checksum covers the PDU alone, so the PDU decodes, and caches, on its own.
            want = HEADER_LEN + 4 * payload[3] + (V2_AUTH_LEN if payload[0] >> 4 == 2 else 0)
            if len(payload) == want + TRAILER_LEN:
                payload, trailer = payload[:want], payload[want:]
        # A master sends the same bytes every interval: the source, destination
        # and VRRP payload name a decoded advertisement we can reuse (decode is
        # a pure function of exactly these), skipping the checksum and the
        # address objects. Only packets that decoded are remembered. A signed
        # advert differs each time in its trailer only, which is verified per packet.
        key = data[12:20] + payload
        known = self._decoded.get(key)
        if known is None:
            sender = IPv4Address(data[12:16])
            decoded = self._decode(payload, sender, IPv4Address(data[16:20]))
            if decoded is None:
                return
            if len(self._decoded) >= DECODED_CACHE:
                self._decoded.clear()
            known = self._decoded[key] = (decoded, sender)
        adv, src = known
        if trailer:
            adv = Advertisement(
                adv.version, adv.vrid, adv.priority, adv.interval_cs, adv.addresses,
                adv.auth_type, adv.auth_data, trailer, payload,
            )  # fmt: skip
        elif ihl == 20 and src not in self._local:
            if len(self._seen) >= DECODED_CACHE:
                self._seen.clear()
            self._seen[data[12:]] = known
        self._deliver(adv, src)

    def ipv6(self, data: bytes, anc: list[tuple[int, int, bytes]], addr: object) -> None:
        """One IPv6 payload with its ancillary data (hop limit, destination) and sender."""
        # As for IPv4: the same payload from the same sender with the same ancillary
        # data (hop limit, destination) decodes to the same advertisement.
        key = (addr[0], data, *[value for _level, _kind, value in anc])  # type: ignore[index]
        seen = self._seen6.get(key)
        if seen is not None:
            handler = self.handlers.get(seen[0].vrid)
            if handler is not None:
                handler.on_advertisement(*seen)
                return
        src = IPv6Address(addr[0].split("%", 1)[0])  # type: ignore[index]
        hops, dst = -1, VRRP_GROUP_V6
        for level, kind, value in anc:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                hops = struct.unpack("@i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                dst = IPv6Address(value[:16])
        if hops != VRRP_TTL:
            self._drop(DropReason.TTL, f"hop limit {hops}", src)
            return
        adv = self._decode(data, src, dst)
        if adv is None:
            return
        if not adv.trailer and src not in self._local:
            if len(self._seen6) >= DECODED_CACHE:
                self._seen6.clear()
            self._seen6[key] = (adv, src)
        self._deliver(adv, src)

    def _decode(self, payload: bytes, src: IPAddress, dst: IPAddress) -> Advertisement | None:
        try:
            return decode(payload, src, dst)
        except PacketError as exc:
            if src not in self._local:
                self._drop(exc.reason, exc.detail, src)
            return None

    def _deliver(self, adv: Advertisement, src: IPAddress) -> None:
        if src in self._local:
            return  # our own advertisement, looped back through a unicast peer list
        handler = self.handlers.get(adv.vrid)
        if handler is None:
            self._drop(DropReason.UNKNOWN_VRID, f"VRID {adv.vrid}", src)
            return
        handler.on_advertisement(adv, src)

    def _drop(self, reason: DropReason, detail: str, src: object) -> None:
        self._on_drop(reason)
        self._log(reason.value, "dropped VRRP packet on %s from %s: %s", self.ifname, src, detail)

    def count_drop(self, reason: DropReason, detail: str, src: object) -> None:
        """For instances that drop after demux (peer filter, protocol rules)."""
        self._drop(reason, detail, src)


class VrrpSocket:
    def __init__(
        self,
        ifname: str,
        ifindex: int,
        family: int,
        on_drop: DropCounter,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``: an open, non-blocking datagram socket to read instead (unit tests)."""
        self.ifname = ifname
        self.ifindex = ifindex
        self.family = family
        self.receiver = Receiver(ifname, on_drop)
        self.handlers: dict[int, AdvertisementHandler] = self.receiver.handlers
        """The receiver's: VRID -> the instance that owns it."""
        # Bound once: the read loop calls these per datagram.
        self._ipv4, self._ipv6 = self.receiver.ipv4, self.receiver.ipv6
        self._loop = loop
        self._log = _RateLimitedLog()
        self._routes: dict[tuple[IPAddress, IPAddress], Any] = {}
        if sock is not None:
            self._sock = sock
        else:
            af = socket.AF_INET if family == 4 else socket.AF_INET6
            self._sock = socket.socket(af, socket.SOCK_RAW, VRRP_PROTOCOL)
            try:
                self._setup()
            except OSError:
                self._sock.close()
                raise
        self._held: asyncio.TimerHandle | None = None
        self.fileno = self._sock.fileno()
        self.current_key: bytes | None = None
        """While a datagram from the receive thread is handled: what an instance would
        expect to absorb its repeats (see :mod:`.rxwatch`)."""
        self.rx = rxwatch.shared(loop) if sock is None else None
        """The receive thread reading this socket, or None: read here, in Python."""
        if self.rx is not None:
            self.rx.add_socket(self.fileno, family, self)
        else:
            loop.add_reader(self.fileno, self._on_readable)

    def _setup(self) -> None:
        s = self._sock
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.ifname.encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        if self.family == 4:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            mreqn = VRRP_GROUP_V4.packed + b"\x00" * 4 + struct.pack("@i", self.ifindex)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            mreq = VRRP_GROUP_V6.packed + struct.pack("@I", self.ifindex)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)

    # -- receive -------------------------------------------------------------------

    def deliver(
        self, data: bytes, key: bytes | None, src: bytes | None, hops: int, dst: bytes | None
    ) -> None:
        """A datagram from the receive thread (see :class:`.rxwatch.PacketSink`)."""
        self.current_key = key
        try:
            if self.family == 4:
                self._ipv4(data)
                return
            anc = [(socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("@i", hops))]
            if dst is not None:
                anc.append((socket.IPPROTO_IPV6, IPV6_PKTINFO, dst + b"\x00" * 4))
            sender = str(IPv6Address(src)) if src is not None else "::"
            self._ipv6(data, anc, (sender, 0, 0, self.ifindex))
        finally:
            self.current_key = None

    def _on_readable(self) -> None:
        read = 0
        for read in range(MAX_DRAIN):  # noqa: B007 (how many were read is the point)
            try:
                if self.family == 4:
                    data = self._sock.recv(4096)
                    self._ipv4(data)
                else:
                    data, anc, _flags, addr = self._sock.recvmsg(4096, 128)
                    self._ipv6(data, anc, addr)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ENETDOWN while the link flaps
                self._log("recv", "receive on %s failed: %s", self.ifname, exc)
                return
        if read >= HOLDOFF_BURST:
            self._loop.remove_reader(self._sock.fileno())
            self._held = self._loop.call_later(HOLDOFF, self._resume)

    def _resume(self) -> None:
        self._held = None
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        self._on_readable()

    @property
    def local(self) -> set[IPAddress]:
        """Our own source addresses on this link (see :attr:`Receiver.local`)."""
        return self.receiver.local

    @local.setter
    def local(self, addresses: set[IPAddress]) -> None:
        if addresses != self.receiver.local and self.rx is not None:
            self.rx.release(self.fileno)  # the repeats expected were judged with the old set
        self.receiver.local = addresses

    def count_drop(self, reason: DropReason, detail: str, src: object) -> None:
        """For instances that drop after demux (peer filter, protocol rules)."""
        self.receiver.count_drop(reason, detail, src)

    # -- send ------------------------------------------------------------------------

    def send(self, payload: bytes, src: IPAddress, dst: IPAddress) -> bool:
        route = self._routes.get((src, dst))
        if route is None:
            route = self._routes[(src, dst)] = self._route(src, dst)
        try:
            self._sock.sendmsg([payload], *route)
        except OSError as exc:
            self._log("send", "send on %s to %s failed: %s", self.ifname, dst, exc)
            return False
        return True

    def sender(self, src: IPAddress, dst: IPAddress) -> Callable[[bytes], bool]:
        """:meth:`send` from ``src`` to ``dst`` with the route worked out once, for a cache."""
        anc, flags, addr = self._route(src, dst)
        sendmsg, log, ifname = self._sock.sendmsg, self._log, self.ifname

        def send(payload: bytes) -> bool:
            try:
                sendmsg([payload], anc, flags, addr)
            except OSError as exc:
                log("send", "send on %s to %s failed: %s", ifname, dst, exc)
                return False
            return True

        return send

    def _route(
        self, src: IPAddress, dst: IPAddress
    ) -> tuple[list[tuple[int, int, bytes]], int, Any]:
        """sendmsg's ancillary data, flags and address for one (source, destination)."""
        if self.family == 4:
            pktinfo = struct.pack("@i4s4s", self.ifindex, src.packed, b"\x00" * 4)
            return [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, (str(dst), 0)
        pktinfo = src.packed + struct.pack("@I", self.ifindex)
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, pktinfo)], 0, (str(dst), 0, 0, self.ifindex)

    def close(self) -> None:
        if self._held is not None:
            self._held.cancel()
        if self.rx is not None:
            self.rx.remove_socket(self.fileno)
        else:
            self._loop.remove_reader(self.fileno)
        self._sock.close()
