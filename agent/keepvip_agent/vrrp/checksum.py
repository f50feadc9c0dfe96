"""The Internet checksum (RFC 1071), shared by VRRP, ICMPv6 and IPv4 headers.

The buffer is read as an ``array`` of 16-bit words (byte-swapped to big-endian
on little-endian hosts), summed with the built-in ``sum`` and folded once at
the end: several times faster in CPython than a per-word loop, and this runs
for every advertisement decoded (the receive path caches decoded IPv4 packets,
the send path encoded payloads).
"""

from __future__ import annotations

import array
import sys


def internet_checksum(data: bytes) -> int:
    """One's-complement of the one's-complement sum of 16-bit big-endian words."""
    if len(data) % 2:
        data += b"\x00"
    words = array.array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
