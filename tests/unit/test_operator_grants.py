"""The operator's judgement of a VirtualIP generation (keepvip_operator.grants), rule by rule."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, cast

import pytest

from keepvip_api import parse_virtualip
from keepvip_api.acceptance import Trust
from keepvip_api.model import VirtualIP
from keepvip_api.pool import VirtualIPPoolSpec
from keepvip_api.subnets import parse_networks
from keepvip_harness.fakekube import NOW, FakeKube
from keepvip_harness.fakekube import vip as observed_vip
from keepvip_operator.grants import IP, Verdict, invalid, judge, node_address_map
from keepvip_operator.kube import Kube
from keepvip_operator.lbmodel import Pool
from keepvip_operator.reconcile import Reconciler, View
from keepvip_operator.settings import OperatorSettings

NODES: dict[IP, str] = node_address_map(
    {"n1": [ip_address("192.0.2.11")], "n2": [ip_address("192.0.2.12"), ip_address("2001:db8::12")]}
)


def vip(*addresses: str, namespace: str = "team-a", **spec: Any) -> VirtualIP:
    return parse_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"addresses": list(addresses), **spec},
        }
    )


def pool(name: str, *addresses: str, namespaces: tuple[str, ...] = (), **spec: Any) -> Pool:
    body = {"addresses": list(addresses), "namespaces": list(namespaces), **spec}
    return Pool(name, VirtualIPPoolSpec.model_validate(body, strict=False))


NETWORKS = {
    "n1": parse_networks("192.0.2.0/24,2001:db8::/64,203.0.113.8/31"),
    "n2": parse_networks("198.51.100.0/25"),
}
DEFAULT_TRUST = Trust()
GRANT = pool("grant", "198.51.100.0/24", namespaces=("team-a",), usedBy=["VirtualIPs"])


def verdict(
    v: VirtualIP,
    pools: tuple[Pool, ...] = (GRANT,),
    *,
    trust: Trust = DEFAULT_TRUST,
    labels: dict[str, str] | None = None,
    generation: int = 2,
    before: int | None = None,
    managed: bool = False,
) -> Verdict:
    return judge(
        v, generation=generation, managed=managed, pools=pools, node_addresses=NODES,
        node_networks=NETWORKS, trust=trust, namespace_labels=labels, accepted_before=before,
    )  # fmt: skip


def test_an_address_of_a_pool_granted_to_the_namespace_for_virtualips_is_accepted() -> None:
    got = verdict(vip("198.51.100.7/24"))
    assert got.accepted_generation == 2
    assert (got.accepted.status, got.accepted.reason) == ("True", "Granted")
    assert len(got.conditions) == 1


@pytest.mark.parametrize(
    ("pools", "where"),
    [
        ((), "none"),
        ((pool("other-ns", "198.51.100.0/24", namespaces=("team-b",), usedBy=["VirtualIPs"]),),
         "none"),
        # A pool without usedBy serves Services only, as every pool did before the field.
        ((pool("services", "198.51.100.0/24", namespaces=("team-a",)),), "none"),
        ((pool("narrow", "198.51.100.200-198.51.100.210", usedBy=["VirtualIPs", "Services"]),),
         "narrow"),
    ],
)  # fmt: skip
def test_an_address_outside_every_granted_pool_is_refused(
    pools: tuple[Pool, ...], where: str
) -> None:
    got = verdict(vip("198.51.100.7/24"), pools, before=1)
    assert got.accepted_generation == 1  # the earlier acceptance stands; this one is refused
    assert (got.accepted.status, got.accepted.reason) == ("False", "AddressNotGranted")
    assert "198.51.100.7 is in no VirtualIPPool granted to namespace team-a for VirtualIPs" in (
        got.accepted.message
    )
    assert f"(pools granting it: {where})" in got.accepted.message
    assert "\n" not in got.accepted.message


def test_every_address_must_be_granted_and_each_missing_one_is_named() -> None:
    got = verdict(vip("198.51.100.7/24", "203.0.113.5/24", "2001:db8:1::5/64"))
    assert got.accepted.reason == "AddressNotGranted"
    assert got.accepted.message.startswith("203.0.113.5, 2001:db8:1::5 are in no VirtualIPPool")


def test_the_virtualips_the_operator_makes_for_services_are_judged_against_service_pools() -> None:
    services = pool("lb", "203.0.113.0/28", namespaces=("team-a",))
    assert verdict(vip("203.0.113.4/32"), (services,), managed=True).accepted.true
    refused = verdict(vip("203.0.113.4/32"), (services,), managed=False).accepted
    assert (refused.status, refused.reason) == ("False", "AddressNotGranted")


def test_a_node_address_is_refused_even_inside_a_granted_pool() -> None:
    wide = pool("wide", "192.0.2.0/24", usedBy=["VirtualIPs"])
    got = verdict(vip("192.0.2.12/24"), (wide,))
    assert (got.accepted.status, got.accepted.reason) == ("False", "NodeAddress")
    assert got.accepted.message.startswith("192.0.2.12 is the address of Node n2")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("198.51.100.127/25", "198.51.100.127 is the broadcast address of 198.51.100.0/25, a "
         "network of Node n2"),
        ("198.51.100.0/25", "198.51.100.0 is the network address of 198.51.100.0/25"),
        ("2001:db8::/64", "2001:db8:: is the subnet-router anycast address of 2001:db8::/64"),
    ],
)  # fmt: skip
def test_a_node_subnets_network_or_broadcast_address_is_refused_inside_a_granted_pool(
    address: str, message: str
) -> None:
    wide = pool("wide", "198.51.100.0/24", "2001:db8::/64", usedBy=["VirtualIPs"])
    got = verdict(vip(address), (wide,))
    assert (got.accepted.status, got.accepted.reason) == ("False", "NetworkAddress")
    assert got.accepted.message.startswith(message), got.accepted.message
    assert "\n" not in got.accepted.message


@pytest.mark.parametrize("address", ["198.51.100.128/25", "198.51.100.126/25", "203.0.113.8/31",
                                     "203.0.113.9/31", "2001:db8::1/64"])  # fmt: skip
def test_host_addresses_and_both_ends_of_a_31_are_not_network_addresses(address: str) -> None:
    wide = pool("wide", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/64",
                usedBy=["VirtualIPs"])  # fmt: skip
    got = verdict(vip(address), (wide,))
    assert (got.accepted.status, got.accepted.reason) == ("True", "Granted"), got.accepted


def test_a_generation_accepted_before_keeps_serving_when_its_pool_is_narrowed() -> None:
    got = verdict(vip("198.51.100.7/24"), (), generation=3, before=3)
    assert got.accepted_generation == 3
    accepted, outside = got.conditions
    assert (accepted.status, accepted.reason) == ("True", "AcceptedEarlier")
    assert (outside.type, outside.status, outside.reason) == (
        "AddressOutsidePool", "True", "AddressNotGranted",
    )  # fmt: skip


def test_a_node_address_is_not_kept_for_having_been_accepted() -> None:
    got = verdict(vip("192.0.2.11/24"), (), generation=3, before=3)
    assert (got.accepted.status, got.accepted.reason) == ("False", "NodeAddress")


def test_with_grants_off_any_address_is_accepted_even_a_node_address() -> None:
    got = verdict(vip("192.0.2.11/24"), (), trust=Trust(address_grants=False))
    assert (got.accepted.status, got.accepted.reason, got.accepted_generation) == (
        "True", "GrantsNotEnforced", 2,
    )  # fmt: skip


FAULT = {"action": "fault"}
EXEC = {"name": "c", "exec": {"command": ["true"]}, "onFailure": FAULT}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"checks": [EXEC]}, "checks[0].exec"),
        ({"notify": {"master": ["/bin/true"]}}, "notify.master"),
        ({"notify": {"fault": ["/bin/true"]}}, "notify.fault"),
    ],
)
def test_commands_are_refused_in_an_untrusted_namespace_even_with_grants_off(
    spec: dict[str, Any], field: str
) -> None:
    for trust in (Trust(), Trust(address_grants=False)):
        got = verdict(vip("198.51.100.7/24", **spec), trust=trust)
        assert (got.accepted.status, got.accepted.reason) == ("False", "CommandsNotAllowed")
        assert got.accepted.message.startswith(f"{field}: commands run as root on the nodes")
        assert "tenancy.trustedNamespaces" in got.accepted.message


def test_a_trusted_namespace_by_name_or_label_may_run_commands() -> None:
    v = vip("198.51.100.7/24", checks=[EXEC])
    assert verdict(v, trust=Trust(trusted_namespaces=frozenset({"team-a"}))).accepted.true
    by_label = Trust(trusted_label=("keepvip.io/commands", "allowed"))
    assert verdict(v, trust=by_label, labels={"keepvip.io/commands": "allowed"}).accepted.true
    refused = verdict(v, trust=by_label, labels={"keepvip.io/commands": "no"}).accepted
    assert refused.reason == "CommandsNotAllowed"
    assert "or label it keepvip.io/commands=allowed" in refused.message


@pytest.mark.parametrize(
    ("check", "why"),
    [
        ({"tcpSocket": {"port": 10250}}, "127.0.0.1 is the node's own loopback"),
        ({"tcpSocket": {"host": "192.0.2.11", "port": 10250}}, "is a node's own address"),
        ({"tcpSocket": {"host": "169.254.169.254", "port": 80}}, "is link-local"),
        ({"httpGet": {"url": "http://[fe80::1]:8080/"}}, "is link-local"),
        ({"httpGet": {"url": "http://localhost:10248/healthz"}}, "is not an IP address"),
        ({"httpGet": {"url": "https://[::1]/"}}, "is the node's own loopback"),
    ],
)
def test_a_tenant_check_aimed_at_the_node_is_refused(check: dict[str, Any], why: str) -> None:
    got = verdict(vip("198.51.100.7/24", checks=[{"name": "c", "onFailure": FAULT, **check}]))
    assert (got.accepted.status, got.accepted.reason) == ("False", "CheckTargetNotAllowed")
    assert why in got.accepted.message
    trusted = Trust(trusted_namespaces=frozenset({"team-a"}))
    assert verdict(
        vip("198.51.100.7/24", checks=[{"name": "c", "onFailure": FAULT, **check}]), trust=trusted
    ).accepted.true


def test_a_tenant_check_aimed_at_a_pod_or_service_address_is_accepted() -> None:
    checks = [
        {"name": "pod", "tcpSocket": {"host": "203.0.113.77", "port": 8080}, "onFailure": FAULT},
        {"name": "svc", "httpGet": {"url": "http://[2001:db8:5::10]:80/ready"}, "onFailure": FAULT},
    ]
    assert verdict(vip("198.51.100.7/24", checks=checks)).accepted.true


def test_an_invalid_spec_accepts_nothing_new() -> None:
    got = invalid(4)
    assert got.accepted_generation == 4
    assert (got.accepted.status, got.accepted.reason) == ("False", "InvalidSpec")


# -- written by the reconciler: status.acceptedGeneration, conditions, Events ----------------


def _rec(kube: FakeKube) -> Reconciler:
    return Reconciler(
        cast(Kube, kube), OperatorSettings(agent_namespace="agents"), clock=lambda: NOW
    )


def _conds(kube: FakeKube) -> dict[str, Any]:
    return {c["type"]: c for c in kube.last_status["conditions"]}


def test_a_refused_generation_is_a_condition_and_a_warning_and_nothing_is_accepted() -> None:
    kube = FakeKube()
    rec = _rec(kube)
    web = observed_vip("web", {"addresses": ["198.51.100.7/24"]})
    decision = rec.reconcile(web, View(vips={web.key: web}))
    assert not decision.rollout
    assert "acceptedGeneration" not in kube.last_status
    accepted = _conds(kube)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "AddressNotGranted")
    assert _conds(kube)["Ready"]["reason"] == "NotAccepted"
    assert kube.events() == [("AddressNotGranted", accepted["message"])]


def test_granting_the_pool_accepts_it_and_narrowing_the_pool_keeps_it() -> None:
    kube = FakeKube()
    rec = _rec(kube)
    web = observed_vip("web", {"addresses": ["198.51.100.7/24"]})
    rec.reconcile(web, View(vips={web.key: web}))
    granted = (pool("grant", "198.51.100.0/24", namespaces=("ns",), usedBy=["VirtualIPs"]),)
    kube.calls.clear()
    rec.reconcile(web, View(vips={web.key: web}, pools=granted))
    assert kube.last_status["acceptedGeneration"] == 1
    assert _conds(kube)["Accepted"]["status"] == "True"
    assert ("Accepted", "its addresses are granted to namespace ns") in kube.events()
    seen = observed_vip("web", {"addresses": ["198.51.100.7/24"]}, status=kube.last_status)
    kube.calls.clear()
    rec.refresh(web.key, View(vips={web.key: seen}, pools=()))  # the pool narrowed to nothing
    assert kube.last_status["acceptedGeneration"] == 1, "it keeps serving"
    outside = _conds(kube)["AddressOutsidePool"]
    assert (outside["status"], outside["reason"]) == ("True", "AddressNotGranted")
    assert [e[0] for e in kube.events()] == ["AddressOutsidePool"]


def test_a_virtualip_an_earlier_operator_served_keeps_serving_outside_every_pool() -> None:
    kube = FakeKube()
    rec = _rec(kube)
    legacy = {"observedGeneration": 1, "virtualRouterID": 4, "conditions": []}
    web = observed_vip("web", {"addresses": ["198.51.100.7/24"]}, status=legacy)
    assert rec.reconcile(web, View(vips={web.key: web})).rollout
    assert kube.last_status["acceptedGeneration"] == 1
    assert _conds(kube)["AddressOutsidePool"]["status"] == "True"
    edited = observed_vip("web", {"addresses": ["198.51.100.8/24"]}, status=legacy, gen=2)
    assert not rec.reconcile(edited, View(vips={web.key: edited})).rollout, "until it changes"
