"""The Reconciler with a recording fake of the API adapter: what it writes, and when it does not.

One node agent DaemonSet and the per-namespace RBAC plan are applied when
they change (and only then); a VirtualIP's own reconcile writes its status,
judged from entries of nodes that run an agent and whose node Lease is
fresh, and from placement (NoNode).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest

from keepvip_api.placement import NodeView, Taint
from keepvip_harness.fakekube import NOW, FakeKube, vip
from keepvip_operator.kube import ApiError, Kube
from keepvip_operator.observed import Observed
from keepvip_operator.reconcile import InvalidSpec, Reconciler, View, sweep_keys
from keepvip_operator.settings import OperatorSettings

DS = ("apply", "DaemonSet", "keepvip-agent")
TRACK = {"selector": {"matchLabels": {"app": "db"}}, "onFailure": {"action": "fault"}}


def node(name: str, state: str) -> dict[str, Any]:
    return {"name": name, "state": state, "reason": f"{name} is {state}"}


def renewed(**ages: float) -> dict[str, Any]:
    """Node Lease renewTimes, ``age`` seconds before NOW, by node."""
    return {n: NOW - timedelta(seconds=a) for n, a in ages.items()}


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def rec(kube: FakeKube) -> Reconciler:
    # Address grants are judged in test_operator_grants.py; here any address is allowed.
    return Reconciler(
        cast(Kube, kube),
        OperatorSettings(agent_namespace="agents", address_grants=False),
        clock=lambda: NOW,
    )


def test_reconcile_applies_the_node_agents_once_and_writes_status(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    decision = rec.reconcile(web, View(vips={web.key: web}))
    assert (decision.vrid, decision.rollout) == (1, True)
    assert kube.writes() == [DS, ("apply", "VirtualIP/status", "web")]
    assert kube.last_status["virtualRouterID"] == 1
    assert kube.last_status["observedGeneration"] == 1
    kube.calls.clear()
    other = vip("other", {"addresses": ["192.0.2.2"]}, age=1)
    rec.reconcile(other, View(vips={web.key: web, other.key: other}))
    assert kube.writes() == [("apply", "VirtualIP/status", "other")]  # no per-VirtualIP object


def test_rbac_is_granted_where_pods_are_tracked_and_withdrawn_when_none_are(
    kube: FakeKube, rec: Reconciler
) -> None:
    db = vip("db", {"addresses": ["192.0.2.1"], "trackPods": {**TRACK, "namespace": "data"}})
    rec.reconcile(db, View(vips={db.key: db}))
    assert kube.writes()[:3] == [
        DS,
        ("apply", "Role", "keepvip-agent-tracking"),
        ("apply", "RoleBinding", "keepvip-agent-tracking"),
    ]
    kube.calls.clear()
    # db is gone; the API still shows its grants in "data" (found by label).
    kube.listed = {
        kind: [{"metadata": {"name": "keepvip-agent-tracking", "namespace": "data"}}]
        for kind in ("Role", "RoleBinding")
    }
    rec.converge_agents(View(vips={}))
    assert kube.writes() == [
        DS,
        ("delete", "RoleBinding", "keepvip-agent-tracking"),
        ("delete", "Role", "keepvip-agent-tracking"),
    ]
    kube.calls.clear()
    rec.converge_agents(View(vips={}))
    assert kube.writes() == []  # the same plan again: nothing to do


def test_a_deleted_daemonset_is_applied_again(kube: FakeKube, rec: Reconciler) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    rec.refresh(web.key, View(vips={web.key: seen}))
    assert kube.calls == []
    rec.refresh(web.key, View(vips={web.key: seen}, daemonset=False))  # somebody deleted it
    assert kube.writes() == [DS]


def test_two_virtualips_reconciled_before_either_status_is_seen_get_two_vrids(
    kube: FakeKube, rec: Reconciler
) -> None:
    a, b = vip("a", {"addresses": ["192.0.2.1"]}), vip("b", {"addresses": ["192.0.2.2"]}, age=1)
    view = View(vips={a.key: a, b.key: b})  # neither status has a VRID yet
    assert rec.reconcile(a, view).vrid == 1
    assert rec.reconcile(b, view).vrid == 2


def test_a_conflict_is_a_condition_and_a_warning(kube: FakeKube, rec: Reconciler) -> None:
    a = vip("a", {"addresses": ["192.0.2.1"]}, status={"virtualRouterID": 1})
    b = vip("b", {"addresses": ["192.0.2.1"]}, age=5)
    decision = rec.reconcile(b, View(vips={a.key: a, b.key: b}))
    assert not decision.rollout
    assert kube.writes() == [DS, ("apply", "VirtualIP/status", "b")]
    conflict = {c["type"]: c for c in kube.last_status["conditions"]}["Conflict"]
    assert conflict["status"] == "True"  # the agents run no instance for it
    assert kube.events() == [
        ("Conflict", "address 192.0.2.1 already claimed by ns/a (older); no agents are rolled out")
    ]


def test_an_invalid_spec_is_reported_and_raised(kube: FakeKube, rec: Reconciler) -> None:
    bad = vip("bad", {"addresses": ["192.0.2.1"], "priority": 0}, status={"virtualRouterID": 4})
    with pytest.raises(InvalidSpec) as err:
        rec.reconcile(bad, View(vips={bad.key: bad}))
    assert err.value.problems == ("spec.priority: 0 is not in 1..254",)
    assert kube.writes() == [DS, ("apply", "VirtualIP/status", "bad")]
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
    rec.refresh(web.key, View(vips={web.key: seen}))
    assert kube.calls == []


def test_refresh_leaves_unreconciled_generations_to_the_handlers(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]}, gen=2)
    rec.converge_agents(View())
    kube.calls.clear()
    rec.refresh(web.key, View(vips={web.key: web}))
    assert kube.calls == []


def test_refresh_counts_nodes_by_their_lease_prunes_and_tells_once(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", {"addresses": ["192.0.2.1"]})
    seen = reconciled(rec, kube, web, View(vips={web.key: web}))
    status = {**seen.status, "nodes": [node("n1", "Master"), node("n2", "Backup")]}
    now = vip("web", {"addresses": ["192.0.2.1"]}, status=status)
    view = View(
        vips={web.key: now},
        agent_nodes=frozenset({"n1", "n2"}),
        renewals=renewed(n1=1, n2=99),  # n2's agent stopped renewing its node Lease
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
    now = vip("web", {"addresses": ["192.0.2.1"]}, status=status)
    rec.refresh(web.key, View(vips={web.key: now}, agent_nodes=frozenset({"n1"})))
    assert [c[0] for c in kube.writes()] == ["json_patch"]


def test_refresh_lets_the_agents_run_it_once_the_conflict_is_gone(
    kube: FakeKube, rec: Reconciler
) -> None:
    a = vip("a", {"addresses": ["192.0.2.1"]}, status={"virtualRouterID": 1})
    b = vip("b", {"addresses": ["192.0.2.1"]}, age=5)
    rec.reconcile(b, View(vips={a.key: a, b.key: b}))
    b_seen = vip("b", {"addresses": ["192.0.2.1"]}, age=5, status=kube.last_status)
    kube.calls.clear()
    rec.refresh(b.key, View(vips={a.key: a, b.key: b_seen}))
    assert kube.writes() == []  # still blocked: nothing to do
    rec.refresh(b.key, View(vips={b.key: b_seen}))  # a is gone
    assert kube.writes() == [("apply", "VirtualIP/status", "b")]
    conflict = {c["type"]: c for c in kube.last_status["conditions"]}["Conflict"]
    assert conflict["status"] == "False"  # what the agents wait for
    assert ("ConflictResolved", "no other VirtualIP claims its addresses or VRID") in kube.events()


def test_no_node_when_placement_selects_no_node_that_runs_an_agent(
    kube: FakeKube, rec: Reconciler
) -> None:
    nodes = {
        "n1": NodeView("n1", {"zone": "a"}),
        "n2": NodeView("n2", {"zone": "b"}, (Taint("edge", "NoSchedule"),)),
        "n3": NodeView("n3", {"zone": "c"}),  # runs no agent
    }
    view = View(agent_nodes=frozenset({"n1", "n2"}), nodes=nodes)

    def no_node(spec: dict[str, Any]) -> dict[str, Any]:
        kube.calls.clear()
        obs = vip("web", {"addresses": ["192.0.2.1"], **spec})
        rec.forget(obs.target)
        rec.reconcile(obs, replace(view, vips={obs.key: obs}))
        return {c["type"]: c for c in kube.last_status["conditions"]}["NoNode"]

    plain = no_node({})
    assert (plain["status"], plain["reason"]) == ("False", "NodesSelected")
    assert plain["message"] == "placed on n1"  # n2 is tainted, n3 runs no agent
    for spec in ({"nodeSelector": {"zone": "c"}}, {"nodeSelector": {"zone": "b"}}):
        cond = no_node(spec)
        assert (cond["status"], cond["reason"]) == ("True", "NoNodeSelected"), spec
        assert ("NoNodeSelected", cond["message"]) in kube.events()
    assert "taint edge:NoSchedule is not tolerated" in cond["message"]
    tolerated = no_node(
        {"nodeSelector": {"zone": "b"}, "tolerations": [{"key": "edge", "operator": "Exists"}]}
    )
    assert (tolerated["status"], tolerated["message"]) == ("False", "placed on n2")


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


def test_a_sweep_rejudges_everything_only_when_the_live_nodes_changed() -> None:
    """Without events only the clock changes a status: a node's Lease lapsing, a move
    waiting, old per-VirtualIP agents' heartbeats ageing. Anything else is left alone."""
    spec = {"addresses": ["192.0.2.50/24"], "nodes": [{"name": "n1"}, {"name": "n2"}]}
    moving = sweep_vip("moving", spec, move_to="n2")
    objs = {o.key: o for o in (vip("a", spec), vip("b", spec), moving, vip("old", spec))}
    fresh = NOW - timedelta(seconds=1)
    view = View(vips=objs, renewals={"n1": fresh, "n2": fresh}, legacy={"ns/old": ()})
    keys, alive = sweep_keys(view, None, NOW, 30.0)
    assert sorted(keys) == sorted(objs) and alive == {"n1", "n2"}, "the first sweep: all"
    keys, alive = sweep_keys(view, alive, NOW + timedelta(seconds=5), 30.0)
    assert sorted(keys) == ["ns/moving", "ns/old"], "same live nodes: only the clock's"
    keys, alive = sweep_keys(view, alive, NOW + timedelta(seconds=31), 30.0)
    assert sorted(keys) == sorted(objs) and alive == frozenset(), "both Leases lapsed: all"
    assert sweep_keys(replace(view, renewals=None), alive, NOW, 30.0) == (list(objs), None)


def sweep_vip(name: str, spec: dict[str, Any], move_to: str) -> Observed:
    return replace(vip(name, spec), move_to=move_to)
