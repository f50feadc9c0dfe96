"""The health rule (health.py): reports in, one effective priority and a fault set out."""

from __future__ import annotations

from keepvip_agent.health import MIN_PRIORITY, Health, HealthBoard, Report, evaluate
from keepvip_api.model import OnFailure

DEMOTE_30 = OnFailure(action="demote", weight=30)
DEMOTE_50 = OnFailure(action="demote", weight=50)
FAULT = OnFailure(action="fault")


def test_healthy_sources_leave_the_configured_priority() -> None:
    reports: dict[str, Report | None] = {"a": Report(True, DEMOTE_30, "ok")}
    assert evaluate(100, reports) == Health(100, frozenset())


def test_failing_demote_sources_add_up() -> None:
    reports: dict[str, Report | None] = {
        "a": Report(False, DEMOTE_30, "down"),
        "b": Report(False, DEMOTE_50, "down"),
        "c": Report(True, DEMOTE_50, "ok"),
    }
    assert evaluate(100, reports) == Health(20, frozenset())


def test_demotion_never_goes_below_one() -> None:
    reports: dict[str, Report | None] = {"a": Report(False, DEMOTE_50, "down")}
    assert evaluate(30, reports).priority == MIN_PRIORITY == 1


def test_a_failing_fault_source_is_a_fault_named_with_its_detail() -> None:
    reports: dict[str, Report | None] = {"app": Report(False, FAULT, "exit status 1")}
    assert evaluate(100, reports) == Health(100, frozenset({"app: exit status 1"}))


def test_a_source_not_heard_yet_counts_as_a_fault() -> None:
    # Even a demote source: a node never becomes master before its checks ran once.
    assert evaluate(100, {"app": None}).faults == frozenset({"app: not checked yet"})


def test_the_board_calls_back_only_when_the_outcome_changes() -> None:
    seen: list[Health] = []
    board = HealthBoard(100, seen.append)
    board.expect("app")
    assert seen == [Health(100, frozenset({"app: not checked yet"}))]
    board.report("app", True, DEMOTE_30)
    board.report("app", True, DEMOTE_30, "still ok")
    assert seen[1:] == [Health(100, frozenset())]
    board.report("app", False, DEMOTE_30)
    assert seen[2:] == [Health(70, frozenset())]
    assert board.reports["app"] == Report(False, DEMOTE_30, "failing")
    board.set_configured(150)
    assert seen[3:] == [Health(120, frozenset())] and board.configured == 150
    board.forget("app")
    assert seen[4:] == [Health(150, frozenset())]
    board.expect("app")
    board.expect("app")  # expecting twice is harmless: still one source
    assert seen[5:] == [Health(150, frozenset({"app: not checked yet"}))]
