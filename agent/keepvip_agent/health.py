"""From health reports to an effective priority and a fault set: the one rule, stated once.

Every source of health (the standalone checks, the interface monitor, the
Kubernetes pod-readiness tracker) reports ``(name, healthy, onFailure)`` to a
:class:`HealthBoard`. The rule that keepalived users find hard to read is
spelled out here and nowhere else:

* a failing ``demote`` source subtracts its weight from the configured
  priority (failing sources add up; the result never drops below 1);
* a failing ``fault`` source takes the node out of the election entirely;
* a source that has not reported yet counts as failing, so a node never
  becomes master before its checks have run once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keepvip_api.model import OnFailure

MIN_PRIORITY = 1


@dataclass(frozen=True, slots=True)
class Health:
    priority: int
    faults: frozenset[str]


@dataclass(frozen=True, slots=True)
class Report:
    healthy: bool
    on_failure: OnFailure
    detail: str


def evaluate(configured: int, reports: dict[str, Report | None]) -> Health:
    priority = configured
    faults: set[str] = set()
    for name, report in reports.items():
        if report is not None and report.healthy:
            continue
        if report is None:
            faults.add(f"{name}: not checked yet")
        elif report.on_failure.action == "fault":
            faults.add(f"{name}: {report.detail}")
        else:
            priority -= int(report.on_failure.weight or 0)
    return Health(max(MIN_PRIORITY, priority), frozenset(faults))


class HealthBoard:
    """Collects reports for one instance and calls ``on_change`` when the outcome changes."""

    def __init__(self, configured: int, on_change: Callable[[Health], None]) -> None:
        self.configured = configured
        self._reports: dict[str, Report | None] = {}
        self._on_change = on_change
        self.health = evaluate(configured, {})

    def expect(self, name: str) -> None:
        """Register a source that will report; until it does, it counts as failing."""
        self._reports.setdefault(name, None)
        self._recompute()

    def forget(self, name: str) -> None:
        self._reports.pop(name, None)
        self._recompute()

    def report(self, name: str, healthy: bool, on_failure: OnFailure, detail: str = "") -> None:
        self._reports[name] = Report(
            healthy, on_failure, detail or ("ok" if healthy else "failing")
        )
        self._recompute()

    def set_configured(self, configured: int) -> None:
        self.configured = configured
        self._recompute()

    @property
    def reports(self) -> dict[str, Report | None]:
        return dict(self._reports)

    def _recompute(self) -> None:
        health = evaluate(self.configured, self._reports)
        if health != self.health:
            self.health = health
            self._on_change(health)
