"""Address allocation for LoadBalancer Services (pools.plan) and the objects it reads and renders."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address
from typing import Any

import pytest

from keepvip_api import parse_virtualip
from keepvip_operator import pools, publish
from keepvip_operator.lbmodel import (
    LBService,
    Pool,
    read_pool,
    read_service,
    read_virtualip,
    vip_name,
)

NS = "shop"


def pool(name: str, *addresses: str, **spec: Any) -> Pool:
    got = read_pool(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIPPool",
            "metadata": {"name": name},
            "spec": {"addresses": list(addresses), **spec},
        }
    )
    assert isinstance(got, Pool), got
    return got


def service(
    name: str,
    minute: int = 0,
    *,
    ns: str = NS,
    ips: str | None = None,
    share: str | None = None,
    ports: Iterable[int] = (80,),
    families: tuple[str, ...] = ("IPv4",),
    cls: str | None = "keepvip.io/vrrp",
    default: bool = False,
    policy: str | None = None,
    **annotations: str,
) -> LBService:
    ann = dict(annotations)
    if ips is not None:
        ann["keepvip.io/load-balancer-ips"] = ips
    if share is not None:
        ann["keepvip.io/allow-shared-ip"] = share
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "ipFamilies": list(families),
        "ports": [{"port": p, "protocol": "TCP"} for p in ports],
    }
    if cls:
        spec["loadBalancerClass"] = cls
    if policy:
        spec["externalTrafficPolicy"] = policy
    svc = read_service(
        {
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": f"uid-{name}",
                "creationTimestamp": f"2026-01-01T00:{minute:02d}:00Z",
                "annotations": ann,
            },
            "spec": spec,
        },
        default_load_balancer=default,
    )
    assert svc is not None
    return svc


def as_vips(plan: pools.Plan, *others: Any) -> list[Any]:
    """The cluster after the plan is applied: its VirtualIPs, read back."""
    out = [read_virtualip(w.body) for w in plan.wanted if w.body is not None]
    return [*out, *others]


def outcome(plan: pools.Plan, name: str, ns: str = NS) -> tuple[str, str]:
    o = plan.outcomes[f"{ns}/{name}"]
    return o.status, o.reason


def addresses(plan: pools.Plan, name: str, ns: str = NS) -> list[str]:
    return [str(a) for a in plan.outcomes[f"{ns}/{name}"].addresses]


POOL = pool("web", "192.0.2.10-192.0.2.11", advertInterval="100ms", fencing="strict",
            nodeSelector={"vip": "yes"}, nodes=[{"name": "n1", "priority": 200}])  # fmt: skip


def test_a_service_gets_the_first_address_and_a_virtualip_with_the_pools_defaults() -> None:
    p = pools.plan([service("web")], [POOL], [])
    assert outcome(p, "web") == ("True", "AddressAssigned")
    assert addresses(p, "web") == ["192.0.2.10"]
    (w,) = p.wanted
    body = dict(w.body or {})
    assert body["metadata"]["name"] == "lb-web"
    assert body["metadata"]["labels"]["keepvip.io/pool"] == "web"
    assert body["metadata"]["labels"]["keepvip.io/service"] == "web"
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web", "controller": True}
    ]
    spec = parse_virtualip(body).spec
    assert spec.advert_interval == 0.1 and spec.fencing == "strict"
    assert spec.node_selector == {"vip": "yes"} and spec.nodes[0].priority == 200
    assert spec.service_ref is not None and spec.service_ref.services == ("web",)
    assert p.pools["web"] == pools.PoolStatus(1, 1, ("shop/web",))


def test_a_pools_authhmac_reaches_its_virtualips() -> None:
    signed = pool(
        "web", "192.0.2.10-192.0.2.11", authHMAC={"secretName": "lb-keys", "mode": "permissive"}
    )
    (w,) = pools.plan([service("web")], [signed], []).wanted
    auth = parse_virtualip(dict(w.body or {})).spec.auth_hmac
    assert auth is not None and (auth.secret_name, auth.mode) == ("lb-keys", "permissive")


def test_the_virtualips_are_the_source_of_truth_across_restarts_and_pool_edits() -> None:
    first = pools.plan([service("a", 1)], [POOL], [])
    # A restart with a new, older Service: the existing VirtualIP keeps a's address.
    grown = pool("web", "192.0.2.9-192.0.2.11")
    again = pools.plan([service("b", 0), service("a", 1)], [grown], as_vips(first))
    assert addresses(again, "a") == ["192.0.2.10"]
    assert addresses(again, "b") == ["192.0.2.9"]
    assert again.delete == ()


def test_exhausted_then_freed_without_an_edit() -> None:
    one = pool("tiny", "192.0.2.10")
    p = pools.plan([service("a", 1), service("b", 2)], [one], [])
    assert outcome(p, "b") == ("False", "PoolExhausted")
    assert "tiny (1 addresses)" in p.outcomes[f"{NS}/b"].message
    # a is deleted: garbage collection removes its VirtualIP; the next round gives b the address.
    p2 = pools.plan([service("b", 2)], [one], [])
    assert outcome(p2, "b") == ("True", "AddressAssigned")
    assert addresses(p2, "b") == ["192.0.2.10"]


def test_a_virtualip_being_deleted_still_holds_its_address() -> None:
    one = pool("tiny", "192.0.2.10")
    first = pools.plan([service("a", 1)], [one], [])
    body = dict(first.wanted[0].body or {})
    body["metadata"] = {**body["metadata"], "deletionTimestamp": "2026-01-01T01:00:00Z"}
    deleting = read_virtualip(body)
    assert deleting.deleting
    p = pools.plan([service("b", 2)], [one], [deleting])
    assert outcome(p, "b") == ("False", "PoolExhausted")
    assert p.delete == ()  # not deleted twice


def test_requested_addresses_checked_against_the_pools() -> None:
    p = pools.plan(
        [service("in", ips="192.0.2.11"), service("out", ips="198.51.100.7")], [POOL], []
    )
    assert addresses(p, "in") == ["192.0.2.11"]
    assert outcome(p, "out") == ("False", "AddressNotInPool")
    assert "198.51.100.7" in p.outcomes[f"{NS}/out"].message
    # The deprecated spec.loadBalancerIP is read too; autoAssign: false pools serve requests only.
    manual = pool("manual", "198.51.100.7", autoAssign=False)
    p2 = pools.plan([service("out", ips="198.51.100.7"), service("auto", 1)], [manual], [])
    assert addresses(p2, "out") == ["198.51.100.7"]
    assert outcome(p2, "auto") == ("False", "NoPool")


def test_the_deprecated_load_balancer_ip_field() -> None:
    svc = read_service(
        {
            "metadata": {"name": "old", "namespace": NS},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "keepvip.io/vrrp",
                "loadBalancerIP": "192.0.2.11",
            },
        },
        default_load_balancer=False,
    )
    assert svc is not None and svc.requested == (ip_address("192.0.2.11"),)


def test_namespaces_filter() -> None:
    only = pool("only-prod", "192.0.2.10", namespaces=["prod"])
    p = pools.plan([service("a"), service("b", ns="prod")], [only], [])
    assert outcome(p, "a") == ("False", "NoPool")
    assert outcome(p, "b", ns="prod") == ("True", "AddressAssigned")
    p2 = pools.plan([service("a", ips="192.0.2.10")], [only], [])
    assert outcome(p2, "a") == ("False", "AddressNotInPool")


def test_a_taken_address_is_refused_with_who_holds_it() -> None:
    user_vip = read_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "manual", "namespace": "other"},
            "spec": {"addresses": ["192.0.2.10/24"]},
        }
    )
    p = pools.plan([service("a", ips="192.0.2.10"), service("b")], [POOL], [user_vip])
    assert outcome(p, "a") == ("False", "AddressInUse")
    assert "VirtualIP other/manual" in p.outcomes[f"{NS}/a"].message
    assert addresses(p, "b") == ["192.0.2.11"]  # auto-assignment skips it too
    p2 = pools.plan([service("a", 0), service("c", 1, ips="192.0.2.10")], [POOL], [])
    assert outcome(p2, "c") == ("False", "AddressInUse")
    assert "allow-shared-ip" in p2.outcomes[f"{NS}/c"].message


def test_pool_shrunk_under_a_live_service_keeps_serving() -> None:
    first = pools.plan([service("a")], [POOL], [])
    shrunk = pool("web", "192.0.2.11")
    p = pools.plan([service("a"), service("b", 1)], [shrunk], as_vips(first))
    assert outcome(p, "a") == ("True", "AddressOutsidePool")
    assert addresses(p, "a") == ["192.0.2.10"]
    assert p.outcomes[f"{NS}/a"].warning
    (kept,) = [w for w in p.wanted if w.name == "lb-a"]
    assert kept.body is None  # left exactly as it is
    assert p.delete == ()
    assert addresses(p, "b") == ["192.0.2.11"]
    # Its VirtualIP deleted: the Service gets an address of the pool again (b has it: exhausted).
    p2 = pools.plan([service("a"), service("b", 1)], [shrunk], as_vips(p))
    assert outcome(p2, "a") == ("False", "PoolExhausted")


def test_a_changed_request_moves_the_virtualip_in_place() -> None:
    first = pools.plan([service("a")], [POOL], [])
    p = pools.plan([service("a", ips="192.0.2.11")], [POOL], as_vips(first))
    assert addresses(p, "a") == ["192.0.2.11"]
    assert [w.name for w in p.wanted] == ["lb-a"]
    assert p.delete == ()


def test_a_service_that_left_the_class_loses_its_virtualip() -> None:
    first = pools.plan([service("a")], [POOL], [])
    p = pools.plan([], [POOL], as_vips(first))
    assert p.delete == (f"{NS}/lb-a",)
    assert p.pools["web"] == pools.PoolStatus(0, 2, ())


def test_class_and_default_load_balancer() -> None:
    body = {"metadata": {"name": "x", "namespace": NS}, "spec": {"type": "LoadBalancer"}}
    assert read_service(body, default_load_balancer=False) is None
    assert read_service(body, default_load_balancer=True) is not None
    other = {**body, "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}}
    assert read_service(other, default_load_balancer=True) is None
    cluster_ip = {**body, "spec": {"type": "ClusterIP"}}
    assert read_service(cluster_ip, default_load_balancer=True) is None


def test_dual_stack_gets_one_address_per_family_in_one_virtualip() -> None:
    dual = pool("dual", "192.0.2.10", "2001:db8::10-2001:db8::11")
    p = pools.plan([service("a", families=("IPv6", "IPv4"))], [dual], [])
    assert addresses(p, "a") == ["2001:db8::10", "192.0.2.10"]  # primary family first
    only_v4 = pools.plan([service("a", families=("IPv6", "IPv4"))], [POOL], [])
    assert outcome(only_v4, "a") == ("False", "NoPool")
    bad = pools.plan([service("a", ips="192.0.2.10", families=("IPv4", "IPv6"))], [dual], [])
    assert outcome(bad, "a") == ("False", "InvalidRequest")


def test_names_fit_63_characters_deterministically() -> None:
    long = "s" * 63
    assert vip_name("web") == "lb-web"
    assert len(vip_name(long)) <= 63 and vip_name(long) == vip_name(long)
    assert vip_name(long) != vip_name("s" * 62 + "t")
    p = pools.plan([service(long)], [POOL], [])
    assert parse_virtualip(p.wanted[0].body).metadata.name == vip_name(long)  # type: ignore[arg-type]


def test_a_name_taken_by_someone_elses_virtualip_is_not_overwritten() -> None:
    theirs = read_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "lb-web", "namespace": NS},
            "spec": {"addresses": ["198.51.100.1"]},
        }
    )
    p = pools.plan([service("web")], [POOL], [theirs])
    (w,) = p.wanted
    assert w.name != "lb-web" and w.name.startswith("lb-web-")
    assert p.delete == ()


# -- sharing ----------------------------------------------------------------------------------


def test_services_with_one_key_and_distinct_ports_share_one_virtualip() -> None:
    a = service("b-svc", 0, ips="192.0.2.10", share="k", ports=(80,))
    b = service("a-svc", 1, ips="192.0.2.10", share="k", ports=(443,))
    p = pools.plan([a, b], [POOL], [])
    assert outcome(p, "a-svc") == outcome(p, "b-svc") == ("True", "AddressAssigned")
    (w,) = p.wanted
    body = dict(w.body or {})
    ref = body["spec"]["serviceRef"]
    assert ref == {"name": "a-svc", "sharedWith": ["b-svc"]}  # the first by name
    assert w.name == "lb-a-svc"  # the first by name when it was made; kept for its life
    assert {o["name"]: o["controller"] for o in body["metadata"]["ownerReferences"]} == {
        "a-svc": False,
        "b-svc": False,
    }
    assert p.pools["web"].services == ("shop/a-svc", "shop/b-svc")
    assert p.pools["web"].assigned == 1
    # A Service with the key and no request joins the share (MetalLB does the same).
    c = service("c-svc", 2, share="k", ports=(8080,))
    p2 = pools.plan([a, b, c], [POOL], as_vips(p))
    assert addresses(p2, "c-svc") == ["192.0.2.10"]
    # One leaves: it is removed from sharedWith; the VirtualIP stays, with the others.
    p3 = pools.plan([a, c], [POOL], as_vips(p2))
    (w3,) = p3.wanted
    assert w3.name == "lb-a-svc"  # although a-svc left
    assert dict(w3.body or {})["spec"]["serviceRef"] == {"name": "b-svc", "sharedWith": ["c-svc"]}
    # The last one leaves: the VirtualIP goes.
    p4 = pools.plan([], [POOL], as_vips(pools.plan([a], [POOL], as_vips(p3))))
    assert p4.delete == (f"{NS}/lb-a-svc",)


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (dict(share="k", ports=(80,)), "port 80/TCP overlaps"),
        (dict(share="other", ports=(443,)), "sharing key 'k', not 'other'"),
        (dict(share=None, ports=(443,)), "allow-shared-ip"),
        (dict(share="k", ports=(443,), ns="elsewhere"), "another namespace"),
    ],
)
def test_sharing_refused_says_why(second: dict[str, Any], why: str) -> None:
    a = service("a", 0, ips="192.0.2.10", share="k", ports=(80,))
    b = service("b", 1, ips="192.0.2.10", **second)
    p = pools.plan([a, b], [POOL], [])
    assert outcome(p, "a") == ("True", "AddressAssigned")
    o = p.outcomes[b.key]
    assert (o.status, o.reason) == ("False", "AddressInUse")
    assert why in o.message


def test_a_share_whose_ports_came_to_overlap_keeps_the_older_service() -> None:
    a = service("a", 0, ips="192.0.2.10", share="k", ports=(80,))
    b = service("b", 1, ips="192.0.2.10", share="k", ports=(443,))
    first = pools.plan([a, b], [POOL], [])
    b2 = service("b", 1, ips="192.0.2.10", share="k", ports=(80,))
    p = pools.plan([a, b2], [POOL], as_vips(first))
    assert outcome(p, "a") == ("True", "AddressAssigned")
    assert outcome(p, "b") == ("False", "AddressInUse")
    assert dict(p.wanted[0].body or {})["spec"]["serviceRef"] == {"name": "a"}


def test_a_pool_named_by_annotation_even_without_auto_assign() -> None:
    manual = pool("manual", "198.51.100.7", autoAssign=False)
    p = pools.plan(
        [service("a", **{"keepvip.io/address-pool": "manual"}), service("b", 1)],
        [POOL, manual],
        [],
    )
    assert addresses(p, "a") == ["198.51.100.7"]
    assert addresses(p, "b") == ["192.0.2.10"]
    other = pools.plan([service("a", **{"keepvip.io/address-pool": "nope"})], [POOL], [])
    assert outcome(other, "a") == ("False", "NoPool")


def test_a_hand_written_virtualip_for_the_service_serves_it() -> None:
    theirs = read_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "mine", "namespace": NS},
            "spec": {"addresses": ["198.51.100.1/24"], "serviceRef": {"name": "web"}},
        }
    )
    p = pools.plan([service("web")], [POOL], [theirs])
    assert outcome(p, "web") == ("True", "ServedByVirtualIP")
    assert not p.outcomes[f"{NS}/web"].warning
    assert p.wanted == () and p.delete == ()


def test_a_long_pool_name_is_a_hashed_label() -> None:
    long = pool("p" * 100, "192.0.2.10")
    p = pools.plan([service("a")], [long], [])
    label = dict(p.wanted[0].body or {})["metadata"]["labels"]["keepvip.io/pool"]
    assert len(label) <= 63 and label.startswith("p" * 40)
    assert p.pools["p" * 100].services == (f"{NS}/a",)


def test_an_unreadable_request_is_an_invalid_request() -> None:
    p = pools.plan([service("a", ips="192.0.2.10, web")], [POOL], [])
    assert outcome(p, "a") == ("False", "InvalidRequest")
    assert "'web'" in p.outcomes[f"{NS}/a"].message
    two = pools.plan([service("a", ips="192.0.2.10,192.0.2.11")], [POOL], [])
    assert outcome(two, "a") == ("False", "InvalidRequest")


# -- shared VRRP routers (pool sharedRouter: Services with externalTrafficPolicy Cluster) ------

SHARED = pool("lan", "198.51.100.10-198.51.100.250", "2001:db8::10-2001:db8::ff",
              sharedRouter=True, advertInterval="100ms")  # fmt: skip


def routers(plan: pools.Plan, ns: str = NS) -> dict[str, list[tuple[str, str]]]:
    """Router name -> [(Service, its address)] as rendered (and as the operator publishes them)."""
    out = {}
    for w in plan.wanted:
        if w.body is None or not w.name.startswith("lb-pool-") or w.namespace != ns:
            continue
        vip = parse_virtualip(dict(w.body))
        ref = vip.spec.service_ref
        assert ref is not None and ref.address_per_service and not ref.track_endpoints
        out[w.name] = [(n, ",".join(publish.addresses_for(vip, n))) for n in ref.services]
    return out


def test_cluster_policy_services_of_a_pool_share_one_router_each_with_its_own_address() -> None:
    svcs = [service(f"s{i}", i) for i in range(6)] + [service("local", 9, policy="Local")]
    p = pools.plan(svcs, [SHARED], [])
    assert routers(p) == {
        "lb-pool-lan-ipv4-0": [(f"s{i}", f"198.51.100.{10 + i}") for i in range(6)]
    }
    for i in range(6):
        assert outcome(p, f"s{i}") == ("True", "AddressAssigned")
        assert addresses(p, f"s{i}") == [f"198.51.100.{10 + i}"]
        assert p.outcomes[f"{NS}/s{i}"].vip == "lb-pool-lan-ipv4-0"
    # externalTrafficPolicy Local needs a router of its own, gated on the node's endpoints.
    assert p.outcomes[f"{NS}/local"].vip == "lb-local"
    local = parse_virtualip(dict(next(w for w in p.wanted if w.name == "lb-local").body or {}))
    assert local.spec.service_ref is not None and local.spec.service_ref.track_endpoints
    assert not local.spec.service_ref.address_per_service
    assert p.pools["lan"].assigned == 7 and len(p.pools["lan"].services) == 7
    body = next(w.body for w in p.wanted if w.name == "lb-pool-lan-ipv4-0") or {}
    assert body["metadata"]["labels"]["keepvip.io/shared-router"] == "ipv4"
    assert not any(o["controller"] for o in body["metadata"]["ownerReferences"])
    assert parse_virtualip(dict(body)).spec.advert_interval == 0.1  # the pool's defaults


def test_without_shared_router_every_service_keeps_a_virtualip_of_its_own() -> None:
    plain = pool("lan", "198.51.100.10-198.51.100.20")
    p = pools.plan([service("a", 1), service("b", 2)], [plain], [])
    assert sorted(w.name for w in p.wanted) == ["lb-a", "lb-b"]


def test_dual_stack_and_address_sharing_services_keep_their_own_virtualip() -> None:
    p = pools.plan(
        [service("dual", 1, families=("IPv4", "IPv6")), service("x", 2, share="k", ports=[80]),
         service("y", 3, share="k", ports=[53]), service("c", 4)],
        [SHARED], [],
    )  # fmt: skip
    assert p.outcomes[f"{NS}/dual"].vip == "lb-dual"
    assert p.outcomes[f"{NS}/x"].vip == p.outcomes[f"{NS}/y"].vip == "lb-x"
    assert list(routers(p)) == ["lb-pool-lan-ipv4-0"]


def test_one_router_per_namespace_and_family() -> None:
    p = pools.plan(
        [service("a", 1), service("b", 2, ns="other"), service("c", 3, families=("IPv6",))],
        [SHARED], [],
    )  # fmt: skip
    assert routers(p) == {
        "lb-pool-lan-ipv4-0": [("a", "198.51.100.10")],
        "lb-pool-lan-ipv6-0": [("c", "2001:db8::10")],
    }
    assert routers(p, "other") == {"lb-pool-lan-ipv4-0": [("b", "198.51.100.11")]}
    assert {w.key for w in p.wanted} == {
        f"{NS}/lb-pool-lan-ipv4-0",
        "other/lb-pool-lan-ipv4-0",
        f"{NS}/lb-pool-lan-ipv6-0",
    }


def test_a_full_router_opens_the_next_and_a_freed_place_is_refilled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(pools.ROUTER_CAPACITY, 4, 3)
    p = pools.plan([service(f"s{i}", i) for i in range(7)], [SHARED], [])
    assert {k: len(v) for k, v in routers(p).items()} == {
        "lb-pool-lan-ipv4-0": 3, "lb-pool-lan-ipv4-1": 3, "lb-pool-lan-ipv4-2": 1
    }  # fmt: skip
    # s1 leaves; a new Service takes its place in router 0 (the first with room).
    rest = [service(f"s{i}", i) for i in range(7) if i != 1] + [service("new", 30)]
    p2 = pools.plan(rest, [SHARED], as_vips(p))
    got = routers(p2)
    assert got["lb-pool-lan-ipv4-0"] == [
        ("s0", "198.51.100.10"), ("s2", "198.51.100.12"), ("new", "198.51.100.11")
    ]  # fmt: skip
    assert got["lb-pool-lan-ipv4-2"] == [("s6", "198.51.100.16")]


def test_the_real_capacities_fit_one_advertisement() -> None:
    assert pools.ROUTER_CAPACITY == {4: 240, 6: 77}
    p = pools.plan([service(f"s{i}", i % 60, families=("IPv6",)) for i in range(78)], [SHARED], [])
    assert {k: len(v) for k, v in routers(p).items()} == {
        "lb-pool-lan-ipv6-0": 77, "lb-pool-lan-ipv6-1": 1
    }  # fmt: skip


def test_routers_survive_a_restart_unchanged() -> None:
    svcs = [service(f"s{i}", i) for i in range(5)]
    p = pools.plan(svcs, [SHARED], [])
    # A restart sees the VirtualIPs only, Services in another order, one new and older.
    again = pools.plan([service("early", 0), *reversed(svcs)], [SHARED], as_vips(p))
    assert again.delete == ()
    old = {w.key: w.body for w in p.wanted}
    (router,) = [w for w in again.wanted if w.name == "lb-pool-lan-ipv4-0"]
    assert [s for s, _ in routers(again)[router.name][:5]] == [f"s{i}" for i in range(5)]
    assert routers(again)[router.name][5] == ("early", "198.51.100.15")
    assert {k: v for k, v in old.items()} != {}  # the members kept their addresses:
    for i in range(5):
        assert addresses(again, f"s{i}") == addresses(p, f"s{i}")
    # Nothing changed: the same router is rendered again (no write).
    same = pools.plan(list(reversed(svcs)), [SHARED], as_vips(p))
    assert [w.body for w in same.wanted] == [w.body for w in p.wanted]


def test_a_member_leaving_and_the_last_one_leaving() -> None:
    p = pools.plan([service("a", 1), service("b", 2), service("c", 3)], [SHARED], [])
    p2 = pools.plan([service("a", 1), service("c", 3)], [SHARED], as_vips(p))
    assert routers(p2) == {"lb-pool-lan-ipv4-0": [("a", "198.51.100.10"), ("c", "198.51.100.12")]}
    p3 = pools.plan([], [SHARED], as_vips(p2))
    assert p3.wanted == () and p3.delete == (f"{NS}/lb-pool-lan-ipv4-0",)


def test_cluster_to_local_moves_out_with_its_address_and_back_stays() -> None:
    p = pools.plan([service("a", 1), service("b", 2)], [SHARED], [])
    p2 = pools.plan([service("a", 1), service("b", 2, policy="Local")], [SHARED], as_vips(p))
    assert routers(p2) == {"lb-pool-lan-ipv4-0": [("a", "198.51.100.10")]}
    assert p2.outcomes[f"{NS}/b"].vip == "lb-b"
    assert addresses(p2, "b") == ["198.51.100.11"]  # the same address, now its own router
    # Back to Cluster: it keeps its own VirtualIP (moving a live address needs a reason).
    p3 = pools.plan([service("a", 1), service("b", 2)], [SHARED], as_vips(p2))
    assert p3.outcomes[f"{NS}/b"].vip == "lb-b" and addresses(p3, "b") == ["198.51.100.11"]
    assert routers(p3) == {"lb-pool-lan-ipv4-0": [("a", "198.51.100.10")]}
    # It keeps its address even when a lower one is free (a left in the same round).
    p4 = pools.plan([service("b", 2, policy="Local")], [SHARED], as_vips(p))
    assert addresses(p4, "b") == ["198.51.100.11"]


def test_a_shrunk_or_deleted_pool_keeps_the_members_serving() -> None:
    p = pools.plan([service("a", 1), service("b", 2)], [SHARED], [])
    shrunk = pool("lan", "198.51.100.11-198.51.100.250", sharedRouter=True, advertInterval="100ms")
    p2 = pools.plan([service("a", 1), service("b", 2)], [shrunk], as_vips(p))
    assert outcome(p2, "a") == ("True", "AddressOutsidePool")
    assert outcome(p2, "b") == ("True", "AddressAssigned")
    assert routers(p2) == {"lb-pool-lan-ipv4-0": [("a", "198.51.100.10"), ("b", "198.51.100.11")]}
    elsewhere = pool("lan", "198.51.100.10-198.51.100.250", sharedRouter=True,
                     advertInterval="100ms", namespaces=["elsewhere"])  # fmt: skip
    p_ns = pools.plan([service("a", 1), service("b", 2)], [elsewhere], as_vips(p))
    assert outcome(p_ns, "a") == outcome(p_ns, "b") == ("True", "AddressOutsidePool")
    assert len(routers(p_ns)["lb-pool-lan-ipv4-0"]) == 2
    p3 = pools.plan([service("a", 1), service("b", 2)], [], as_vips(p))
    assert [w.body for w in p3.wanted] == [None]  # left as it is
    assert outcome(p3, "a") == outcome(p3, "b") == ("True", "AddressOutsidePool")


def test_requested_addresses_join_the_router_and_a_members_address_is_refused() -> None:
    p = pools.plan([service("a", 1, ips="198.51.100.99"), service("b", 2)], [SHARED], [])
    assert routers(p) == {"lb-pool-lan-ipv4-0": [("a", "198.51.100.99"), ("b", "198.51.100.10")]}
    p2 = pools.plan(
        [service("a", 1, ips="198.51.100.99"), service("b", 2), service("c", 3, ips="198.51.100.10")],
        [SHARED], as_vips(p),
    )  # fmt: skip
    assert outcome(p2, "c") == ("False", "AddressInUse")
    assert "used by Service shop/b" in p2.outcomes[f"{NS}/c"].message
