"""A full shared router fits one advertisement: the model's limits against the real codec.

The operator fills a pool's shared router up to ``pools.ROUTER_CAPACITY`` and the
model refuses more than ``MAX_ADVERTISED`` election addresses; here the packet
that such a VirtualIP's master sends is encoded and decoded by the agent's
codec, and must fit the IPv6 minimum link MTU (1280 bytes, IP header included).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from keepvip_agent.vrrp.packet import Advertisement, decode, encode, multicast_group
from keepvip_api import SpecError, from_api_object
from keepvip_api.model import MAX_ADDRESSES, MAX_ADVERTISED
from keepvip_operator.pools import ROUTER_CAPACITY

MIN_MTU = 1280
IP_HEADER = {4: 20, 6: 40}


def addresses(family: int, n: int) -> list[str]:
    base = "198.51.100.0" if family == 4 else "2001:db8::"
    return [str(ip_address(base) + i + 1) for i in range(n)]


def router(family: int, n: int) -> dict[str, object]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"addresses": addresses(family, n), "virtualRouterID": 1},
    }


@pytest.mark.parametrize("family", [4, 6])
def test_a_full_router_encodes_within_the_minimum_mtu(family: int) -> None:
    assert ROUTER_CAPACITY[family] <= min(MAX_ADVERTISED[family], MAX_ADDRESSES)
    vip = from_api_object(router(family, ROUTER_CAPACITY[family]))
    listed = tuple(a.ip for a in vip.spec.election_addresses)
    assert len(listed) == ROUTER_CAPACITY[family]
    src: IPv4Address | IPv6Address = ip_address("198.51.100.254" if family == 4 else "fe80::1")
    dst = multicast_group(family)
    adv = Advertisement(3, 1, 100, 100, listed)
    payload = encode(adv, src, dst)
    assert IP_HEADER[family] + len(payload) <= MIN_MTU
    assert decode(payload, src, dst).addresses == listed


def test_one_ipv6_address_more_than_an_advert_holds_is_refused() -> None:
    payload = 8 + 16 * (MAX_ADVERTISED[6] + 1)
    assert IP_HEADER[6] + payload > MIN_MTU  # the limit is the largest that fits
    with pytest.raises(SpecError, match="an advertisement lists at most"):
        from_api_object(router(6, MAX_ADVERTISED[6] + 1))
