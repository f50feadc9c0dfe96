"""Service endpoint readings (pure): when can a node serve the Services a VIP fronts?"""

from __future__ import annotations

from typing import Any

import pytest

from keepvip_agent.kube.endpoints import endpoint_ready, judge, serves


def service(
    name: str = "web", policy: str | None = None, type_: str = "ClusterIP"
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_}
    if policy:
        spec["externalTrafficPolicy"] = policy
    return {"metadata": {"name": name}, "spec": spec}


def endpoint(
    node: str, ip: str, ready: bool | None = True, terminating: bool = False
) -> dict[str, Any]:
    cond: dict[str, Any] = {"terminating": terminating}
    if ready is not None:
        cond["ready"] = ready
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


def slice_(svc: str, *endpoints: dict[str, Any], name: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name or f"{svc}-abc", "labels": {"kubernetes.io/service-name": svc}},
        "endpoints": list(endpoints),
    }


def test_ready_follows_the_api_defaults() -> None:
    assert endpoint_ready(endpoint("n1", "a"))
    assert endpoint_ready(endpoint("n1", "a", ready=None)), "absent ready means ready"
    assert not endpoint_ready(endpoint("n1", "a", ready=False))
    assert not endpoint_ready(endpoint("n1", "a", terminating=True))


@pytest.mark.parametrize(
    ("policy", "node", "ok"),
    [("Local", "n1", False), ("Local", "n2", True), (None, "n1", True), ("Cluster", "n3", True)],
)
def test_local_needs_a_ready_endpoint_on_the_node_cluster_anywhere(
    policy: str | None, node: str, ok: bool
) -> None:
    slices = [slice_("web", endpoint("n1", "192.0.2.1", ready=False), endpoint("n2", "192.0.2.2"))]
    healthy, detail = serves("web", service(policy=policy), slices, node)
    assert healthy is ok
    assert "Service web" in detail and "1/2" in detail


def test_no_ready_endpoint_anywhere_fails_cluster_too() -> None:
    slices = [slice_("web", endpoint("n1", "192.0.2.1", terminating=True, ready=False))]
    assert serves("web", service(), slices, "n1") == (
        False,
        "Service web: 0/1 endpoint(s) Ready (externalTrafficPolicy Cluster)",
    )


def test_slices_of_other_services_and_duplicates_do_not_count() -> None:
    slices = [
        slice_("other", endpoint("n1", "192.0.2.9")),
        slice_("web", endpoint("n1", "192.0.2.1"), name="web-a"),
        slice_("web", endpoint("n1", "192.0.2.1"), name="web-b"),  # moving between slices
    ]
    ok, detail = serves("web", service(policy="Local"), slices, "n1")
    assert ok and "1 Ready endpoint(s) on n1, 1/1 in all" in detail
    assert serves("web", service(policy="Local"), slices, "n2")[0] is False


def test_missing_and_external_name_services_cannot_be_served() -> None:
    assert serves("web", None, [], "n1") == (False, "Service web not found")
    assert not serves("web", service(type_="ExternalName"), [], "n1")[0]


def test_every_shared_service_must_be_servable() -> None:
    slices = [slice_("web", endpoint("n1", "a")), slice_("dns", endpoint("n2", "b"))]
    services = {"web": service("web", "Local"), "dns": service("dns", "Local")}
    ok, detail = judge(["web", "dns"], services, slices, "n1")
    assert not ok and detail.startswith("Service dns: 0 Ready endpoint(s) on n1")
    services["dns"] = service("dns")  # Cluster: n2's endpoint will do
    ok, detail = judge(["web", "dns"], services, slices, "n1")
    assert ok and "Service web" in detail and "Service dns" in detail
    assert judge(["web", "gone"], services, slices, "n1") == (False, "Service gone not found")
