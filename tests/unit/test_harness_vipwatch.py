"""The apply-to-master trace reads each hop from the right event and the master's own entry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from keepvip_harness.vipwatch import VipTimeline

POSTED = 1_000_000.0  # wall clock of the POST


def obj(*entries: dict[str, Any], vrid: int | None = None, master: str | None = None) -> Any:
    status: dict[str, Any] = {"nodes": list(entries)}
    if vrid is not None:
        status["virtualRouterID"] = vrid
    if master is not None:
        status["master"] = master
    return {"metadata": {"name": "apply-0"}, "status": status}


def entry(node: str, state: str, transition: str = "", computed: str = "") -> dict[str, Any]:
    return {
        "name": node,
        "state": state,
        "lastTransitionTime": transition,
        "heartbeatTime": computed,
    }


def stamp(after: float) -> str:
    return datetime.fromtimestamp(POSTED + after, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_each_hop_is_the_first_event_that_shows_it() -> None:
    trace = VipTimeline(None, "", "apply-0")  # type: ignore[arg-type]
    won = entry("n1", "Master", stamp(0.6), stamp(0.61))
    trace.events = [
        (POSTED + 0.05, obj()),  # the POST itself
        (POSTED + 0.2, obj(vrid=7)),
        (POSTED + 0.3, obj(entry("n2", "Backup"), vrid=7)),
        (POSTED + 0.7, obj(won, entry("n2", "Backup"), vrid=7)),
        (POSTED + 0.9, obj(won, entry("n2", "Backup"), vrid=7, master="n1")),
    ]
    marks = trace.marks(POSTED)
    assert marks == {
        "vrid_seen": 200.0,
        "first_entry_seen": 300.0,
        "master_transition": 600.0,
        "master_entry_computed": 610.0,
        "master_entry_seen": 700.0,
        "status_master_seen": 900.0,
        "events": 5,
    }
    assert trace.compact(POSTED)[-1] == [900.0, "n1", [["n1", "Master"], ["n2", "Backup"]]]


def test_a_hop_that_never_came_is_none() -> None:
    trace = VipTimeline(None, "", "apply-0")  # type: ignore[arg-type]
    trace.events = [(POSTED + 0.2, obj(vrid=7))]
    marks = trace.marks(POSTED)
    assert marks["vrid_seen"] == 200.0
    assert marks["master_transition"] is None and marks["status_master_seen"] is None
