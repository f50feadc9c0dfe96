"""The upgrade from per-VirtualIP DaemonSets (keepvip before 0.2) to the node agents, step by step.

The Reconciler with the recording fake of the API: a VirtualIP still served
by an old DaemonSet is marked ``Upgrading`` before the node agent DaemonSet
is applied; once the node agents are Ready the old DaemonSet is deleted
orphaning its pods, then the backups' pods, the master's last; when none is
left the old RBAC goes and the condition is dropped, which is what lets the node agents start it
(``keepvip_agent.kube.selection``). The cluster tier runs the real thing
(tests/cluster/test_upgrade.py).
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from keepvip_agent.kube.selection import handover_hold, select
from keepvip_api import from_api_object
from keepvip_harness.fakekube import FakeKube, vip
from keepvip_operator import upgrade
from keepvip_operator.kube import Kube
from keepvip_operator.reconcile import Reconciler, View
from keepvip_operator.settings import OperatorSettings
from keepvip_operator.upgrade import OldObject

SPEC = {"addresses": ["192.0.2.1"], "virtualRouterID": 7}
OLD_DS = OldObject("DaemonSet", "ns", "keepvip-web", "web")
OLD_PODS = tuple(OldObject("Pod", "ns", f"keepvip-web-{n}", "web", node=n) for n in ("n1", "n2"))
OLD = (OLD_DS, *OLD_PODS)
DS = ("apply", "DaemonSet", "keepvip-agent")
OLD_ENTRIES = [
    {"name": "n1", "state": "Master", "reason": "n1 is Master"},
    {"name": "n2", "state": "Backup", "reason": "n2 is Backup"},
]


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def rec(kube: FakeKube) -> Reconciler:
    return Reconciler(cast(Kube, kube), OperatorSettings(agent_namespace="agents"))


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_the_node_agents_wait_until_every_old_virtualip_is_marked(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", SPEC, status={"nodes": OLD_ENTRIES})
    view = View(
        vips={web.key: web}, legacy={web.key: OLD}, daemonset=False, agent_nodes=frozenset()
    )
    rec.reconcile(web, view)
    # No node agent yet: it could advertise VRID 7 next to the old agent of its node.
    assert DS not in kube.writes()
    status = kube.last_status
    assert conditions(status)["Upgrading"] == "True"
    # The old agents' entries count as they are (no node agent runs yet): no prune, master kept.
    assert status["master"] == "n1"
    assert not [c for c in kube.writes() if c[0] == "json_patch"]
    kube.calls.clear()
    rec.converge_agents(view)  # now marked: the node agents may start
    assert kube.writes()[0] == DS
    assert not [c for c in kube.writes() if c[0] == "delete"]  # not before they are Ready


def test_the_old_objects_go_once_the_node_agents_are_ready_the_masters_pod_last(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", SPEC, status={"nodes": OLD_ENTRIES})
    rec.reconcile(web, View(vips={web.key: web}, legacy={web.key: OLD}, daemonset=False))
    marked = vip("web", SPEC, status={**kube.last_status, "nodes": OLD_ENTRIES})
    assert marked.status["master"] == "n1"

    def step(old: tuple[OldObject, ...], *, ready: bool = True) -> list[tuple[Any, ...]]:
        kube.calls.clear()
        rec.refresh(
            web.key, View(vips={web.key: marked}, legacy={web.key: old}, agents_ready=ready)
        )
        return [c for c in kube.writes() if c[0] == "delete"]

    assert step(OLD, ready=False) == []
    assert step(OLD) == [("delete", "DaemonSet", "keepvip-web", "orphan")]
    assert step(OLD) == []  # asked once; the index shows it going
    assert step(OLD_PODS) == [("delete", "Pod", "keepvip-web-n2")]  # the backup first
    assert step(OLD_PODS[:1]) == [("delete", "Pod", "keepvip-web-n1")]  # then the master


def test_without_a_master_every_old_pod_goes_at_once() -> None:
    assert upgrade.next_deletions(OLD_PODS, None, node_agents_ready=True, is_marked=True) == list(
        OLD_PODS
    )
    assert upgrade.next_deletions(OLD_PODS, "n1", node_agents_ready=True, is_marked=False) == []


def test_an_unrelated_virtualip_does_not_hold_up_a_fresh_install(
    kube: FakeKube, rec: Reconciler
) -> None:
    other = vip("other", {"addresses": ["192.0.2.2"]})
    orphan = OldObject("DaemonSet", "ns", "keepvip-gone", "gone", deleting=True)
    rec.reconcile(other, View(vips={other.key: other}, legacy={"ns/gone": (orphan,)}))
    assert kube.writes()[0] == DS
    assert "Upgrading" not in conditions(kube.last_status)


def test_when_the_old_daemonset_is_gone_its_rbac_goes_and_the_agents_may_start(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", SPEC, status={"nodes": OLD_ENTRIES})
    rec.reconcile(web, View(vips={web.key: web}, legacy={web.key: OLD}, daemonset=False))
    marked = vip("web", SPEC, status=kube.last_status)
    assert [s.run for s in [select([_raw(marked.status)], _node())]] == [{}]
    after = View(vips={web.key: marked}, agent_nodes=frozenset({"n1", "n2"}))
    rec.converge_agents(after)
    kube.calls.clear()
    # The fake answers every list with this: only the old cross-namespace Role is labelled so.
    kube.listed = {"Role": [{"metadata": {"name": "keepvip-ns.web", "namespace": "data"}}]}
    rec.refresh(web.key, after)
    deletes = [c for c in kube.writes() if c[0] == "delete"]
    assert deletes == [
        ("delete", "RoleBinding", "keepvip-web"),
        ("delete", "Role", "keepvip-web"),
        ("delete", "Role", "keepvip-ns.web"),
    ]
    assert "Upgrading" not in conditions(kube.last_status)
    assert list(select([_raw(kube.last_status)], _node()).run) == ["ns/web"]


def test_the_condition_says_what_still_serves_it_and_what_happens_next() -> None:
    cond = upgrade.condition(OLD)
    assert (cond.type, cond.status, cond.reason) == ("Upgrading", "True", "PerVirtualIPAgents")
    assert "keepvip-web-n1 on n1" in cond.message and "node agents" in cond.message
    assert "its DaemonSet" in upgrade.condition([OLD_DS]).message


def _raw(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web"},
        "spec": {**SPEC, "nodes": [{"name": "n1", "priority": 100}]},
        "status": status,
    }


def _node() -> dict[str, Any]:
    return {"metadata": {"name": "n1", "labels": {}}, "spec": {}}


def test_the_old_masters_node_starts_first_and_the_others_wait_a_master_down_interval() -> None:
    obj = {**_raw({"master": "n1"}), "spec": {**SPEC, "advertInterval": "200ms"}}
    vip_ = from_api_object(obj, allocated_vrid=True)
    assert handover_hold(obj, vip_, "n1") == 0.0
    assert handover_hold(obj, vip_, "n2") == pytest.approx(4 * 0.2 + 1.0)
    assert handover_hold({**obj, "status": {}}, vip_, "n2") == 0.0  # nobody named: no wait


def test_the_old_master_is_named_when_the_node_agents_take_over(
    kube: FakeKube, rec: Reconciler
) -> None:
    web = vip("web", SPEC, status={"nodes": OLD_ENTRIES})
    rec.reconcile(web, View(vips={web.key: web}, legacy={web.key: OLD}, daemonset=False))
    marked = vip("web", SPEC, status={**kube.last_status, "nodes": OLD_ENTRIES})
    rec.refresh(web.key, View(vips={web.key: marked}, legacy={web.key: OLD_PODS[:1]}))
    # The old master released the VIP on its way out: no entry says Master any more.
    released = [{**e, "state": "Backup"} for e in OLD_ENTRIES]
    gone = vip("web", SPEC, status={**kube.last_status, "nodes": released})
    rec.refresh(web.key, View(vips={web.key: gone}))
    assert kube.last_status["master"] == "n1"
    assert "Upgrading" not in conditions(kube.last_status)
