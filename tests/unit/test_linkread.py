"""The port's link reader, on netlink replies built by hand (the netns tier reads real ones)."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.runtime import linkread as lr
from keepvip_agent.runtime.netinfo import IFA_F_SECONDARY, IFA_F_TENTATIVE

HDR = struct.Struct("=IHHII")


def message(kind: int, seq: int, body: bytes) -> bytes:
    raw = HDR.pack(HDR.size + len(body), kind, 0, seq, 0) + body
    return raw + b"\x00" * (-len(raw) % 4)


def attr(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\x00" * (-len(raw) % 4)


def newaddr(index: int, packed: bytes, flags: int = 0, wide: int | None = None) -> bytes:
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    body = struct.pack("=BBBBI", family, 32, flags, 0, index) + attr(lr.IFA_ADDRESS, packed)
    if wide is not None:
        body += attr(lr.IFA_FLAGS, struct.pack("=I", wide))
    return message(lr.RTM_NEWADDR, 7, body)


def newlink(index: int, mac: bytes, oper: int, carrier: int | None) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + attr(lr.IFLA_IFNAME, b"eth0\x00")
    body += attr(lr.IFLA_ADDRESS, mac) + attr(lr.IFLA_OPERSTATE, bytes([oper]))
    if carrier is not None:
        body += attr(lr.IFLA_CARRIER, bytes([carrier]))
    return message(lr.RTM_NEWLINK, 7, body)


def test_a_link_reply_gives_index_mac_and_whether_it_is_up() -> None:
    mac = bytes.fromhex("020000000005")
    for oper, carrier, up in (
        (lr.IF_OPER_UP, 1, True),
        (lr.IF_OPER_UNKNOWN, None, True),  # e.g. a dummy: no operstate, no carrier attribute
        (lr.IF_OPER_UP, 0, False),
        (2, 1, False),  # IF_OPER_DOWN
    ):
        data = newlink(7, mac, oper, carrier)
        ((kind, seq, body, end),) = list(lr.messages(data))
        assert (kind, seq) == (lr.RTM_NEWLINK, 7)
        assert lr.parse_link(data, body, end) == (7, mac, up)


def test_an_address_reply_gives_index_flags_and_address() -> None:
    packed = IPv4Address("192.0.2.5").packed
    data = newaddr(3, packed, IFA_F_SECONDARY) + newaddr(3, packed, 0, wide=0x100)
    parsed = [lr.parse_address(data, b, e) for _, _, b, e in lr.messages(data)]
    # IFA_FLAGS, when present, replaces the header's 8 bits.
    assert parsed == [(3, IFA_F_SECONDARY, packed), (3, 0x100, packed)]


def test_messages_stop_at_a_truncated_one() -> None:
    data = newaddr(3, bytes(4)) + newaddr(3, bytes(4))[:-4]
    assert len(list(lr.messages(data))) == 1


def test_the_ipv4_source_is_the_first_primary_address_that_is_not_a_vip() -> None:
    vip, own, second = (IPv4Address(a).packed for a in ("198.51.100.1", "192.0.2.5", "192.0.2.6"))
    found = [(0, vip), (IFA_F_SECONDARY, second), (0, own)]
    assert lr.primary(4, found, {vip}) == IPv4Address("192.0.2.5")
    assert lr.primary(4, found, set()) == IPv4Address("198.51.100.1")
    assert lr.primary(4, [(IFA_F_SECONDARY, second)], set()) is None


def test_the_ipv6_source_is_a_usable_link_local_address() -> None:
    glob, tentative, ll = (IPv6Address(a).packed for a in ("2001:db8::5", "fe80::1", "fe80::2"))
    found = [(0, glob), (IFA_F_TENTATIVE, tentative), (0, ll)]
    assert lr.primary(6, found, set()) == IPv6Address("fe80::2")
    assert lr.primary(6, found[:2], set()) is None


def test_requests_are_what_the_kernel_expects() -> None:
    req = lr.link_request(5, "eth0")
    length, kind, flags, seq, _pid = HDR.unpack_from(req)
    assert (length, kind, flags, seq) == (len(req), lr.RTM_GETLINK, lr.NLM_F_REQUEST, 5)
    assert b"eth0\x00" in req
    dump = lr.address_dump_request(6, 6, 9)
    _, kind, flags, seq, _ = HDR.unpack_from(dump)
    assert (kind, flags & lr.NLM_F_DUMP, seq) == (lr.RTM_GETADDR, lr.NLM_F_DUMP, 6)
    assert struct.unpack_from("=BBBBI", dump, HDR.size) == (socket.AF_INET6, 0, 0, 0, 9)
