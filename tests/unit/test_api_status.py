"""A node's status entry: one model, the wire JSON the agents apply, one staleness rule, one time format.

The agent writes its ``status.nodes[]`` entry through :class:`NodeStatus`, the
operator and ``keepvip status`` read it back through the same model, and both
judge an old heartbeat by :func:`is_stale`. The wire form is pinned here
field by field: agents of the previous release wrote exactly these keys
(absent fields left out, never null), so a mixed fleet keeps one shape.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from keepvip_api.names import OPERATOR_FIELD_MANAGER, agent_field_manager, lease_name
from keepvip_api.status import HEARTBEAT, STALE_AFTER, NodeStatus, is_stale
from keepvip_api.times import EPOCH, format_time, micro_time, parse_time

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
UNIX = NOW.timestamp()


def test_the_entry_an_agent_applies_after_a_transition() -> None:
    entry = NodeStatus(
        name="n1",
        state="Master",
        configured_priority=150,
        effective_priority=120,
        faults=("a", "b"),
        heartbeat_time=micro_time(UNIX),
        address="192.0.2.11",
        last_transition_time=micro_time(UNIX - 60),
        reason="master down timer expired",
    )
    assert entry.to_api() == {
        "name": "n1",
        "state": "Master",
        "configuredPriority": 150,
        "effectivePriority": 120,
        "address": "192.0.2.11",
        "lastTransitionTime": "2026-01-02T03:03:05.678901Z",
        "reason": "master down timer expired",
        "faults": ["a", "b"],
        "heartbeatTime": "2026-01-02T03:04:05.678901Z",
    }


def test_the_entry_before_any_transition_leaves_absent_fields_out() -> None:
    entry = NodeStatus(
        name="n2",
        state="Initialize",
        configured_priority=100,
        effective_priority=100,
        heartbeat_time=micro_time(UNIX),
    )
    # address, lastTransitionTime and reason absent, not null, as agents have always
    # written them; faults always present.
    assert entry.to_api() == {
        "name": "n2",
        "state": "Initialize",
        "configuredPriority": 100,
        "effectivePriority": 100,
        "faults": [],
        "heartbeatTime": "2026-01-02T03:04:05.678901Z",
    }


def test_an_entry_read_back_is_the_entry_written() -> None:
    entry = NodeStatus(
        name="n1",
        state="Fault",
        configured_priority=100,
        effective_priority=100,
        faults=("split brain: n2 holds the lease",),
        heartbeat_time=micro_time(UNIX),
    )
    again = NodeStatus.from_api(entry.to_api())
    assert again == entry
    assert again is not None and again.heartbeat == NOW and again.last_transition is None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "n1",
        {"state": "Master"},
        {"name": "n1", "state": "Leader"},
        {"name": "n1", "state": "Master", "effectivePriority": "100"},
    ],
)
def test_what_is_not_an_agents_entry_reads_as_none(raw: object) -> None:
    assert NodeStatus.from_api(raw) is None


def test_one_staleness_rule_three_missed_heartbeats() -> None:
    assert HEARTBEAT == 10.0
    assert STALE_AFTER == 3 * HEARTBEAT
    assert not is_stale(NOW - timedelta(seconds=STALE_AFTER), NOW)  # at the limit: counts
    assert is_stale(NOW - timedelta(seconds=STALE_AFTER, microseconds=1), NOW)
    assert not is_stale(NOW - timedelta(seconds=45), NOW, after=60)
    assert is_stale(NOW - timedelta(seconds=11), NOW, after=10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.678901Z", NOW),
        ("2026-01-02T04:04:05+01:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (1767323045, None),
    ],
)
def test_parse_time_reads_rfc3339_only(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_the_two_forms_the_api_writes() -> None:
    east = timezone(timedelta(hours=2))
    assert format_time(NOW) == "2026-01-02T03:04:05Z"
    assert format_time(NOW.astimezone(east)) == "2026-01-02T03:04:05Z"
    assert micro_time(NOW) == "2026-01-02T03:04:05.678901Z"
    assert micro_time(NOW.astimezone(east)) == "2026-01-02T03:04:05.678901Z"
    assert micro_time(UNIX) == micro_time(NOW)
    assert micro_time(0) == "1970-01-01T00:00:00.000000Z" and parse_time(micro_time(0)) == EPOCH


def test_names_both_sides_use() -> None:
    assert agent_field_manager("kv-node-1") == "keepvip-agent-kv-node-1"
    assert OPERATOR_FIELD_MANAGER == "keepvip-operator"
    assert lease_name("web") == "keepvip-web"
