"""``keepvip drain``'s follow loop with a scripted listing and fake time: what it prints and returns.

The real command against the API and real agents is in tests/cluster/test_node_agent.py.
"""

from __future__ import annotations

import io
from typing import Any

from keepvip_api.names import MOVE_ANNOTATION
from keepvip_api.placement import maintenance
from keepvip_tools.maintenance import follow, moved


def vip(name: str, master: str | None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name},
        "spec": spec,
        "status": {"master": master} if master else {},
    }


def test_each_move_is_printed_and_what_stays_is_returned_with_why() -> None:
    rounds = [
        [vip("a", "n1"), vip("b", "n1"), vip("c", "n1", onCordon="ignore"), vip("d", "n2")],
        [vip("a", "n2"), vip("b", "n1"), vip("c", "n1", onCordon="ignore"), vip("d", "n2")],
        [vip("a", "n2"), vip("b", "n1"), vip("c", "n1", onCordon="ignore"), vip("d", "n2")],
    ]
    calls = iter(rounds + [rounds[-1]] * 100)
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    out = io.StringIO()
    stayed = follow("n1", lambda: next(calls), out, timeout=2, clock=lambda: t[0], sleep=sleep)
    text = out.getvalue()
    assert "ns/c: stays on n1 (onCordon: ignore)" in text
    assert "ns/a: n1 -> n2" in text
    assert "ns/b: still on n1 after 2s" in text
    assert stayed == ["ns/b", "ns/c"]


def test_nothing_to_move_says_so() -> None:
    out = io.StringIO()
    assert follow("n3", lambda: [vip("a", "n1")], out, timeout=1) == []
    assert "no VirtualIP to move off n3" in out.getvalue()


def test_the_node_states_that_count_as_maintenance() -> None:
    assert maintenance({"metadata": {"name": "n"}, "spec": {}}) is None
    assert "cordoned" in (maintenance({"spec": {"unschedulable": True}}) or "")
    drained = {"metadata": {"labels": {"keepvip.io/maintenance": "true"}}}
    assert "keepvip undrain" in (maintenance(drained) or "")
    excluded = {
        "metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}
    }
    assert "exclude-from-external-load-balancers" in (maintenance(excluded) or "")


def test_a_move_ends_with_the_condition_not_with_the_annotation_alone() -> None:
    """The operator removes the annotation first and writes ``Moved`` with its next status
    write: in between, the move is not over for ``keepvip move`` (a CI run caught the gap)."""
    asked = {"metadata": {"annotations": {MOVE_ANNOTATION: "n3"}}, "status": {}}
    assert moved(asked) is None
    assert moved({"metadata": {"annotations": {}}, "status": {}}) is None
    done = {"type": "Moved", "status": "True", "message": "moved to n3 on request"}
    assert moved({"metadata": {}, "status": {"conditions": [done]}}) == (
        True,
        "moved to n3 on request",
    )
