"""The Reconciler with a recording fake of the API adapter: what it writes, and when it does not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from keepvip_harness.fakekube import NOW, FakeKube, vip
from keepvip_operator.kube import ApiError, Kube
from keepvip_operator.observed import Observed
from keepvip_operator.reconcile import InvalidSpec, Reconciler, View
from keepvip_operator.settings import OperatorSettings


def node(name: str, state: str, age: float = 1) -> dict[str, Any]:
    beat = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"name": name, "state": state, "heartbeatTime": beat, "reason": f"{name} is {state}"}


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def rec(kube: FakeKube) -> Reconciler:
    return Reconciler(cast(Kube, kube), OperatorSettings(), clock=lambda: NOW)


def test_reconcile_applies_in_order_and_writes_status(kube: FakeKube, rec: Reconciler) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    decision = rec.reconcile(web, View(vips={web.key: web}))
    assert (decision.vrid, decision.rollout) == (1, True)
    assert kube.writes() == [
        ("apply", "ServiceAccount", "keepvip-web"),
        ("apply", "Role", "keepvip-web"),
        ("apply", "RoleBinding", "keepvip-web"),
        ("apply", "DaemonSet", "keepvip-web"),
        ("apply", "VirtualIP/status", "web"),
    ]
    assert kube.last_status["virtualRouterID"] == 1
    assert kube.last_status["observedGeneration"] == 1


def test_two_virtualips_reconciled_before_either_status_is_seen_get_two_vrids(
    kube: FakeKube, rec: Reconciler
) -> None:
    a, b = vip("a", {"addresses": ["192.0.2.1"]}), vip("b", {"addresses": ["192.0.2.2"]}, age=1)
    view = View(vips={a.key: a, b.key: b})  # neither status has a VRID yet
    assert rec.reconcile(a, view).vrid == 1
    assert rec.reconcile(b, view).vrid == 2


def test_a_conflict_withdraws_the_agents_and_warns(kube: FakeKube, rec: Reconciler) -> None:
    a = vip("a", {"addresses": ["192.0.2.1"]}, status={"virtualRouterID": 1})
    b = vip("b", {"addresses": ["192.0.2.1"]}, age=5)
    kube.existing.add("DaemonSet/keepvip-b")
    decision = rec.reconcile(b, View(vips={a.key: a, b.key: b}, ports={a.key: 9650}))
    assert not decision.rollout
    assert kube.writes() == [
        ("delete", "DaemonSet", "keepvip-b"),
        ("apply", "VirtualIP/status", "b"),
    ]
    assert kube.events() == [
        ("Conflict", "address 192.0.2.1 already claimed by ns/a (older); no agents are rolled out")
    ]


def test_an_invalid_spec_is_reported_and_raised(kube: FakeKube, rec: Reconciler) -> None:
    bad = vip("bad", {"addresses": ["192.0.2.1"], "priority": 0}, status={"virtualRouterID": 4})
    with pytest.raises(InvalidSpec) as err:
        rec.reconcile(bad, View(vips={bad.key: bad}))
    assert err.value.problems == ("spec.priority: 0 is not in 1..254",)
    assert kube.writes() == [("apply", "VirtualIP/status", "bad")]  # the agents are left alone
    assert kube.last_status["virtualRouterID"] == 4
    assert kube.events() == [("InvalidSpec", "spec.priority: 0 is not in 1..254")]


def reconciled(rec: Reconciler, kube: FakeKube, obs: Observed, view: View) -> Observed:
    """Reconcile, then return the object as the next watch event would show it."""
    rec.reconcile(obs, view)
    kube.calls.clear()
    return vip(obs.target.name, {"addresses": ["192.0.2.1"]}, status=kube.last_status)


def test_refresh_writes_nothing_when_nothing_changed(kube: FakeKube, rec: Reconciler) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    rec.refresh(web.key, View(vips={web.key: seen}, ports={web.key: 9650}))
    assert kube.calls == []


def test_refresh_leaves_unreconciled_generations_to_the_handlers(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]}, gen=2)
    rec.refresh(web.key, View(vips={web.key: web}))
    assert kube.calls == []


def test_refresh_aggregates_prunes_and_tells_once(kube: FakeKube, rec: Reconciler) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    status = {**seen.status, "nodes": [node("n1", "Master"), node("n2", "Backup", age=99)]}
    now = vip("web", {"addresses": ["192.0.2.1"]}, status=status)
    view = View(
        vips={web.key: now}, ports={web.key: 9650}, agent_nodes={web.key: frozenset({"n1", "n2"})}
    )
    rec.refresh(web.key, view)
    assert kube.writes() == [
        (
            "json_patch",
            "/apis/keepvip.io/v1alpha1/namespaces/ns/virtualips/web/status",
            [
                {"op": "test", "path": "/status/nodes/1/name", "value": "n2"},
                {"op": "remove", "path": "/status/nodes/1"},
            ],
        ),
        ("apply", "VirtualIP/status", "web"),
    ]
    assert kube.last_status["master"] == "n1"
    assert kube.events() == [("MasterChanged", "(none) -> n1: n1 is Master")]
    # The watch has not caught up with our write yet: no second Event.
    kube.calls.clear()
    rec.refresh(web.key, view)
    assert kube.events() == []


def test_a_list_that_moved_under_the_prune_is_left_for_the_next_round(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    status = {**seen.status, "nodes": [node("n9", "Master")]}
    kube.patch_error = ApiError(422, "test failed")
    rec.refresh(
        web.key,
        View(
            vips={web.key: vip("web", {"addresses": ["192.0.2.1"]}, status=status)},
            ports={web.key: 9650},
        ),
    )
    assert [c[0] for c in kube.writes()] == ["json_patch"]


def test_refresh_rolls_out_once_the_conflict_is_gone(kube: FakeKube, rec: Reconciler) -> None:
    a = vip("a", {"addresses": ["192.0.2.1"]}, status={"virtualRouterID": 1})
    b = vip("b", {"addresses": ["192.0.2.1"]}, age=5)
    rec.reconcile(b, View(vips={a.key: a, b.key: b}, ports={a.key: 9650}))
    b_seen = vip("b", {"addresses": ["192.0.2.1"]}, age=5, status=kube.last_status)
    kube.calls.clear()
    rec.refresh(b.key, View(vips={a.key: a, b.key: b_seen}, ports={a.key: 9650}))
    assert kube.writes() == []  # still blocked: nothing to do
    rec.refresh(b.key, View(vips={b.key: b_seen}))  # a is gone
    assert [c[1] for c in kube.writes()] == [
        "ServiceAccount", "Role", "RoleBinding", "DaemonSet", "VirtualIP/status",
    ]  # fmt: skip
    assert ("ConflictResolved", "no other VirtualIP claims its addresses or VRID") in kube.events()


def test_a_deleted_daemonset_is_recreated_after_the_grace(
    kube: FakeKube, rec: Reconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keepvip_operator.reconcile as module

    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    rec.refresh(web.key, View(vips={web.key: seen}))  # the index has not seen our DaemonSet yet
    assert kube.calls == []
    monkeypatch.setattr(module, "CONVERGE_GRACE", 0.0)
    rec.refresh(web.key, View(vips={web.key: seen}))  # ...and never will: somebody deleted it
    assert ("apply", "DaemonSet", "keepvip-web") in kube.writes()


def test_a_vrid_handed_out_is_respected_by_a_snapshot_that_predates_its_object(
    kube: FakeKube, rec: Reconciler
) -> None:
    # Two handlers took their snapshots concurrently; the newer object's ran first.
    older, newer = (
        vip("a", {"addresses": ["192.0.2.1"]}),
        vip("b", {"addresses": ["192.0.2.2"]}, age=1),
    )
    assert rec.reconcile(newer, View(vips={older.key: older, newer.key: newer})).vrid == 1
    assert rec.reconcile(older, View(vips={older.key: older})).vrid == 2
