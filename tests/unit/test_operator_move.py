"""A manual move (``keepvip.io/move-to``): the operator's verdicts, and how it ends a request.

The agents' side (every other node yields) is proven with real agents in
tests/cluster/test_operator.py; here the pure verdicts and the Reconciler
with the recording fake: refused at once when the node cannot take the VIP,
done when it is master, the annotation removed and the outcome kept in the
condition ``Moved``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest

from keepvip_api import from_api_object
from keepvip_api.placement import NodeView
from keepvip_api.status import NodeStatus
from keepvip_harness.fakekube import NOW, FakeKube
from keepvip_operator import move
from keepvip_operator.kube import Kube
from keepvip_operator.observed import observe
from keepvip_operator.reconcile import Reconciler, View
from keepvip_operator.settings import OperatorSettings

SPEC = {"addresses": ["192.0.2.1"], "virtualRouterID": 7}
NODES = {n: NodeView(n, {"zone": "a"}) for n in ("n1", "n2")}
ENTRIES = [
    {"name": "n1", "state": "Master", "reason": "n1 is Master"},
    {"name": "n2", "state": "Backup", "reason": "n2 is Backup"},
]


def model(**spec: Any) -> Any:
    body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
            "metadata": {"name": "web", "namespace": "ns"}, "spec": {**SPEC, **spec}}  # fmt: skip
    return from_api_object(body)


def backup(node: str = "n2", state: str = "Backup") -> NodeStatus:
    return NodeStatus(name=node, state=state, faults=("eth9: missing",) if state == "Fault" else ())


@pytest.mark.parametrize(
    ("target", "spec", "nodes", "entry", "says"),
    [
        ("n9", {}, NODES, None, "no such Node"),
        ("n2", {"nodeSelector": {"zone": "b"}}, NODES, backup(), "not placed there"),
        ("n2", {"preempt": True}, NODES, backup(), "preempt is true"),
        ("n2", {}, {**NODES, "n2": NodeView("n2", {}, maintenance="cordoned")}, backup(),
         "cordoned"),
        ("n2", {}, NODES, None, "no live agent"),
        ("n2", {}, NODES, backup(state="Fault"), "eth9: missing"),
    ],
)  # fmt: skip
def test_a_node_that_cannot_take_the_vip_is_refused_with_the_reason(
    target: str, spec: dict[str, Any], nodes: Any, entry: NodeStatus | None, says: str
) -> None:
    v = move.verdict(target, model(**spec), nodes=nodes, entry=entry, master="n1", waited=0)
    assert v.outcome == "refused" and says in v.message


def test_pending_until_master_then_done_and_refused_after_the_timeout() -> None:
    kw: Any = {"nodes": NODES, "entry": backup()}
    assert move.verdict("n2", model(), master="n1", waited=1, **kw).outcome == "pending"
    assert move.verdict("n2", model(), master="n2", waited=1, **kw).outcome == "done"
    late = move.verdict("n2", model(), master="n1", waited=move.TIMEOUT + 1, **kw)
    assert late.outcome == "refused" and "not master after" in late.message


def vip(annotation: str | None, nodes: list[dict[str, Any]], **status: Any) -> Any:
    meta: dict[str, Any] = {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 1,
                            "creationTimestamp": "2026-01-01T12:00:00Z"}  # fmt: skip
    if annotation:
        meta["annotations"] = {"keepvip.io/move-to": annotation}
    body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": meta,
            "spec": SPEC, "status": {"nodes": nodes, **status}}  # fmt: skip
    return observe(body)


def test_the_operator_ends_a_move_once_and_keeps_the_outcome() -> None:
    kube = FakeKube()
    clock = [NOW]
    rec = Reconciler(cast(Kube, kube), OperatorSettings(agent_namespace="agents"),
                     clock=lambda: clock[0])  # fmt: skip
    asked = vip("n2", ENTRIES)
    rec.reconcile(asked, View(vips={asked.key: asked}, nodes=NODES))
    assert not [c for c in kube.calls if c[0] == "event" and "Move" in c[2]]  # pending
    kube.calls.clear()
    done = [{**ENTRIES[0], "state": "Backup"}, {**ENTRIES[1], "state": "Master"}]
    now = vip("n2", done, **{k: v for k, v in kube.last_status.items() if k != "nodes"})
    clock[0] = NOW + timedelta(seconds=3)
    rec.refresh(now.key, View(vips={now.key: now}, nodes=NODES))
    assert [e for e in kube.events() if e[0] == "Moved"] == [("Moved", "moved to n2 on request")]
    assert ("request", "PATCH", "/apis/keepvip.io/v1alpha1/namespaces/ns/virtualips/web",
            {"metadata": {"annotations": {"keepvip.io/move-to": None}}}) in kube.calls  # fmt: skip
    conds = {c["type"]: c for c in kube.last_status["conditions"]}
    assert (conds["Moved"]["status"], conds["Moved"]["reason"]) == ("True", "Moved")
    # A late event still showing the annotation does not end it twice.
    kube.calls.clear()
    rec.refresh(now.key, View(vips={now.key: now}, nodes=NODES))
    assert not [e for e in kube.events() if e[0] == "Moved"]
    # Without the annotation the outcome stays in status.
    gone = vip(None, done, **{k: v for k, v in kube.last_status.items() if k != "nodes"})
    rec.refresh(gone.key, View(vips={gone.key: gone}, nodes=NODES))
    assert {c["type"] for c in kube.last_status["conditions"]} >= {"Moved"}
