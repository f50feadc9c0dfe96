"""Publishing a VirtualIP's addresses on Services (pure): which writes, in which order."""

from __future__ import annotations

import copy
from typing import Any

from keepvip_api import parse_virtualip
from keepvip_harness.fakekube import merge
from keepvip_operator.publish import addresses_of, condition, next_step

KEY = "published.keepvip.io/web"


def service(type_: str = "ClusterIP", ext: list[str] | None = None, ingress: list[Any] | None = None,
            claimed: str | None = None) -> dict[str, Any]:  # fmt: skip
    svc: dict[str, Any] = {
        "metadata": {"name": "web", "resourceVersion": "7", "annotations": {}, "labels": {}},
        "spec": {"type": type_},
        "status": {"loadBalancer": {}},
    }
    if ext is not None:
        svc["spec"]["externalIPs"] = ext
    if ingress is not None:
        svc["status"]["loadBalancer"]["ingress"] = ingress
    if claimed is not None:
        svc["metadata"]["annotations"][KEY] = claimed
        svc["metadata"]["labels"][KEY] = "true"
    return svc


def converge(svc: dict[str, Any], addresses: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """Apply next_step until it is done; the result and the subresources written, in order."""
    svc, writes = copy.deepcopy(svc), []
    for _ in range(5):
        step = next_step(svc, "web", addresses)
        if step is None:
            return svc, writes
        assert step.body["metadata"]["resourceVersion"] == svc["metadata"]["resourceVersion"]
        body = copy.deepcopy(step.body)
        if step.subresource == "status":  # the status subresource takes only status
            body = {"status": body["status"]}
        svc = merge(svc, body)
        svc["metadata"]["resourceVersion"] = str(int(svc["metadata"]["resourceVersion"]) + 1)
        writes.append(step.subresource or "spec")
    raise AssertionError(f"no convergence: {writes}")


def test_addresses_drop_the_prefix_and_keep_order() -> None:
    vip = parse_virtualip(
        {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "web"},
         "spec": {"addresses": ["192.0.2.50/24", "2001:db8::50/64"]}}
    )  # fmt: skip
    assert addresses_of(vip) == ("192.0.2.50", "2001:db8::50")


def test_external_ips_keep_the_users_entries_and_claim_only_ours() -> None:
    svc = service(ext=["198.51.100.7"])
    published, writes = converge(svc, ("192.0.2.50",))
    assert writes == ["spec"], "one write: list and claim together"
    assert published["spec"]["externalIPs"] == ["198.51.100.7", "192.0.2.50"]
    assert published["metadata"]["annotations"][KEY] == "192.0.2.50"
    assert published["metadata"]["labels"][KEY] == "true"
    assert next_step(published, "web", ("192.0.2.50",)) is None, "idempotent"

    withdrawn, _ = converge(published, ())
    assert withdrawn["spec"]["externalIPs"] == ["198.51.100.7"]
    assert KEY not in withdrawn["metadata"]["annotations"]
    assert KEY not in withdrawn["metadata"]["labels"]


def test_an_address_the_user_listed_is_not_claimed_and_stays() -> None:
    svc = service(ext=["192.0.2.50"])
    published, writes = converge(svc, ("192.0.2.50",))
    assert writes == [] and published == svc
    withdrawn, _ = converge(published, ())
    assert withdrawn["spec"]["externalIPs"] == ["192.0.2.50"]


def test_the_last_external_ip_removed_removes_the_field() -> None:
    published, _ = converge(service(), ("192.0.2.50",))
    withdrawn, _ = converge(published, ())
    assert "externalIPs" not in withdrawn["spec"]


def test_a_dropped_address_is_added_again() -> None:
    published, _ = converge(service(), ("192.0.2.50",))
    published["spec"]["externalIPs"] = ["198.51.100.7"]  # a user's kubectl apply replaced the list
    again, writes = converge(published, ("192.0.2.50",))
    assert writes == ["spec"] and again["spec"]["externalIPs"] == ["198.51.100.7", "192.0.2.50"]


def test_load_balancer_ingress_is_claimed_before_and_unclaimed_after() -> None:
    other = {"ip": "203.0.113.9"}
    svc = service("LoadBalancer", ingress=[other])
    published, writes = converge(svc, ("192.0.2.50",))
    assert writes == ["spec", "status"], "the claim is written before the entry"
    assert published["status"]["loadBalancer"]["ingress"] == [
        other,
        {"ip": "192.0.2.50", "ipMode": "VIP"},
    ]
    assert "externalIPs" not in published["spec"]
    withdrawn, writes = converge(published, ())
    assert writes == ["status", "spec"], "the entry goes before the claim"
    assert withdrawn["status"]["loadBalancer"]["ingress"] == [other]
    assert KEY not in withdrawn["metadata"]["annotations"]


def test_changing_addresses_and_type_moves_only_ours() -> None:
    published, _ = converge(service(ext=["198.51.100.7"]), ("192.0.2.50",))
    moved, _ = converge(published, ("192.0.2.60",))
    assert moved["spec"]["externalIPs"] == ["198.51.100.7", "192.0.2.60"]
    assert moved["metadata"]["annotations"][KEY] == "192.0.2.60"
    moved["spec"]["type"] = "LoadBalancer"
    lb, _ = converge(moved, ("192.0.2.60",))
    assert lb["spec"]["externalIPs"] == ["198.51.100.7"]
    assert lb["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.60", "ipMode": "VIP"}]


def test_condition_says_what_is_missing() -> None:
    missing = condition(("192.0.2.50",), {}, ["web"], namespace="prod")
    assert (missing.status, missing.reason) == ("False", "ServiceNotFound")
    assert "Service web not found in namespace prod" in missing.message
    ok = condition(("192.0.2.50",), {"web": "spec.externalIPs"}, [], namespace="prod")
    assert (ok.status, ok.reason, ok.message) == (
        "True",
        "Published",
        "192.0.2.50 in web spec.externalIPs",
    )
