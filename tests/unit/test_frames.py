"""Gratuitous ARP and unsolicited NA frames: byte by byte, then through scapy's dissectors."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6, in6_chksum
from scapy.layers.l2 import ARP, Ether

from keepvip_agent.vrrp.frames import gratuitous_arp, unsolicited_na

MAC = bytes.fromhex("020000000001")
MAC_TEXT = "02:00:00:00:00:01"
VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8::10")


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text)


# Ethernet: broadcast, our MAC, ARP. ARP: Ethernet/IPv4, 6/4 byte addresses, request;
# sender MAC and IP, target MAC unknown (zero), target IP the VIP itself.
GARP = hexbytes(
    "ff ff ff ff ff ff  02 00 00 00 00 01  08 06"
    "00 01  08 00  06  04  00 01"
    "02 00 00 00 00 01  c0 00 02 0a"
    "00 00 00 00 00 00  c0 00 02 0a"
)

# Ethernet: 33:33:00:00:00:01 (all nodes), our MAC, IPv6.
# IPv6: version 6, payload 32, next header 58 (ICMPv6), hop limit 255, VIP -> ff02::1.
# ICMPv6: type 136, code 0, checksum, flags O (0x20000000), target VIP,
# option 2 (target link-layer address), length 1 (8 bytes), our MAC.
# Checksum by hand: pseudo-header words 2001 0db8 0010 ff02 0001 0020 003a, ICMPv6 words
# 8800 2000 2001 0db8 0010 0201 0200 0001 (zeros left out) sum to 0x206f1; folded
# 0x06f3; complemented 0xf90c.
NA = hexbytes(
    "33 33 00 00 00 01  02 00 00 00 00 01  86 dd"
    "60 00 00 00  00 20  3a  ff"
    "20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10"
    "ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01"
    "88  00  f9 0c  20 00 00 00"
    "20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 10"
    "02  01  02 00 00 00 00 01"
)


def test_gratuitous_arp_bytes() -> None:
    assert gratuitous_arp(MAC, VIP4) == GARP
    assert len(GARP) == 42


def test_unsolicited_na_bytes() -> None:
    assert unsolicited_na(MAC, VIP6) == NA
    assert len(NA) == 14 + 40 + 32


def test_gratuitous_arp_through_scapy() -> None:
    frame = Ether(gratuitous_arp(MAC, VIP4))
    assert (frame.dst, frame.src, frame.type) == ("ff:ff:ff:ff:ff:ff", MAC_TEXT, 0x0806)
    arp = frame[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen, arp.op) == (1, 0x0800, 6, 4, 1)
    assert (arp.hwsrc, arp.psrc) == (MAC_TEXT, str(VIP4))
    assert (arp.hwdst, arp.pdst) == ("00:00:00:00:00:00", str(VIP4))
    # And scapy, built from the same fields, writes the very same bytes.
    built = Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_TEXT) / ARP(
        op=1, hwsrc=MAC_TEXT, psrc=str(VIP4), hwdst="00:00:00:00:00:00", pdst=str(VIP4)
    )
    assert bytes(built) == GARP


@pytest.mark.parametrize(
    ("mac", "vip"),
    [
        (MAC, VIP6),
        (bytes.fromhex("fedcba987654"), IPv6Address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),
        (bytes.fromhex("00005e000102"), IPv6Address("fe80::1")),
    ],
)
def test_unsolicited_na_through_scapy(mac: bytes, vip: IPv6Address) -> None:
    mac_text = ":".join(f"{b:02x}" for b in mac)
    frame = Ether(unsolicited_na(mac, vip))
    assert (frame.dst, frame.src, frame.type) == ("33:33:00:00:00:01", mac_text, 0x86DD)
    ip6 = frame[IPv6]
    assert (ip6.version, ip6.tc, ip6.fl, ip6.nh, ip6.hlim) == (6, 0, 0, 58, 255)
    assert (ip6.src, ip6.dst, ip6.plen) == (str(vip), "ff02::1", 32)
    na = frame[ICMPv6ND_NA]
    assert (na.type, na.code, na.R, na.S, na.O, na.tgt) == (136, 0, 0, 0, 1, str(vip))
    option = frame[ICMPv6NDOptDstLLAddr]
    assert (option.type, option.len, option.lladdr) == (2, 1, mac_text)
    # The checksum verifies: over the pseudo-header the sum of a correct message is 0.
    assert in6_chksum(58, ip6, bytes(ip6.payload)) == 0
    # And scapy, computing its own checksum from scratch, agrees with ours.
    ours = na.cksum
    del na.cksum
    assert Ether(bytes(frame))[ICMPv6ND_NA].cksum == ours
    built = (
        Ether(dst="33:33:00:00:00:01", src=mac_text)
        / IPv6(src=str(vip), dst="ff02::1", hlim=255)
        / ICMPv6ND_NA(R=0, S=0, O=1, tgt=str(vip))
        / ICMPv6NDOptDstLLAddr(lladdr=mac_text)
    )
    assert bytes(built) == unsolicited_na(mac, vip)
