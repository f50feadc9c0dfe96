"""Every example in examples/ is a valid VirtualIP for the mode it is written for.

The Kubernetes examples (everything but standalone-*.yaml) are also applied
together to a real API server and reconciled by the operator installed from
the chart (tests/cluster/test_chart.py), so they must be able to coexist:
different names and different addresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keepvip_agent.spec.load import load_documents

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
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
