"""The HMAC authentication trailer of VRRP adverts (draft-cassen-vrrp-auth-hmac, keepalived 2.4 ``auth_hmac``).

Pure functions: the trailer's layout, what the HMAC covers, the sequence
number's clock encoding. The per-sender replay state and the keys live in
:mod:`.authstate`; the packet codec (:mod:`.packet`) only splits a trailer off
and appends one. Kept byte-compatible with keepalived 2.4 so a mixed fleet
can authenticate; the draft's appendix vectors are unit tests.

The trailer follows the VRRP PDU (header and addresses), 28 bytes::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Ext Type    |    Key ID     |           Reserved            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Sequence: UTC seconds                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Sequence: 1/65536 seconds    |       Sequence: counter       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    +            HMAC-SHA256, first 128 bits (16 bytes)             +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The three sequence fields read together are one 64-bit number, compared
with serial-number arithmetic (RFC 1982). The HMAC input is a 20-byte pseudo
header (IP version 4 or 6, VRRP version, VRID, a zero, the sender's address
zero-padded to 16 bytes), then the PDU with its checksum field read as zero,
then the trailer with its HMAC field read as zero. The IP header is left out
(a unicast advert's TTL changes on the way) and so is the checksum (the IPv6
one covers the trailer and is written after signing); binding the source
address and the VRID stops a valid trailer from being spliced onto another
sender's or another router's advert.

Checksums around the trailer, as keepalived writes them: IPv4 sums the PDU
only (the pseudo header's length is the PDU's); IPv6 sums the whole payload,
trailer included, as the kernel's ``IPV6_CHECKSUM`` does.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.vrrp import packet

TRAILER_LEN = packet.TRAILER_LEN
EXT_TYPE_HMAC_SHA256 = 1
"""The only scheme the draft defines: HMAC-SHA256 truncated to 128 bits."""
MAC_LEN = 16
MAC_OFFSET = TRAILER_LEN - MAC_LEN
PSEUDO_LEN = 20
CHECKSUM_OFFSET = 6
"""Where the VRRP header keeps its checksum, read as zero by the HMAC."""
KEY_MIN = 32
"""Bytes: a 256-bit floor keeps a 128-bit margin against a quantum search (the draft's reason)."""
KEY_MAX = 64
KEY_ID_MIN, KEY_ID_MAX = 1, 255
WINDOW_MIN, WINDOW_MAX = 1, 300
"""Seconds a time-mode receiver accepts between the sender's clock and its own."""
WINDOW_FLOOR = 5.0
"""The default window is max(3 x advert interval, this)."""

_TRAILER = struct.Struct("!BBHIHH16s")
_ZERO_MAC = bytes(MAC_LEN)


@dataclass(frozen=True, slots=True)
class Trailer:
    ext_type: int
    key_id: int
    reserved: int
    sequence: int
    """The 64-bit sequence: seconds << 32 | 1/65536 s << 16 | counter."""
    mac: bytes

    @property
    def seconds(self) -> int:
        return self.sequence >> 32


def parse_trailer(data: bytes) -> Trailer:
    ext, key_id, reserved, sec, frac, ctr, mac = _TRAILER.unpack(data)
    return Trailer(ext, key_id, reserved, (sec << 32) | (frac << 16) | ctr, mac)


def pseudo_header(version: int, vrid: int, source: IPv4Address | IPv6Address) -> bytes:
    """The 20 bytes bound into the HMAC ahead of the PDU."""
    head = bytes((source.version, version, vrid, 0)) + source.packed
    return head.ljust(PSEUDO_LEN, b"\x00")


def keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 state with ``key`` already absorbed: copied per advert, the key's pads
    are computed once per key instead of once per packet."""
    return hmac.new(key, digestmod=hashlib.sha256)


def compute_mac(key: bytes | hmac.HMAC, pseudo: bytes, pdu: bytes, trailer_head: bytes) -> bytes:
    """The 16-byte truncated HMAC of one advert; ``trailer_head`` is the trailer's first 12 bytes."""
    mac = (keyed(key) if isinstance(key, bytes) else key).copy()
    mac.update(
        b"".join(
            (pseudo, pdu[:CHECKSUM_OFFSET], b"\x00\x00", pdu[CHECKSUM_OFFSET + 2 :],
             trailer_head, _ZERO_MAC)
        )
    )  # fmt: skip
    return mac.digest()[:MAC_LEN]


def sign(
    pdu: bytes,
    pseudo: bytes,
    key_id: int,
    key: bytes | hmac.HMAC,
    sequence: int,
) -> bytes:
    """The trailer for ``pdu`` (header and addresses; its checksum is ignored)."""
    head = _TRAILER.pack(
        EXT_TYPE_HMAC_SHA256,
        key_id,
        0,
        (sequence >> 32) & 0xFFFFFFFF,
        (sequence >> 16) & 0xFFFF,
        sequence & 0xFFFF,
        _ZERO_MAC,
    )[:MAC_OFFSET]
    return head + compute_mac(key, pseudo, pdu, head)


def mac_matches(key: bytes | hmac.HMAC, pseudo: bytes, pdu: bytes, trailer: bytes) -> bool:
    """Constant-time comparison of a received trailer's HMAC with ours."""
    want = compute_mac(key, pseudo, pdu, trailer[:MAC_OFFSET])
    return hmac.compare_digest(want, trailer[MAC_OFFSET:TRAILER_LEN])


def clock_sequence(unix_time: float) -> int:
    """A wall-clock reading as a sequence: UTC seconds and a 1/65536 s fraction, counter 0."""
    seconds = int(unix_time)
    fraction = int((unix_time - seconds) * 65536) & 0xFFFF
    return ((seconds & 0xFFFFFFFF) << 32) | (fraction << 16)


def serial_after(a: int, b: int) -> bool:
    """RFC 1982 order over 64 bits: is ``a`` later than ``b``?"""
    diff = (a - b) & 0xFFFFFFFFFFFFFFFF
    return 0 < diff < (1 << 63)


def seconds_apart(now: float, seconds: int) -> int:
    """``now`` minus a 32-bit seconds field, wrapped like the draft's signed 32-bit difference."""
    diff = (int(now) - seconds) & 0xFFFFFFFF
    return diff - (1 << 32) if diff >= (1 << 31) else diff
