"""Placement judged the way Kubernetes places a daemon pod: selector, taints, implicit tolerations."""

from __future__ import annotations

import pytest

from keepvip_api.cluster import Toleration
from keepvip_api.placement import NodeView, Taint, judge, selected_nodes, tolerates


def node(name: str = "n1", labels: dict[str, str] | None = None, *taints: Taint) -> NodeView:
    return NodeView(name=name, labels=labels or {}, taints=taints)


def tol(**kw: str) -> Toleration:
    return Toleration.model_validate(kw)


def test_no_selector_and_no_taint_selects() -> None:
    assert judge(node(), {}, ()).selected


def test_selector_needs_every_label_equal() -> None:
    n = node(labels={"zone": "a", "role": "edge"})
    assert judge(n, {"zone": "a"}, ()).selected
    assert judge(n, {"zone": "a", "role": "edge"}, ()).selected
    wrong = judge(n, {"zone": "b"}, ())
    assert not wrong.selected
    assert wrong.reason == "nodeSelector zone='b' does not match ('a')"
    assert judge(n, {"rack": "1"}, ()).reason == "nodeSelector rack='1' does not match (absent)"


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_an_excluding_taint_needs_a_toleration(effect: str) -> None:
    n = node("n1", {}, Taint("dedicated", effect, "db"))
    refused = judge(n, {}, ())
    assert not refused.selected
    assert refused.reason == f"taint dedicated=db:{effect} is not tolerated"
    assert judge(n, {}, [tol(key="dedicated", operator="Equal", value="db")]).selected
    assert judge(n, {}, [tol(key="dedicated", operator="Exists", effect=effect)]).selected
    assert not judge(n, {}, [tol(key="dedicated", operator="Equal", value="web")]).selected


def test_prefer_no_schedule_never_excludes() -> None:
    assert judge(node("n1", {}, Taint("soft", "PreferNoSchedule")), {}, ()).selected


def test_a_wrong_effect_does_not_tolerate() -> None:
    n = node("n1", {}, Taint("dedicated", "NoExecute", "db"))
    assert not judge(n, {}, [tol(key="dedicated", operator="Exists", effect="NoSchedule")]).selected


def test_an_empty_key_with_exists_tolerates_everything() -> None:
    n = node("n1", {}, Taint("a", "NoSchedule"), Taint("b", "NoExecute", "x"))
    assert judge(n, {}, [tol(operator="Exists")]).selected


def test_control_plane_taint_excludes_unless_tolerated() -> None:
    cp = node("cp", {}, Taint("node-role.kubernetes.io/control-plane", "NoSchedule"))
    assert not judge(cp, {}, ()).selected
    t = tol(key="node-role.kubernetes.io/control-plane", operator="Exists", effect="NoSchedule")
    assert judge(cp, {}, [t]).selected


@pytest.mark.parametrize(
    "taint",
    [
        Taint("node.kubernetes.io/unschedulable", "NoSchedule"),
        Taint("node.kubernetes.io/not-ready", "NoExecute"),
        Taint("node.kubernetes.io/unreachable", "NoExecute"),
        Taint("node.kubernetes.io/memory-pressure", "NoSchedule"),
        Taint("node.kubernetes.io/network-unavailable", "NoSchedule"),
    ],
)
def test_daemon_pods_tolerate_what_the_daemonset_controller_adds(taint: Taint) -> None:
    """A cordon or a NotReady node changes nothing here: day-2 rules decide cordon apart."""
    assert judge(node("n1", {}, taint), {}, ()).selected


def test_toleration_value_is_compared_for_equal_only() -> None:
    t = Taint("k", "NoSchedule", "v")
    assert tolerates(tol(key="k", value="v"), t)  # no operator means Equal
    assert not tolerates(tol(key="k", value="w"), t)
    assert tolerates(tol(key="k", operator="Exists", value=""), t)


def test_from_api_object_and_selected_nodes() -> None:
    raw = [
        {"metadata": {"name": "a", "labels": {"zone": "x"}}, "spec": {}},
        {
            "metadata": {"name": "b", "labels": {"zone": "x"}},
            "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]},
        },
        {"metadata": {"name": "c", "labels": {"zone": "y"}}},
    ]
    nodes = [NodeView.from_api_object(n) for n in raw]
    assert nodes[1].taints == (Taint("gpu", "NoSchedule"),)
    assert selected_nodes(nodes, {"zone": "x"}, ()) == ["a"]
    assert selected_nodes(nodes, {"zone": "x"}, [tol(key="gpu", operator="Exists")]) == ["a", "b"]
    assert selected_nodes(nodes, {"zone": "z"}, ()) == []
