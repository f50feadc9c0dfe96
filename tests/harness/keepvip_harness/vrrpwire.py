"""Craft and watch VRRP packets on a lab interface; run inside a namespace as root.

``vrrpwire.py send KIND [--count N] [--dst 224.0.0.18] [--src 192.0.2.100] [--vrid 51]
[--priority 254]`` sends IPv4 protocol-112 packets through a raw socket with our
own IP header (IP_HDRINCL), so TTL, checksum and version can be wrong on
purpose. ``KIND``:

* ``valid``: a correct VRRPv3 advertisement (the positive control);
* ``short``: 3 bytes of VRRP, shorter than the header;
* ``garbage``: a v3 header claiming 4 addresses followed by 2 bytes;
* ``ttl``: a valid advertisement with TTL 64 instead of 255;
* ``checksum``: a valid advertisement with its checksum flipped;
* ``vrid``: a valid advertisement for a VRID nobody runs;
* ``v2``: a valid VRRPv2 advertisement (to a group that runs version 3);
* ``version``: version 5 in the header;
* ``signed``: a correct advertisement with an HMAC trailer (draft-cassen-vrrp-auth-hmac)
  made with ``--key HEX`` and ``--key-id N``, stamped ``--seq SECONDS`` (default: now;
  the same ``--seq`` twice sends the same bytes twice: a replay);
* ``forged``: like ``signed``, then its priority changed (the HMAC no longer matches).

``vrrpwire.py sniff SECONDS`` prints one JSON line per VRRP packet seen
arriving on eth0 (AF_PACKET, so unicast and multicast alike), with the VRRP
payload's length (an HMAC trailer adds 28 bytes).

This file builds its packets independently of ``keepvip_agent.vrrp`` on
purpose: a codec bug must not be able to hide itself in its own tests.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import socket
import struct
import sys
import time
from ipaddress import IPv4Address

PROTO = 112
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def advert(
    version: int, vrid: int, priority: int, src: IPv4Address, dst: IPv4Address, vip: IPv4Address
) -> bytes:
    """A correct VRRP advertisement (v3: 100 ms, pseudo-header checksum; v2: 1 s, no auth)."""
    if version == 2:
        second, trailer = 1, b"\x00" * 8
    else:
        second, trailer = 10, b""
    body = struct.pack("!BBBBHH", (version << 4) | 1, vrid, priority, 1, second, 0)
    body += vip.packed + trailer
    if version == 2:
        csum = checksum(body)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, PROTO, len(body))
        csum = checksum(pseudo + body)
    return body[:6] + struct.pack("!H", csum) + body[8:]


def trailer(body: bytes, src: IPv4Address, vrid: int, key: bytes, key_id: int, seq: float) -> bytes:
    """The 28-byte trailer: type 1, key id, reserved, seconds, 1/65536 s, counter 0, HMAC."""
    head = struct.pack("!BBHIHH", 1, key_id, 0, int(seq), int((seq % 1) * 65536), 0)
    pseudo = bytes([4, 3, vrid, 0]) + src.packed + bytes(12)
    unsummed = body[:6] + b"\x00\x00" + body[8:]
    mac = hmac.new(key, pseudo + unsummed + head + bytes(16), hashlib.sha256).digest()[:16]
    return head + mac


def ip_packet(src: IPv4Address, dst: IPv4Address, ttl: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl, PROTO, 0, src.packed, dst.packed
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def build(kind: str, args: argparse.Namespace) -> tuple[int, bytes]:
    src, dst, vip = IPv4Address(args.src), IPv4Address(args.dst), IPv4Address(args.vip)
    good = advert(3, args.vrid, args.priority, src, dst, vip)
    if kind == "valid":
        return 255, good
    if kind == "short":
        return 255, good[:3]
    if kind == "garbage":
        hdr = struct.pack("!BBBBHH", 0x31, args.vrid, args.priority, 4, 10, 0)
        return 255, hdr + b"\xde\xad"
    if kind == "ttl":
        return 64, good
    if kind == "checksum":
        return 255, good[:6] + bytes([good[6] ^ 0xFF, good[7]]) + good[8:]
    if kind == "vrid":
        return 255, advert(3, args.other_vrid, args.priority, src, dst, vip)
    if kind == "v2":
        return 255, advert(2, args.vrid, args.priority, src, dst, vip)
    if kind in ("signed", "forged"):
        seq = args.seq if args.seq is not None else time.time()
        tail = trailer(good, src, args.vrid, bytes.fromhex(args.key), args.key_id, seq)
        if kind == "forged":  # signed at priority - 1, sent at priority (a valid checksum)
            signed_at = advert(3, args.vrid, args.priority - 1, src, dst, vip)
            tail = trailer(signed_at, src, args.vrid, bytes.fromhex(args.key), args.key_id, seq)
        return 255, good + tail
    if kind == "version":
        bad = bytearray(good)
        bad[0] = (5 << 4) | 1
        return 255, bytes(bad)
    raise SystemExit(f"unknown kind {kind}")


def send(args: argparse.Namespace) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.ifname.encode())
    ttl, payload = build(args.kind, args)
    packet = ip_packet(IPv4Address(args.src), IPv4Address(args.dst), ttl, payload)
    for n in range(args.count):
        s.sendto(packet, (args.dst, 0))
        if n + 1 < args.count:
            time.sleep(args.gap)
    print(f"sent {args.count} {args.kind}")
    return 0


def sniff(args: argparse.Namespace) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.ifname, 0))
    s.settimeout(0.05)
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        try:
            frame, addr = s.recvfrom(65535)
        except TimeoutError:
            continue
        if addr[2] == PACKET_OUTGOING or len(frame) < 14:
            continue
        ethertype = struct.unpack("!H", frame[12:14])[0]
        ip = frame[14:]
        if ethertype == 0x0800 and len(ip) >= 28 and ip[9] == PROTO:
            ihl = (ip[0] & 0x0F) * 4
            src, dst, ttl, vrrp = ip[12:16], ip[16:20], ip[8], ip[ihl:]
            length = struct.unpack("!H", ip[2:4])[0] - ihl  # not the frame's padding
            family = 4
        elif ethertype == 0x86DD and len(ip) >= 48 and ip[6] == PROTO:
            src, dst, ttl, vrrp = ip[8:24], ip[24:40], ip[7], ip[40:]
            length = struct.unpack("!H", ip[4:6])[0]
            family = 6
        else:
            continue
        record = {
            "family": family,
            "src": socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, src),
            "dst": socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, dst),
            "ttl": ttl,
            "version": vrrp[0] >> 4,
            "vrid": vrrp[1],
            "priority": vrrp[2],
            "length": length,
            "interval": (vrrp[5] if vrrp[0] >> 4 == 2 else struct.unpack("!H", vrrp[4:6])[0])
            & 0x0FFF,
        }
        print(json.dumps(record), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("kind")
    s.add_argument("--count", type=int, default=5)
    s.add_argument("--gap", type=float, default=0.01)
    s.add_argument("--src", default="192.0.2.100")
    s.add_argument("--dst", default="224.0.0.18")
    s.add_argument("--vip", default="192.0.2.50")
    s.add_argument("--vrid", type=int, default=51)
    s.add_argument("--other-vrid", type=int, default=99)
    s.add_argument("--priority", type=int, default=254)
    s.add_argument("--ifname", default="eth0")
    s.add_argument("--key", default="")
    s.add_argument("--key-id", type=int, default=1)
    s.add_argument("--seq", type=float, default=None)
    s.set_defaults(run=send)
    f = sub.add_parser("sniff")
    f.add_argument("seconds", type=float)
    f.add_argument("--ifname", default="eth0")
    f.set_defaults(run=sniff)
    args = p.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
