"""Status aggregation, conditions and the Events they cause (pure), table-driven.

Node agents write their entries on change only; a node's entries count while
its node Lease is fresh (``keepvip_api.status.node_alive``). In these tables
an entry's ``age`` stands for its node Lease's: :func:`alive` judges the
nodes from it with that one rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepvip_api.status import node_alive
from keepvip_api.times import parse_time
from keepvip_operator.aggregate import Aggregate, aggregate
from keepvip_operator.allocate import Conflict
from keepvip_operator.conditions import Cond, merge
from keepvip_operator.statusplan import Decision, OperatorStatus, plan

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NODES = frozenset({"n1", "n2", "n3"})


def entry(name: str, state: str, *, age: float = 1.0, **extra: Any) -> dict[str, Any]:
    beat = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "name": name,
        "state": state,
        "configuredPriority": 100,
        "effectivePriority": extra.pop("prio", 100),
        "heartbeatTime": beat,
        "reason": f"{name} became {state}",
        "faults": [],
        **extra,
    }


def alive(nodes: list[dict[str, Any]], after: float | None = None) -> frozenset[str]:
    """The nodes whose (node Lease) time, here the entry's ``heartbeatTime``, is fresh."""
    kw = {} if after is None else {"after": after}
    return frozenset(
        n["name"] for n in nodes if node_alive(parse_time(n.get("heartbeatTime")), NOW, **kw)
    )


def agg_of(
    nodes: list[dict[str, Any]],
    previous: str | None = None,
    *,
    agent_nodes: frozenset[str] | None = NODES,
    after: float | None = None,
) -> Aggregate:
    return aggregate(
        nodes, agent_nodes=agent_nodes, alive=alive(nodes, after), previous_master=previous
    )


def conds(agg: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in agg.conditions if c.type != "Faulted"}


R, D, S = "Ready", "Degraded", "SplitBrain"

CASES: list[tuple[str, list[dict[str, Any]], str | None, str | None, dict[str, tuple[str, str]]]] = [
    ("no-reports", [], None, None,
     {R: ("False", "NoAgentReports"), D: ("True", "NoBackup"), S: ("False", "SingleMaster")}),
    ("one-master-two-backups",
     [entry("n1", "Master"), entry("n2", "Backup"), entry("n3", "Backup")], None, "n1",
     {R: ("True", "MasterElected"), D: ("False", "BackupAvailable"), S: ("False", "SingleMaster")}),
    ("master-and-no-backup",
     [entry("n1", "Master"), entry("n2", "Fault"), entry("n3", "Initialize")], None, "n1",
     {R: ("True", "MasterElected"), D: ("True", "NoBackup"), S: ("False", "SingleMaster")}),
    ("no-master", [entry("n1", "Backup"), entry("n2", "Backup")], "n3", None,
     {R: ("False", "NoMaster"), D: ("False", "BackupAvailable"), S: ("False", "SingleMaster")}),
    ("two-masters-keep-the-previous",
     [entry("n1", "Master", prio=200), entry("n2", "Master"), entry("n3", "Backup")], "n2", "n2",
     {R: ("False", "SplitBrain"), D: ("False", "BackupAvailable"), S: ("True", "MultipleMasters")}),
    ("two-masters-highest-priority",
     [entry("n1", "Master", prio=90), entry("n2", "Master", prio=150)], None, "n2",
     {R: ("False", "SplitBrain"), D: ("True", "NoBackup"), S: ("True", "MultipleMasters")}),
    ("split-brain-reported",
     [entry("n1", "Master"),
      entry("n2", "Fault", faults=["Split brain: n1 holds lease keepvip-web and renews it"])],
     None, "n1",
     {R: ("True", "MasterElected"), D: ("True", "NoBackup"), S: ("True", "ReportedByAgent")}),
    ("stale-master-ignored",
     [entry("n1", "Master", age=31), entry("n2", "Backup"), entry("n3", "Backup")], "n1", None,
     {R: ("False", "NoMaster"), D: ("False", "BackupAvailable"), S: ("False", "SingleMaster")}),
    ("heartbeat-at-the-limit-counts",
     [entry("n1", "Master", age=30)], None, "n1",
     {R: ("True", "MasterElected"), D: ("True", "NoBackup"), S: ("False", "SingleMaster")}),
    ("master-without-pod-ignored",
     [entry("n9", "Master"), entry("n1", "Backup")], "n9", None,
     {R: ("False", "NoMaster"), D: ("False", "BackupAvailable"), S: ("False", "SingleMaster")}),
    ("stale-second-master-is-no-split-brain",
     [entry("n1", "Master"), entry("n2", "Master", age=300), entry("n3", "Backup")], "n1", "n1",
     {R: ("True", "MasterElected"), D: ("False", "BackupAvailable"), S: ("False", "SingleMaster")}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "previous", "master", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_aggregate(
    nodes: list[dict[str, Any]],
    previous: str | None,
    master: str | None,
    expected: dict[str, tuple[str, str]],
) -> None:
    agg = agg_of(nodes, previous)
    assert agg.master == master
    assert conds(agg) == expected


def test_stale_entries_are_listed_for_pruning_with_their_position() -> None:
    nodes = [
        entry("n1", "Master"),
        entry("n2", "Backup", age=45),
        entry("n9", "Backup"),
        {**entry("n3", "Backup"), "heartbeatTime": None},
        {"name": "broken"},  # not the agents' shape: left alone
    ]
    agg = agg_of(nodes)
    assert [(s.index, s.name, s.why) for s in agg.stale] == [
        (1, "n2", "node Lease not renewed"),
        (2, "n9", "no agent pod on the node"),
        (3, "n3", "node Lease not renewed"),  # no Lease at all
    ]
    assert [n.name for n in agg.counted] == ["n1"]


def test_unknown_pods_prune_nothing_for_lack_of_a_pod() -> None:
    agg = aggregate([entry("n9", "Master")], agent_nodes=None, alive=None, previous_master=None)
    assert agg.master == "n9" and agg.stale == ()


def test_heartbeat_timeout_is_a_parameter() -> None:
    nodes = [entry("n1", "Master", age=12)]
    assert agg_of(nodes).master == "n1"
    assert agg_of(nodes, after=10).master is None


def test_an_entry_written_long_ago_counts_while_its_node_lease_is_fresh() -> None:
    """Entries are written on change only: their own age says nothing of the agent."""
    old = entry("n1", "Master", age=3600)
    agg = aggregate([old], agent_nodes=NODES, alive=frozenset({"n1"}), previous_master=None)
    assert agg.master == "n1" and agg.stale == ()


def test_agent_faults_make_the_faulted_condition_naming_node_and_cause() -> None:
    nodes = [
        entry("n1", "Master"),
        entry("n2", "Fault", faults=["interface eth9 not found"]),
        entry("n3", "Fault", faults=["address 203.0.113.9 is on no connected network"]),
    ]
    faulted = {c.type: c for c in agg_of(nodes).conditions}["Faulted"]
    assert (faulted.status, faulted.reason) == ("True", "AgentFault")
    assert faulted.message == (
        "n2: interface eth9 not found; n3: address 203.0.113.9 is on no connected network"
    )
    split = [entry("n1", "Master"), entry("n2", "Fault", faults=["split brain: n1 holds it"])]
    faulted = {c.type: c for c in agg_of(split).conditions}["Faulted"]
    assert (faulted.status, faulted.reason) == ("False", "NoFault")  # SplitBrain tells that one


# -- conditions -----------------------------------------------------------------------------


def test_last_transition_time_moves_only_with_the_status() -> None:
    t1, t2 = NOW, NOW + timedelta(minutes=5)
    first = merge([], [Cond("Ready", "True", "MasterElected", "n1 holds the VIP")], 1, t1)
    assert first == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "MasterElected",
            "message": "n1 holds the VIP",
            "lastTransitionTime": "2026-01-01T12:00:00Z",
            "observedGeneration": 1,
        }
    ]
    same = merge(first, [Cond("Ready", "True", "MasterElected", "n2 holds the VIP")], 2, t2)
    assert same[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert (same[0]["message"], same[0]["observedGeneration"]) == ("n2 holds the VIP", 2)
    flipped = merge(same, [Cond("Ready", "False", "NoMaster", "no node holds the VIP")], 2, t2)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T12:05:00Z"


def test_conditions_come_in_a_stable_order() -> None:
    out = merge(
        [],
        [Cond(t, "False", "X", "") for t in ("Conflict", "SplitBrain", "Ready", "Degraded")],
        1,
        NOW,
    )
    assert [c["type"] for c in out] == ["Ready", "Degraded", "SplitBrain", "Conflict"]


# -- the operator's status and its Events ---------------------------------------------------

OK = Decision(vrid=7)


def step(
    previous: OperatorStatus,
    nodes: list[dict[str, Any]],
    decision: Decision = OK,
    last: str | None = None,
) -> Any:
    agg = agg_of(nodes, previous.master)
    return plan(previous, decision, agg, observed_generation=2, now=NOW, last_master=last)


def events(p: Any) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in p.events]


def test_a_failover_tells_who_took_over_and_why() -> None:
    start = step(OperatorStatus(), [entry("n1", "Master"), entry("n2", "Backup")])
    assert events(start) == [("Normal", "MasterChanged", "(none) -> n1: n1 became Master")]
    body = start.status.body()
    assert (body["master"], body["virtualRouterID"], body["observedGeneration"]) == ("n1", 7, 2)
    assert "nodes" not in body  # never the agents' part

    again = step(start.status, [entry("n1", "Master"), entry("n2", "Backup")])
    assert events(again) == [] and not again.changes(start.status)

    moved = step(start.status, [entry("n1", "Fault"), entry("n2", "Master")])
    assert events(moved) == [("Normal", "MasterChanged", "n1 -> n2: n2 became Master")]


def test_a_gap_without_master_is_told_and_the_next_master_names_the_last_holder() -> None:
    start = step(OperatorStatus(), [entry("n1", "Master"), entry("n2", "Backup")])
    gap = step(
        start.status,
        [entry("n1", "Fault", reason="check web failed"), entry("n2", "Backup")],
        last=start.last_master,
    )
    assert events(gap) == [
        ("Warning", "MasterChanged", "n1 -> (none): n1 is Fault (check web failed)")
    ]
    assert "master" not in gap.status.body()
    assert gap.last_master == "n1"
    back = step(gap.status, [entry("n1", "Fault"), entry("n2", "Master")], last=gap.last_master)
    assert events(back) == [("Normal", "MasterChanged", "n1 -> n2: n2 became Master")]


def test_a_fault_is_warned_once_per_cause_and_its_end_told() -> None:
    healthy = [entry("n1", "Master"), entry("n2", "Backup")]
    start = step(OperatorStatus(), healthy)
    missing = [entry("n1", "Master"), entry("n2", "Fault", faults=["interface eth9 not found"])]
    faulted = step(start.status, missing, last=start.last_master)
    assert ("Warning", "Faulted", "n2: interface eth9 not found") in events(faulted)
    cond = faulted.status.condition("Faulted")
    assert cond is not None and (cond["status"], cond["reason"]) == ("True", "AgentFault")
    assert events(step(faulted.status, missing, last="n1")) == []  # same cause: told once
    cleared = step(faulted.status, healthy, last="n1")
    assert events(cleared) == [("Normal", "FaultedCleared", "no agent reports a fault")]


def test_conflict_events_once_per_change() -> None:
    blocked = Decision(vrid=7, conflicts=(Conflict("AddressInUse", "address 192.0.2.1 taken"),))
    first = step(OperatorStatus(), [], blocked)
    assert events(first) == [
        ("Warning", "Conflict", "address 192.0.2.1 taken; no agents are rolled out")
    ]
    ready = first.status.condition("Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "Conflict")
    assert events(step(first.status, [], blocked)) == []
    cleared = step(first.status, [], OK)
    assert events(cleared) == [
        ("Normal", "ConflictResolved", "no other VirtualIP claims its addresses or VRID")
    ]
    conflict = cleared.status.condition("Conflict")
    assert conflict is not None and (conflict["status"], conflict["reason"]) == (
        "False",
        "NoConflict",
    )


def test_an_invalid_spec_keeps_the_vrid_and_warns_once() -> None:
    previous = OperatorStatus(vrid=9, observed_generation=1)
    bad = Decision(
        vrid=None, invalid=("spec.priority: 0 is not in 1..254", "spec.bogus: unknown field")
    )
    first = step(previous, [], bad)
    assert first.status.vrid == 9
    ready = first.status.condition("Ready")
    assert ready is not None and ready["reason"] == "InvalidSpec"
    assert ready["message"] == "spec.priority: 0 is not in 1..254\nspec.bogus: unknown field"
    conflict = first.status.condition("Conflict")
    assert conflict is not None and conflict["status"] == "Unknown"
    assert [e[1] for e in events(first)] == ["InvalidSpec"]
    assert events(step(first.status, [], bad)) == []


def test_split_brain_events_start_and_end() -> None:
    one = step(OperatorStatus(), [entry("n1", "Master"), entry("n2", "Backup")])
    two = step(one.status, [entry("n1", "Master"), entry("n2", "Master")])
    assert ("Warning", "SplitBrain", "n1, n2 are all Master") in events(two)
    assert two.status.master == "n1"
    healed = step(two.status, [entry("n1", "Master"), entry("n2", "Backup")])
    assert ("Normal", "SplitBrainResolved", "at most one node is Master") in events(healed)
