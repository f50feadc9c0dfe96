"""Network and broadcast addresses of a node's connected networks (keepvip_api.subnets)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from keepvip_agent.runtime.agent import reserved_address
from keepvip_api import parse_virtualip
from keepvip_api.subnets import MAX_PUBLISHED, format_networks, parse_networks, reserved_role

NETS = parse_networks("192.0.2.0/24, 198.51.100.0/30,203.0.113.4/31,203.0.113.9/32,2001:db8::/64")


@pytest.mark.parametrize(
    ("address", "role"),
    [
        ("192.0.2.0", ("network", "192.0.2.0/24")),
        ("192.0.2.255", ("broadcast", "192.0.2.0/24")),
        ("198.51.100.3", ("broadcast", "198.51.100.0/30")),
        ("2001:db8::", ("subnet-router anycast", "2001:db8::/64")),
        ("192.0.2.1", None),
        ("192.0.2.254", None),
        ("203.0.113.4", None),
        ("203.0.113.5", None),
        ("203.0.113.9", None),
        ("2001:db8::ffff:ffff:ffff:ffff", None),
        ("233.252.0.0", None),
    ],
)
def test_only_the_ends_of_networks_wider_than_a_31_are_reserved(
    address: str, role: tuple[str, str] | None
) -> None:
    got = reserved_role(ip_address(address), NETS)
    assert (got and (got[0], str(got[1]))) == role


def test_the_annotation_round_trips_sorted_unique_and_bounded() -> None:
    text = format_networks([*NETS, *NETS])
    assert text.split(",")[0] == "192.0.2.0/24" and text.endswith("2001:db8::/64")
    assert parse_networks(text) == tuple(
        sorted(set(NETS), key=lambda n: (n.version, n.network_address))
    )
    many = [ip_network(f"10.{i // 256}.{i % 256}.0/24") for i in range(MAX_PUBLISHED + 5)]
    assert len(format_networks(many).split(",")) == MAX_PUBLISHED


def test_an_entry_written_by_hand_that_is_not_a_cidr_is_skipped() -> None:
    assert parse_networks("192.0.2.0/24,eth0,,2001:db8::/64") == parse_networks(
        "192.0.2.0/24,2001:db8::/64"
    )
    assert parse_networks(None) == ()


def test_the_agent_names_the_address_and_the_network_it_refuses() -> None:
    vip = parse_virtualip({
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {"addresses": ["192.0.2.7/24", "192.0.2.255/24"]},
    })  # fmt: skip
    why = reserved_address(vip, NETS)
    assert why is not None and why.startswith(
        "address 192.0.2.255 is the broadcast address of 192.0.2.0/24, a connected network"
    )
    assert reserved_address(vip, parse_networks("198.51.100.0/24")) is None
