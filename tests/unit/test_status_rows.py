"""``keepvip status`` rows from both sources, without a cluster or a lab.

A VirtualIP's ``status.nodes[]`` is read through the API's NodeStatus (as the
operator reads it) and a stale heartbeat is flagged by the operator's rule:
older than 30 s (three missed 10 s heartbeats), and not a moment sooner.
A standalone agent's ``/status`` gives Unix seconds and no heartbeat.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from keepvip_api.times import micro_time
from keepvip_tools.status.model import from_agents, from_virtualip
from keepvip_tools.status.render import table

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)


def entry(name: str, state: str, beat_age: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "state": state,
        "configuredPriority": 120,
        "effectivePriority": 100,
        "lastTransitionTime": micro_time(NOW - timedelta(minutes=42)),
        "reason": f"{name} is {state}",
        "faults": [],
        "heartbeatTime": micro_time(NOW - timedelta(seconds=beat_age)),
        **extra,
    }


def virtualip(*nodes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"addresses": ["192.0.2.50/24"]},
        "status": {
            "virtualRouterID": 51,
            "master": "n1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodes": list(nodes),
        },
    }


def test_entries_read_through_the_status_model() -> None:
    row = from_virtualip(
        virtualip(
            entry("n2", "Backup", 30),
            entry("n1", "Master", 1, faults=["x"]),
            {"name": "n9", "state": "Leader"},  # not an agent's entry
        )
    )
    assert (row.name, row.namespace, row.vrid, row.master, row.ready) == (
        "web",
        "shop",
        51,
        "n1",
        "True",
    )
    assert [(n.name, n.state, n.effective_priority, n.configured_priority) for n in row.nodes] == [
        ("n1", "Master", 100, 120),
        ("n2", "Backup", 100, 120),
    ]
    n1 = row.nodes[0]
    assert n1.faults == ["x"] and n1.reason == "n1 is Master"
    assert n1.last_transition == NOW - timedelta(minutes=42)
    assert n1.heartbeat == NOW - timedelta(seconds=1)


def test_stale_after_thirty_seconds_as_the_operator_judges() -> None:
    row = from_virtualip(
        virtualip(entry("n1", "Master", 1), entry("n2", "Backup", 30), entry("n3", "Backup", 31))
    )
    assert [n.stale(NOW) for n in row.nodes] == [False, False, True]
    lines = table([row], NOW).splitlines()
    assert "Backup?" not in lines[2] and "Backup?" in lines[3]
    assert "no heartbeat for 31s; n3 is Backup" in lines[3]


def test_standalone_agents_give_unix_seconds_and_no_heartbeat() -> None:
    at = (NOW - timedelta(minutes=5)).timestamp()
    status = {
        "node": "n1",
        "instances": [
            {
                "name": "web",
                "addresses": ["192.0.2.50/24"],
                "vrid": 51,
                "state": "Master",
                "effectivePriority": 150,
                "configuredPriority": 150,
                "faults": [],
                "lastTransition": {"from": "Backup", "to": "Master", "at": at, "reason": "timer"},
            }
        ],
    }
    (row,) = from_agents([status])
    (node,) = row.nodes
    assert node.last_transition == NOW - timedelta(minutes=5)
    assert node.reason == "Backup -> Master: timer"
    assert node.heartbeat is None and not node.stale(NOW + timedelta(days=1))


def test_a_node_agents_entry_is_as_fresh_as_its_node_lease() -> None:
    """Node agents write on change only: the node Lease says whether they live (node_alive)."""
    obj = virtualip(entry("n1", "Master", beat_age=3600), entry("n2", "Backup", beat_age=5))
    renewals = {"n1": NOW - timedelta(seconds=2), "n2": NOW - timedelta(seconds=31)}
    rows = {n.name: n for n in from_virtualip(obj, renewals).nodes}
    assert not rows["n1"].stale(NOW)  # written an hour ago, its agent renews: fresh
    assert rows["n2"].stale(NOW)  # written just now, but its agent stopped renewing
    no_lease = {n.name: n for n in from_virtualip(obj, {}).nodes}
    assert no_lease["n1"].stale(NOW) and no_lease["n2"].stale(NOW)
    unreadable = {n.name: n for n in from_virtualip(obj, None).nodes}  # the entries' own times
    assert unreadable["n1"].stale(NOW) and not unreadable["n2"].stale(NOW)
