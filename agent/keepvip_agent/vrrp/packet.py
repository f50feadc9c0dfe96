"""VRRP advertisement codec for version 3 (RFC 9568) and version 2 (RFC 3768).

Pure functions: bytes and addresses in, an :class:`Advertisement` or a
:class:`PacketError` out. The IP header is the socket adapter's business; the
checksum of version 3 covers an IP pseudo-header, so the source and
destination addresses are parameters here.

RFC 9568 section 5.1, the version 3 advertisement::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |(rsvd) |     Max Adver Int     |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IPvX Address(es)                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 3768 section 5.1, the version 2 advertisement (IPv4 only)::

    |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
    |   Auth Type   |   Adver Int   |          Checksum             |
    |                         IP Address (1..n)                     |
    |                     Authentication Data (1)                   |
    |                     Authentication Data (2)                   |

Version 3 intervals are in centiseconds (12 bits, so 10 ms to 40.95 s);
version 2 intervals are whole seconds (8 bits). :class:`Advertisement` keeps
both in centiseconds so the state machine has one unit.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.vrrp.checksum import internet_checksum

IPAddress = IPv4Address | IPv6Address

VRRP_PROTOCOL = 112
VRRP_TTL = 255
VRRP_GROUP_V4 = IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = IPv6Address("ff02::12")


def multicast_group(family: int) -> IPAddress:
    """RFC 9568 5.1.1.2 / 5.1.2.2: where advertisements go without a unicast peer list."""
    return VRRP_GROUP_V4 if family == 4 else VRRP_GROUP_V6


TYPE_ADVERTISEMENT = 1
PRIORITY_RELEASE = 0
"""RFC 9568 5.2.4: the master is leaving; backups take over after skew time."""
PRIORITY_OWNER = 255
"""RFC 9568 5.2.4: the router owns the addresses and is master at once."""
PRIORITY_DEFAULT = 100

MAX_ADVERT_V3_CS = 0x0FFF
MAX_ADVERT_V2_S = 0xFF
HEADER_LEN = 8
V2_AUTH_LEN = 8
TRAILER_LEN = 28
"""An HMAC authentication trailer after the PDU (:mod:`.hmacauth`; version 2: after the
authentication data). The length alone tells it apart, as in keepalived: a PDU's length is
fixed by its address count."""
AUTH_NONE = 0
AUTH_SIMPLE_TEXT = 1
"""RFC 2338 type 1 (keepalived ``auth_type PASS``); removed by RFC 3768, kept for old fleets."""

_HEADER = struct.Struct("!BBBBHH")


class DropReason(enum.StrEnum):
    """Why a received packet was dropped; also the metric label."""

    MALFORMED = "malformed"
    CHECKSUM = "checksum"
    VERSION = "version"
    TTL = "ttl"
    UNKNOWN_VRID = "unknown_vrid"
    INTERVAL_MISMATCH = "interval_mismatch"
    PEER = "peer"
    AUTH = "auth"
    FAMILY = "family"
    AUTH_MISSING = "auth_missing"
    """authHMAC enforces and the advert carries no trailer (or one arrived where none is configured)."""
    AUTH_MALFORMED = "auth_malformed"
    AUTH_UNKNOWN_KEY = "auth_unknown_key"
    """The trailer names a key id we do not hold (or one retired past its grace)."""
    AUTH_BAD_HMAC = "auth_bad_hmac"
    """Forged, altered, or signed with another key under the same id."""
    AUTH_STALE = "auth_stale"
    """Time mode: the trailer's timestamp is outside the window (clock skew or an old capture)."""
    AUTH_REPLAY = "auth_replay"
    """The sender's sequence did not grow: a replayed advert."""


class PacketError(ValueError):
    """The peer sent something we must drop (RFC 9568 section 7.1)."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP advertisement, version independent."""

    version: int
    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPAddress, ...]
    auth_type: int = AUTH_NONE
    auth_data: bytes = b""
    trailer: bytes = b""
    """The HMAC authentication trailer (:mod:`.hmacauth`) when the advert carried one."""
    pdu: bytes = b""
    """With a trailer: the header and addresses it signs (empty otherwise)."""


def _pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, VRRP_PROTOCOL, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, VRRP_PROTOCOL)


def unsummed(adv: Advertisement, src: IPAddress) -> bytes:
    """The VRRP PDU with a zero checksum: what an authentication trailer signs."""
    if adv.version == 3:
        if not 0 < adv.interval_cs <= MAX_ADVERT_V3_CS:
            raise ValueError(f"interval {adv.interval_cs} cs is not in 1..{MAX_ADVERT_V3_CS}")
        second = adv.interval_cs & 0x0FFF
        trailer = b""
    elif adv.version == 2:
        seconds, rest = divmod(adv.interval_cs, 100)
        if rest or not 0 < seconds <= MAX_ADVERT_V2_S:
            raise ValueError(f"version 2 needs whole seconds 1..255, not {adv.interval_cs} cs")
        if src.version != 4:
            raise ValueError("version 2 is IPv4 only")
        second = (adv.auth_type << 8) | seconds
        trailer = adv.auth_data.ljust(V2_AUTH_LEN, b"\x00")[:V2_AUTH_LEN]
    else:
        raise ValueError(f"unsupported version {adv.version}")
    body = b"".join(a.packed for a in adv.addresses) + trailer
    header = _HEADER.pack(
        (adv.version << 4) | TYPE_ADVERTISEMENT,
        adv.vrid,
        adv.priority,
        len(adv.addresses),
        second,
        0,
    )
    return header + body


def finish(pdu: bytes, src: IPAddress, dst: IPAddress, trailer: bytes = b"") -> bytes:
    """``pdu`` (from :func:`unsummed`) with its checksum filled in and ``trailer`` appended.

    Versions 2 and 3 over IPv4 sum the PDU alone, version 3 over IPv6 the PDU and the
    trailer (what keepalived and the kernel's ``IPV6_CHECKSUM`` do, see :mod:`.hmacauth`).
    """
    if pdu[0] >> 4 == 3:
        summed = pdu + trailer if src.version == 6 else pdu
        csum = internet_checksum(_pseudo_header(src, dst, len(summed)) + summed)
    else:
        csum = internet_checksum(pdu)
    return pdu[:6] + struct.pack("!H", csum) + pdu[8:] + trailer


def encode(adv: Advertisement, src: IPAddress, dst: IPAddress) -> bytes:
    """The VRRP payload (without IP header) with its checksum filled in."""
    return finish(unsummed(adv, src), src, dst)


def decode(data: bytes, src: IPAddress, dst: IPAddress) -> Advertisement:
    """Parse and verify one VRRP payload; raise :class:`PacketError` to drop it."""
    if len(data) < HEADER_LEN:
        raise PacketError(DropReason.MALFORMED, f"{len(data)} bytes is shorter than the header")
    ver_type, vrid, priority, count, second, _csum = _HEADER.unpack_from(data)
    version, ptype = ver_type >> 4, ver_type & 0x0F
    if version not in (2, 3):
        raise PacketError(DropReason.VERSION, f"version {version}")
    if ptype != TYPE_ADVERTISEMENT:
        raise PacketError(DropReason.MALFORMED, f"type {ptype}")
    alen = 4 if src.version == 4 else 16
    trailer = V2_AUTH_LEN if version == 2 else 0
    if version == 2 and src.version != 4:
        raise PacketError(DropReason.VERSION, "version 2 over IPv6")
    want = HEADER_LEN + count * alen + trailer
    signed = len(data) == want + TRAILER_LEN
    if len(data) != want and not signed:
        raise PacketError(
            DropReason.MALFORMED, f"{len(data)} bytes for {count} addresses (want {want})"
        )
    if version == 3:
        summed = data if src.version == 6 or not signed else data[:want]
        check = internet_checksum(_pseudo_header(src, dst, len(summed)) + summed)
    else:
        check = internet_checksum(data[:want])
    if check != 0:
        raise PacketError(DropReason.CHECKSUM, "checksum does not verify")
    if version == 3:
        interval_cs = second & 0x0FFF
        auth_type, auth_data = AUTH_NONE, b""
    else:
        interval_cs = (second & 0xFF) * 100
        auth_type = second >> 8
        auth_data = data[want - V2_AUTH_LEN : want]
    if interval_cs == 0:
        raise PacketError(DropReason.MALFORMED, "advertisement interval 0")
    factory = IPv4Address if alen == 4 else IPv6Address
    addresses = tuple(
        factory(data[HEADER_LEN + i * alen : HEADER_LEN + (i + 1) * alen]) for i in range(count)
    )
    if signed:
        return Advertisement(
            version,
            vrid,
            priority,
            interval_cs,
            addresses,
            auth_type,
            auth_data,
            data[want:],
            data[:want],
        )
    return Advertisement(version, vrid, priority, interval_cs, addresses, auth_type, auth_data)
