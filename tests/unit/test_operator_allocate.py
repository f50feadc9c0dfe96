"""VRID and port allocation, and conflicts between VirtualIPs (pure), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest

from keepvip_operator.allocate import (
    Claim,
    choose_port,
    choose_vrid,
    claim_of,
    find_conflicts,
)
from keepvip_operator.observed import observe

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def claim(
    key: str,
    age: int,
    *addresses: str,
    spec: int | None = None,
    status: int | None = None,
    family: int | None = None,
) -> Claim:
    """``age``: seconds after T0 it was created (higher is newer)."""
    ips = frozenset(ip_address(a) for a in addresses)
    fam = family or (ip_address(addresses[0]).version if addresses else None)
    return Claim(key, T0 + timedelta(seconds=age), ips, fam, spec, status)


A = claim("ns/a", 0, "192.0.2.1", spec=1)
B = claim("ns/b", 10, "192.0.2.2", status=2)
V6 = claim("ns/v6", 20, "2001:db8::1", spec=5)


def v4(vrid: int) -> Claim:
    return claim(f"ns/v4-{vrid}", 0, f"198.51.100.{vrid}", spec=vrid)


def v6(vrid: int) -> Claim:
    return claim(f"ns/v6-{vrid}", 0, f"2001:db8::{vrid:x}", spec=vrid)


@pytest.mark.parametrize(
    ("me", "others", "expected"),
    [
        (claim("ns/x", 30, "192.0.2.9", spec=9), [A, B], 9),  # the spec's, always
        (claim("ns/x", 30, "192.0.2.9", spec=1), [A], 1),  # even if taken (a conflict, below)
        (claim("ns/x", 30, "192.0.2.9"), [], 1),
        (claim("ns/x", 30, "192.0.2.9"), [A, B], 3),
        (claim("ns/x", 30, "192.0.2.9"), [A, B, V6], 3),  # family-blind: 5 is skipped too
        (claim("ns/x", 30, "192.0.2.9"), [A, claim("ns/c", 5, "192.0.2.3", spec=3, status=4)], 2),
        (claim("ns/x", 30, "192.0.2.9", status=7), [A, B], 7),  # keeps its allocated VRID
        # ... unless an older object uses it, which wins
        (claim("ns/x", 30, "192.0.2.9", status=2), [A, B], 3),
        # ... but not against a newer one (that one gets the conflict)
        (claim("ns/x", 5, "192.0.2.9", status=2), [A, B], 2),
        (claim("ns/x", 30, "192.0.2.9"), [v4(v) for v in range(1, 256)], None),
        (claim("ns/x", 30, "192.0.2.9"), [v4(v) for v in range(1, 255)], 255),
        # VRIDs are 255 per family: with all 255 taken by IPv6, IPv4 still has its own.
        (claim("ns/x", 30, "192.0.2.9"), [v6(v) for v in range(1, 256)], 1),
        (claim("ns/x", 30, "2001:db8::9"), [v6(v) for v in range(1, 256)], None),
        # Mixed: every VRID taken by one family or the other: the lowest the other family has.
        (claim("ns/x", 30, "192.0.2.9"),
         [v4(v) for v in range(1, 201)] + [v6(v) for v in range(201, 256)], 201),
        (claim("ns/x", 30, "2001:db8::9"),
         [v4(v) for v in range(1, 201)] + [v6(v) for v in range(201, 256)], 1),
        # A claim of unknown family (invalid spec, reservation) counts for both.
        (claim("ns/x", 30, "192.0.2.9"),
         [v4(v) for v in range(1, 255)] + [claim("ns/r", 0, status=255)], None),
        # An allocated VRID the other family also uses is kept (another virtual router).
        (claim("ns/x", 30, "192.0.2.9", status=7), [v6(7)], 7),
    ],
    ids=["spec", "spec-taken", "first", "lowest-free", "family-blind", "spec-and-status-count",
         "keeps-allocated", "older-wins", "newer-loses", "exhausted", "last-one",
         "v4-after-255-v6", "256th-v6", "mixed-v4", "mixed-v6", "unknown-family-counts",
         "keeps-other-family-vrid"],
)  # fmt: skip
def test_choose_vrid(me: Claim, others: list[Claim], expected: int | None) -> None:
    assert choose_vrid(me, others) == expected


def test_choose_vrid_ignores_itself_in_others() -> None:
    me = claim("ns/x", 30, "192.0.2.9", status=4)
    assert choose_vrid(me, [me, A]) == 4


@pytest.mark.parametrize(
    ("me", "vrid", "others", "expected"),
    [
        (claim("ns/x", 30, "192.0.2.9"), 3, [A, B], []),
        (claim("ns/x", 30, "192.0.2.1", "192.0.2.9"), 3, [A, B],
         [("AddressInUse", "address 192.0.2.1 already claimed by ns/a (older)")]),
        (claim("ns/x", 30, "192.0.2.2", "192.0.2.1"), 3, [A, B],
         [("AddressInUse", "address 192.0.2.1 already claimed by ns/a (older)"),
          ("AddressInUse", "address 192.0.2.2 already claimed by ns/b (older)")]),
        (claim("ns/x", 30, "192.0.2.1", "192.0.2.2"), 3,
         [claim("ns/c", 0, "192.0.2.1", "192.0.2.2", spec=4)],
         [("AddressInUse", "addresses 192.0.2.1, 192.0.2.2 already claimed by ns/c (older)")]),
        # Prefix lengths do not matter: the same IP is the same VIP.
        (claim("ns/x", 30, "192.0.2.1"), 3, [claim("ns/c", 0, "192.0.2.1", spec=4)],
         [("AddressInUse", "address 192.0.2.1 already claimed by ns/c (older)")]),
        (claim("ns/x", 30, "192.0.2.9"), 1, [A],
         [("VirtualRouterIDInUse", "virtualRouterID 1 already used by ns/a for IPv4 (older)")]),
        (claim("ns/x", 30, "192.0.2.9"), 2, [A, B],
         [("VirtualRouterIDInUse", "virtualRouterID 2 already used by ns/b for IPv4 (older)")]),
        # The other family's VRID 5 is another virtual router (RFC 9568).
        (claim("ns/x", 30, "192.0.2.9"), 5, [V6], []),
        (claim("ns/x", 30, "2001:db8::9"), 5, [V6],
         [("VirtualRouterIDInUse", "virtualRouterID 5 already used by ns/v6 for IPv6 (older)")]),
        # The older object wins: a newer one never blocks it.
        (claim("ns/x", -5, "192.0.2.1"), 1, [A], []),
        (claim("ns/x", 30, "192.0.2.9"), None, [A],
         [("NoVRID", "no virtualRouterID left: all 255 for IPv4 are in use (VRIDs are 255 "
                     "per segment and address family); free one, or serve LoadBalancer "
                     "Services with externalTrafficPolicy Cluster from a pool (they share a "
                     "VRRP router)")]),
    ],
    ids=["none", "one-address", "two-objects", "two-addresses", "prefix-blind", "vrid-spec",
         "vrid-status", "vrid-other-family", "vrid-same-family-v6", "older-wins", "exhausted"],
)  # fmt: skip
def test_find_conflicts(
    me: Claim, vrid: int | None, others: list[Claim], expected: list[tuple[str, str]]
) -> None:
    assert [(c.reason, c.message) for c in find_conflicts(me, vrid, others)] == expected


def test_same_second_ties_break_by_namespace_and_name() -> None:
    first = claim("ns/a", 0, "192.0.2.1")
    second = claim("ns/b", 0, "192.0.2.1")
    assert first.older_than(second) and not second.older_than(first)
    assert find_conflicts(first, 1, [second]) == []
    assert [c.reason for c in find_conflicts(second, 2, [first])] == ["AddressInUse"]


def body(name: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:05Z",
        },
        "spec": spec,
        **extra,
    }


def test_claim_of_an_observed_virtualip() -> None:
    obs = observe(
        body("web", {"addresses": ["192.0.2.1/24", "2001:db8::1"]}, status={"virtualRouterID": 9})
    )
    c = claim_of(obs)
    assert c.key == "ns/web" and c.created == T0 + timedelta(seconds=5)
    assert c.addresses == {ip_address("192.0.2.1"), ip_address("2001:db8::1")}
    assert (c.family, c.spec_vrid, c.status_vrid, c.vrid) == (4, None, 9, 9)
    # A reservation stands in only while the status has none.
    assert claim_of(obs, status_vrid=3).status_vrid == 9
    fresh = observe(body("new", {"addresses": ["192.0.2.1"]}))
    assert claim_of(fresh, status_vrid=3).status_vrid == 3


def test_an_invalid_spec_still_claims_its_vrid() -> None:
    obs = observe(body("bad", {"addresses": ["nope"], "virtualRouterID": 12}))
    assert obs.vip is None and obs.problems
    c = claim_of(obs)
    assert (c.spec_vrid, c.addresses, c.family) == (12, frozenset(), None)


@pytest.mark.parametrize(
    ("current", "used", "expected"),
    [
        (None, [], 9650),
        (None, [9650, 9651], 9652),
        (9655, [9650], 9655),
        (9650, [9650], 9651),  # somebody else has it (a race): move
        (9000, [], 9650),  # outside the range (settings changed): move in
        (None, list(range(9650, 9658)), None),
    ],
)
def test_choose_port(current: int | None, used: list[int], expected: int | None) -> None:
    assert choose_port(current, used, 9650, 8) == expected
