"""Every example in examples/ is a valid VirtualIP for the mode it is written for.

The Kubernetes examples (everything but standalone-*.yaml) are also applied
together to a real API server and reconciled by the operator installed from
the chart (tests/cluster/test_chart.py), so they must be able to coexist:
different names and different addresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from keepvip_api.load import load_documents
from keepvip_api.pool import parse_pool
from keepvip_operator.lbmodel import read_service

REPO = Path(__file__).resolve().parents[2]
ALL = sorted((REPO / "examples").glob("*.yaml"))
# LoadBalancer Services from a pool: a VirtualIPPool and a Service, no VirtualIP.
POOL_EXAMPLES = [p for p in ALL if p.name.startswith("virtualippool")]
EXAMPLES = [p for p in ALL if p not in POOL_EXAMPLES]
KUBERNETES = [p for p in EXAMPLES if not p.name.startswith("standalone-")]


def test_the_documented_cases_are_there() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "virtualip.yaml",  # a single VIP
        "virtualip-ipv6.yaml",
        "virtualip-track-pods.yaml",  # following an app's Ready pods
        "virtualip-sticky.yaml",  # a preferred node, with a preempt delay
        "standalone-web.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    standalone = path.name.startswith("standalone-")
    vips = load_documents(path.read_text(), source=path.name, standalone=standalone)
    assert vips
    text = path.read_text()
    assert text.startswith("#"), "an example opens with a comment saying what it is for"
    if not standalone:
        assert "kubectl apply -f " + path.name in text


def test_kubernetes_examples_can_be_applied_together() -> None:
    vips = [v for p in KUBERNETES for v in load_documents(p.read_text(), standalone=False)]
    names = [v.metadata.name for v in vips]
    assert len(set(names)) == len(names), names
    addresses = [a.ip for v in vips for a in v.spec.addresses]
    assert len(set(addresses)) == len(addresses), addresses


def test_the_examples_show_what_their_names_promise() -> None:
    by_file = {p.name: load_documents(p.read_text(), standalone=False)[0] for p in KUBERNETES}
    assert len(by_file["virtualip.yaml"].spec.addresses) == 1
    assert by_file["virtualip.yaml"].spec.virtual_router_id is None  # allocated by the operator
    assert all(a.version == 6 for a in by_file["virtualip-ipv6.yaml"].spec.addresses)
    track = by_file["virtualip-track-pods.yaml"].spec.track_pods
    assert track is not None and track.selector.match_labels
    sticky = by_file["virtualip-sticky.yaml"].spec
    assert sticky.preempt and sticky.preempt_delay >= 60


@pytest.mark.parametrize("path", POOL_EXAMPLES, ids=lambda p: p.name)
def test_pool_example_is_a_valid_pool_and_a_service_of_the_class(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#") and "kubectl apply -f " + path.name in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    pools = [parse_pool(d) for d in docs if d["kind"] == "VirtualIPPool"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert pools and services
    for svc in services:
        assert read_service(svc, default_load_balancer=False) is not None, "not of the class"
    # Its addresses are not those of the VirtualIP examples (they are applied together).
    vips = [v for p in KUBERNETES for v in load_documents(p.read_text(), standalone=False)]
    taken = {a.ip for v in vips for a in v.spec.addresses}
    assert not [a for a in taken if any(p.spec.contains(a) for p in pools)]


def test_pool_examples_are_listed_in_the_readme() -> None:
    readme = (REPO / "examples" / "README.md").read_text()
    for path in ALL:
        assert f"({path.name})" in readme, path.name
