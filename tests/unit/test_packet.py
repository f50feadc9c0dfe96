"""The VRRP codec: byte vectors from the RFC layouts, scapy both ways, and fuzzing.

Three independent oracles keep the codec honest: packets written out by hand
from the RFC diagrams (checksums summed by hand in the comments and by the
naive per-word :func:`reference_checksum` below), scapy's own VRRP layers,
and hypothesis, which checks that nothing a peer can send raises anything
but :class:`PacketError`.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw

from keepvip_agent.vrrp.checksum import internet_checksum
from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    AUTH_SIMPLE_TEXT,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    VRRP_PROTOCOL,
    Advertisement,
    DropReason,
    IPAddress,
    PacketError,
    decode,
    encode,
)

SRC4 = IPv4Address("192.0.2.1")
SRC6 = IPv6Address("fe80::1")
VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the slow, obvious way: an oracle independent of the fast one."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_v4(src: IPv4Address, dst: IPv4Address, length: int) -> bytes:
    return src.packed + dst.packed + bytes([0, VRRP_PROTOCOL]) + length.to_bytes(2, "big")


def pseudo_v6(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    return src.packed + dst.packed + length.to_bytes(4, "big") + bytes([0, 0, 0, VRRP_PROTOCOL])


def with_checksum(data: bytes, csum: int) -> bytes:
    return data[:6] + csum.to_bytes(2, "big") + data[8:]


# -- hand-made vectors -------------------------------------------------------------

# v3 over IPv4, VRID 51, priority 100, 100 cs, one address 192.0.2.10.
# Words: pseudo c000 0201 e000 0012 0070 000c, VRRP 3133 6401 0064 0000 c000 020a;
# they sum to 0x2fa31, folded 0xfa33, complemented 0x05cc.
V3_IPV4 = bytes.fromhex("31 33 64 01  00 64 05 cc  c0 00 02 0a")

# v3 over IPv6 from fe80::1 to ff02::12, address 2001:db8::10 (payload 24 bytes).
# Words: pseudo fe80 0001 ff02 0012 0018 0070, VRRP 3133 6401 0064 2001 0db8 0010
# (zero words left out); sum 0x2c17e, folded 0xc180, complemented 0x3e7f.
V3_IPV6 = bytes.fromhex(
    "31 33 64 01  00 64 3e 7f  20 01 0d b8  00 00 00 00  00 00 00 00  00 00 00 10"
)

# v2, no authentication, 1 s: 2133 6401 0001 0000 c000 020a + 8 zero bytes of auth data;
# sum 0x1473f, folded 0x4740, complemented 0xb8bf. No pseudo-header in version 2.
V2_NOAUTH = bytes.fromhex("21 33 64 01  00 01 b8 bf  c0 00 02 0a  00 00 00 00  00 00 00 00")

# v2, simple text "secret": auth type 1 in the high byte of word 2 (0x0101), data padded;
# sum 0x2848a, folded 0x848c, complemented 0x7b73.
V2_AUTH = bytes.fromhex("21 33 64 01  01 01 7b 73  c0 00 02 0a  73 65 63 72  65 74 00 00")


def test_hand_checksums_agree_with_reference() -> None:
    assert reference_checksum(pseudo_v4(SRC4, VRRP_GROUP_V4, 12) + with_checksum(V3_IPV4, 0)) == (
        0x05CC
    )
    assert reference_checksum(pseudo_v6(SRC6, VRRP_GROUP_V6, 24) + with_checksum(V3_IPV6, 0)) == (
        0x3E7F
    )
    assert reference_checksum(with_checksum(V2_NOAUTH, 0)) == 0xB8BF
    assert reference_checksum(with_checksum(V2_AUTH, 0)) == 0x7B73


@pytest.mark.parametrize(
    ("adv", "src", "dst", "wire"),
    [
        (Advertisement(3, 51, 100, 100, (VIP4,)), SRC4, VRRP_GROUP_V4, V3_IPV4),
        (Advertisement(3, 51, 100, 100, (VIP6,)), SRC6, VRRP_GROUP_V6, V3_IPV6),
        (
            Advertisement(2, 51, 100, 100, (VIP4,), AUTH_NONE, bytes(8)),
            SRC4,
            VRRP_GROUP_V4,
            V2_NOAUTH,
        ),
        (
            Advertisement(2, 51, 100, 100, (VIP4,), AUTH_SIMPLE_TEXT, b"secret\0\0"),
            SRC4,
            VRRP_GROUP_V4,
            V2_AUTH,
        ),
    ],
    ids=["v3-ipv4", "v3-ipv6", "v2", "v2-auth"],
)
def test_known_vectors(adv: Advertisement, src: IPAddress, dst: IPAddress, wire: bytes) -> None:
    assert encode(adv, src, dst) == wire
    assert decode(wire, src, dst) == adv


def test_v3_checksum_covers_the_pseudo_header() -> None:
    # The same payload from another source no longer verifies (RFC 9568 5.2.8).
    with pytest.raises(PacketError) as err:
        decode(V3_IPV4, IPv4Address("192.0.2.2"), VRRP_GROUP_V4)
    assert err.value.reason is DropReason.CHECKSUM
    # Version 2 has no pseudo-header: the source does not matter.
    assert decode(V2_NOAUTH, IPv4Address("198.51.100.7"), VRRP_GROUP_V4).vrid == 51


def test_fast_checksum_matches_reference_on_odd_lengths() -> None:
    for n in range(40):
        data = bytes((i * 37 + n) & 0xFF for i in range(n))
        assert internet_checksum(data) == reference_checksum(data)


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adv", "src", "dst"),
    [
        (Advertisement(3, 1, 255, 1, (VIP4,)), SRC4, VRRP_GROUP_V4),
        (Advertisement(3, 255, 1, 4095, (VIP4, IPv4Address("198.51.100.1"))), SRC4, VRRP_GROUP_V4),
        (Advertisement(3, 7, 0, 35, (VIP6, IPv6Address("2001:db8::11"))), SRC6, VRRP_GROUP_V6),
        (Advertisement(3, 7, 200, 100, (VIP4,)), SRC4, IPv4Address("198.51.100.2")),  # unicast
        (Advertisement(2, 200, 150, 25500, (VIP4,), AUTH_NONE, bytes(8)), SRC4, VRRP_GROUP_V4),
        (Advertisement(2, 9, 0, 300, (VIP4,), AUTH_SIMPLE_TEXT, b"12345678"), SRC4, VRRP_GROUP_V4),
    ],
)
def test_round_trip(adv: Advertisement, src: IPAddress, dst: IPAddress) -> None:
    assert decode(encode(adv, src, dst), src, dst) == adv


def test_v2_auth_data_is_padded_and_truncated_to_eight_bytes() -> None:
    short = Advertisement(2, 9, 100, 100, (VIP4,), AUTH_SIMPLE_TEXT, b"pw")
    assert decode(encode(short, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4).auth_data == (
        b"pw" + bytes(6)
    )
    long = Advertisement(2, 9, 100, 100, (VIP4,), AUTH_SIMPLE_TEXT, b"0123456789")
    assert encode(long, SRC4, VRRP_GROUP_V4)[-8:] == b"01234567"


@pytest.mark.parametrize(
    ("adv", "src", "match"),
    [
        (Advertisement(3, 1, 100, 0, (VIP4,)), SRC4, "interval 0 cs"),
        (Advertisement(3, 1, 100, 4096, (VIP4,)), SRC4, "interval 4096 cs"),
        (Advertisement(2, 1, 100, 150, (VIP4,)), SRC4, "whole seconds"),
        (Advertisement(2, 1, 100, 25600, (VIP4,)), SRC4, "whole seconds"),
        (Advertisement(2, 1, 100, 0, (VIP4,)), SRC4, "whole seconds"),
        (Advertisement(2, 1, 100, 100, (VIP6,)), SRC6, "IPv4 only"),
        (Advertisement(4, 1, 100, 100, (VIP4,)), SRC4, "unsupported version 4"),
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(
    adv: Advertisement, src: IPAddress, match: str
) -> None:
    dst = VRRP_GROUP_V4 if src.version == 4 else VRRP_GROUP_V6
    with pytest.raises(ValueError, match=match):
        encode(adv, src, dst)


# -- scapy, both ways -----------------------------------------------------------------


def scapy_payload(packet: IP | IPv6) -> bytes:
    """The VRRP bytes of a scapy packet built with its IP header (so scapy sums it)."""
    whole = bytes(packet)
    header = 40 if packet.version == 6 else (whole[0] & 0x0F) * 4
    return whole[header:]


def test_decode_scapy_v3_ipv4() -> None:
    pkt = IP(src=str(SRC4), dst=str(VRRP_GROUP_V4), ttl=255) / VRRPv3(
        vrid=42, priority=120, adv=250, addrlist=["192.0.2.10", "198.51.100.20"]
    )
    adv = decode(scapy_payload(pkt), SRC4, VRRP_GROUP_V4)
    assert adv == Advertisement(
        3, 42, 120, 250, (VIP4, IPv4Address("198.51.100.20")), AUTH_NONE, b""
    )


def test_decode_scapy_v3_ipv4_ignores_reserved_bits() -> None:
    # RFC 9568 5.2.5: the reserved field MUST be ignored on receipt.
    pkt = IP(src=str(SRC4), dst=str(VRRP_GROUP_V4)) / VRRPv3(
        vrid=42, res=0xF, adv=100, addrlist=["192.0.2.10"]
    )
    assert decode(scapy_payload(pkt), SRC4, VRRP_GROUP_V4).interval_cs == 100


def test_decode_scapy_v3_ipv6() -> None:
    pkt = IPv6(src=str(SRC6), dst=str(VRRP_GROUP_V6), hlim=255) / VRRPv3(
        vrid=7, priority=255, adv=5, addrlist=["2001:db8::10", "2001:db8::1:0:0:11"]
    )
    adv = decode(scapy_payload(pkt), SRC6, VRRP_GROUP_V6)
    assert adv == Advertisement(3, 7, 255, 5, (VIP6, IPv6Address("2001:db8::1:0:0:11")))


@pytest.mark.parametrize(
    ("authtype", "auth1", "auth2", "auth_data"),
    [(0, 0, 0, bytes(8)), (1, 0x73656372, 0x65740000, b"secret\0\0")],
)
def test_decode_scapy_v2(authtype: int, auth1: int, auth2: int, auth_data: bytes) -> None:
    pkt = IP(src=str(SRC4), dst=str(VRRP_GROUP_V4), ttl=255) / VRRP(
        vrid=200, priority=50, adv=3, authtype=authtype, auth1=auth1, auth2=auth2,
        addrlist=["192.0.2.10"],
    )  # fmt: skip
    adv = decode(scapy_payload(pkt), SRC4, VRRP_GROUP_V4)
    assert adv == Advertisement(2, 200, 50, 300, (VIP4,), authtype, auth_data)


def assert_scapy_checksum_verifies(packet: IP | IPv6, layer: type[VRRP] | type[VRRPv3]) -> None:
    """Scapy recomputes the checksum from scratch; it must equal the one we wrote."""
    ours = packet[layer].chksum
    del packet[layer].chksum
    rebuilt = type(packet)(bytes(packet))
    assert rebuilt[layer].chksum == ours


def test_scapy_parses_our_v3_ipv4() -> None:
    adv = Advertisement(3, 42, 120, 250, (VIP4, IPv4Address("198.51.100.20")))
    wire = encode(adv, SRC4, VRRP_GROUP_V4)
    pkt = IP(bytes(IP(src=str(SRC4), dst=str(VRRP_GROUP_V4), proto=VRRP_PROTOCOL) / Raw(wire)))
    v = pkt[VRRPv3]
    assert (v.version, v.type, v.vrid, v.priority, v.ipcount, v.res, v.adv) == (
        3, 1, 42, 120, 2, 0, 250,
    )  # fmt: skip
    assert v.addrlist == ["192.0.2.10", "198.51.100.20"]
    assert_scapy_checksum_verifies(pkt, VRRPv3)


def test_scapy_parses_our_v3_ipv6() -> None:
    adv = Advertisement(3, 7, 255, 5, (VIP6, IPv6Address("2001:db8::11")))
    wire = encode(adv, SRC6, VRRP_GROUP_V6)
    pkt = IPv6(bytes(IPv6(src=str(SRC6), dst=str(VRRP_GROUP_V6), nh=VRRP_PROTOCOL) / Raw(wire)))
    v = pkt[VRRPv3]
    assert (v.version, v.vrid, v.priority, v.ipcount, v.adv) == (3, 7, 255, 2, 5)
    assert v.addrlist == ["2001:db8::10", "2001:db8::11"]
    assert_scapy_checksum_verifies(pkt, VRRPv3)


@pytest.mark.parametrize(
    ("auth_type", "auth_data", "auth1", "auth2"),
    [(AUTH_NONE, b"", 0, 0), (AUTH_SIMPLE_TEXT, b"secret", 0x73656372, 0x65740000)],
)
def test_scapy_parses_our_v2(auth_type: int, auth_data: bytes, auth1: int, auth2: int) -> None:
    adv = Advertisement(2, 200, 50, 300, (VIP4,), auth_type, auth_data)
    wire = encode(adv, SRC4, VRRP_GROUP_V4)
    pkt = IP(bytes(IP(src=str(SRC4), dst=str(VRRP_GROUP_V4), proto=VRRP_PROTOCOL) / Raw(wire)))
    v = pkt[VRRP]
    assert (v.version, v.type, v.vrid, v.priority, v.ipcount, v.authtype, v.adv) == (
        2, 1, 200, 50, 1, auth_type, 3,
    )  # fmt: skip
    assert v.addrlist == ["192.0.2.10"]
    assert (v.auth1, v.auth2) == (auth1, auth2)
    assert_scapy_checksum_verifies(pkt, VRRP)


# -- every drop reason ----------------------------------------------------------------


def resum_v3(data: bytes, src: IPv4Address = SRC4, dst: IPv4Address = VRRP_GROUP_V4) -> bytes:
    """Fix up the v3 checksum after tampering, so only the tampered field is wrong."""
    zeroed = with_checksum(data, 0)
    return with_checksum(zeroed, reference_checksum(pseudo_v4(src, dst, len(data)) + zeroed))


def resum_v2(data: bytes) -> bytes:
    zeroed = with_checksum(data, 0)
    return with_checksum(zeroed, reference_checksum(zeroed))


def drop(name: str, data: bytes, src: IPAddress, reason: DropReason, detail: str) -> object:
    return pytest.param(data, src, reason, detail, id=name)


@pytest.mark.parametrize(
    ("data", "src", "reason", "detail"),
    [
        drop("empty", b"", SRC4, DropReason.MALFORMED, "0 bytes is shorter than the header"),
        drop("short", V3_IPV4[:7], SRC4, DropReason.MALFORMED,
             "7 bytes is shorter than the header"),
        drop("version-4", resum_v3(b"\x41" + V3_IPV4[1:]), SRC4, DropReason.VERSION, "version 4"),
        drop("version-1", resum_v3(b"\x11" + V3_IPV4[1:]), SRC4, DropReason.VERSION, "version 1"),
        drop("version-0", resum_v3(b"\x01" + V3_IPV4[1:]), SRC4, DropReason.VERSION, "version 0"),
        drop("v2-over-ipv6", V2_NOAUTH, SRC6, DropReason.VERSION, "version 2 over IPv6"),
        drop("type-2", resum_v3(b"\x32" + V3_IPV4[1:]), SRC4, DropReason.MALFORMED, "type 2"),
        drop("type-0", resum_v3(b"\x30" + V3_IPV4[1:]), SRC4, DropReason.MALFORMED, "type 0"),
        drop("count-too-big", resum_v3(V3_IPV4[:3] + b"\x02" + V3_IPV4[4:]), SRC4,
             DropReason.MALFORMED, "12 bytes for 2 addresses (want 16)"),
        drop("count-zero", resum_v3(V3_IPV4[:3] + b"\x00" + V3_IPV4[4:]), SRC4,
             DropReason.MALFORMED, "12 bytes for 0 addresses (want 8)"),
        drop("trailing-byte", V3_IPV4 + b"\0", SRC4, DropReason.MALFORMED,
             "13 bytes for 1 addresses (want 12)"),
        drop("truncated", V3_IPV4[:-1], SRC4, DropReason.MALFORMED,
             "11 bytes for 1 addresses (want 12)"),
        drop("v2-no-auth-data", V2_NOAUTH[:-8], SRC4, DropReason.MALFORMED,
             "12 bytes for 1 addresses (want 20)"),
        # An IPv4 payload received over IPv6 and the reverse: the count no longer fits.
        drop("ipv4-payload-over-ipv6", V3_IPV4, SRC6, DropReason.MALFORMED,
             "12 bytes for 1 addresses (want 24)"),
        drop("ipv6-payload-over-ipv4", V3_IPV6, SRC4, DropReason.MALFORMED,
             "24 bytes for 1 addresses (want 12)"),
        drop("checksum-off-by-one", with_checksum(V3_IPV4, 0x05CD), SRC4, DropReason.CHECKSUM,
             "checksum does not verify"),
        drop("address-changed", V3_IPV4[:-1] + b"\x0b", SRC4, DropReason.CHECKSUM,
             "checksum does not verify"),
        drop("v2-checksum", with_checksum(V2_AUTH, 0x7B74), SRC4, DropReason.CHECKSUM,
             "checksum does not verify"),
        drop("v3-interval-0", resum_v3(V3_IPV4[:4] + b"\x00\x00" + V3_IPV4[6:]), SRC4,
             DropReason.MALFORMED, "advertisement interval 0"),
        # Only the reserved nibble set: the 12-bit interval is still zero.
        drop("v3-interval-0-reserved-set", resum_v3(V3_IPV4[:4] + b"\xf0\x00" + V3_IPV4[6:]),
             SRC4, DropReason.MALFORMED, "advertisement interval 0"),
        drop("v2-interval-0", resum_v2(V2_NOAUTH[:4] + b"\x00\x00" + V2_NOAUTH[6:]), SRC4,
             DropReason.MALFORMED, "advertisement interval 0"),
    ],
)  # fmt: skip
def test_drop_reasons(data: bytes, src: IPAddress, reason: DropReason, detail: str) -> None:
    dst = VRRP_GROUP_V4 if src.version == 4 else VRRP_GROUP_V6
    with pytest.raises(PacketError) as err:
        decode(data, src, dst)
    assert err.value.reason is reason
    assert err.value.detail == detail
    assert str(err.value) == f"{reason.value}: {detail}"


def test_zero_interval_built_by_scapy_is_dropped() -> None:
    # A third party's encoder, so the checksum over the zero interval is not ours.
    pkt = IP(src=str(SRC4), dst=str(VRRP_GROUP_V4)) / VRRPv3(adv=0, addrlist=["192.0.2.10"])
    with pytest.raises(PacketError) as err:
        decode(scapy_payload(pkt), SRC4, VRRP_GROUP_V4)
    assert err.value.reason is DropReason.MALFORMED


# -- property tests ----------------------------------------------------------------------

ipv4s = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
ipv6s = st.builds(IPv6Address, st.integers(0, 2**128 - 1))
octets = st.integers(0, 255)


@st.composite
def valid_packets(draw: st.DrawFn) -> tuple[Advertisement, IPAddress, IPAddress]:
    """Any advertisement our encoder accepts, with the addresses it travels between."""
    kind = draw(st.sampled_from(["v3-4", "v3-6", "v2"]))
    vrid, priority = draw(octets), draw(octets)
    family: st.SearchStrategy[IPAddress] = ipv6s if kind == "v3-6" else ipv4s
    src, dst = draw(family), draw(family)
    addresses = tuple(draw(st.lists(family, max_size=8)))
    if kind == "v2":
        auth_type = draw(octets)
        auth_data = draw(st.binary(min_size=8, max_size=8))
        interval = draw(st.integers(1, 255)) * 100
        return Advertisement(2, vrid, priority, interval, addresses, auth_type, auth_data), src, dst
    interval = draw(st.integers(1, 0x0FFF))
    return Advertisement(3, vrid, priority, interval, addresses), src, dst


def decode_or_drop(data: bytes, src: IPAddress, dst: IPAddress) -> Advertisement | PacketError:
    """Run the decoder; any exception but PacketError fails the calling test."""
    try:
        return decode(data, src, dst)
    except PacketError as exc:
        assert isinstance(exc.reason, DropReason)
        return exc


@given(valid_packets())
def test_property_round_trip(case: tuple[Advertisement, IPAddress, IPAddress]) -> None:
    adv, src, dst = case
    assert decode(encode(adv, src, dst), src, dst) == adv


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=80),
    st.one_of(st.tuples(ipv4s, ipv4s), st.tuples(ipv6s, ipv6s), st.tuples(ipv4s, ipv6s)),
)
def test_property_arbitrary_bytes(data: bytes, addresses: tuple[IPAddress, IPAddress]) -> None:
    result = decode_or_drop(data, *addresses)
    if isinstance(result, Advertisement):
        # Whatever is accepted encodes back to the input (bar v3's ignored reserved bits).
        assert result.interval_cs > 0
        assert len(result.addresses) == data[3]
        if result.version == 2 or data[4] >> 4 == 0:
            assert encode(result, *addresses) == data


@st.composite
def mutated_packets(draw: st.DrawFn) -> tuple[bytes, IPAddress, IPAddress]:
    adv, src, dst = draw(valid_packets())
    data = bytearray(encode(adv, src, dst))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "truncate", "extend", "insert", "delete"]))
        if op == "set" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(octets)
        elif op == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=20))
        elif op == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(octets))
        elif op == "delete" and data:
            del data[draw(st.integers(0, len(data) - 1))]
    return bytes(data), src, dst


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_packets())
def test_property_mutated_packets(case: tuple[bytes, IPAddress, IPAddress]) -> None:
    decode_or_drop(*case)


@settings(max_examples=300, deadline=None)
@given(valid_packets(), st.data())
def test_property_every_single_bit_flip_is_dropped(
    case: tuple[Advertisement, IPAddress, IPAddress], data: st.DataObject
) -> None:
    # The Internet checksum catches every single-bit error, and the fields it does not
    # cover (the pseudo-header's length comes from the payload) fail the length check.
    adv, src, dst = case
    wire = bytearray(encode(adv, src, dst))
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 0x80 >> (bit % 8)
    assert isinstance(decode_or_drop(bytes(wire), src, dst), PacketError)


def test_addresses_keep_their_order_and_family() -> None:
    addresses = tuple(ip_address(f"2001:db8::{i:x}") for i in range(20, 0, -1))
    adv = Advertisement(3, 1, 100, 100, addresses)
    got = decode(encode(adv, SRC6, VRRP_GROUP_V6), SRC6, VRRP_GROUP_V6)
    assert got.addresses == addresses
    assert all(isinstance(a, IPv6Address) for a in got.addresses)


def test_header_layout_fields() -> None:
    # Read the fields back with struct per the RFC diagram, independent of decode().
    wire = encode(Advertisement(3, 0xAB, 0xCD, 0xFFF, (VIP4,)), SRC4, VRRP_GROUP_V4)
    ver_type, vrid, prio, count, second = struct.unpack_from("!BBBBH", wire)
    assert (ver_type, vrid, prio, count, second) == (0x31, 0xAB, 0xCD, 1, 0x0FFF)
