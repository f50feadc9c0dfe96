"""metav1.Condition bookkeeping (pure): lastTransitionTime moves only when status does.

Conditions are a list map keyed by ``type`` in the CRD; the operator applies
the whole set it owns at once, so this module only has to say what the new
list is, given the previous one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from keepvip_api.times import format_time

Status = Literal["True", "False", "Unknown"]
READY, DEGRADED, SPLIT_BRAIN, CONFLICT = "Ready", "Degraded", "SplitBrain", "Conflict"
FAULTED, NO_NODE = "Faulted", "NoNode"
ACCEPTED, ADDRESS_OUTSIDE_POOL = "Accepted", "AddressOutsidePool"
ORDER = (READY, ACCEPTED, ADDRESS_OUTSIDE_POOL, DEGRADED, SPLIT_BRAIN, FAULTED, NO_NODE, CONFLICT)
MAX_MESSAGE = 32768


@dataclass(frozen=True)
class Cond:
    type: str
    status: Status
    reason: str
    message: str

    @property
    def true(self) -> bool:
        return self.status == "True"


def by_type(conditions: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in conditions if isinstance(c, Mapping)}


def merge(
    previous: Sequence[Mapping[str, Any]], new: Iterable[Cond], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """The new conditions as API objects, each keeping its lastTransitionTime unless its status changed."""
    old = by_type(previous)
    out: list[dict[str, Any]] = []
    for cond in sorted(new, key=lambda c: (ORDER.index(c.type) if c.type in ORDER else 99, c.type)):
        before = old.get(cond.type)
        since = before.get("lastTransitionTime") if before else None
        if before is None or before.get("status") != cond.status or not since:
            since = format_time(now)
        out.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message[:MAX_MESSAGE],
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return out


def put(
    conditions: Sequence[Mapping[str, Any]],
    cond: Cond,
    previous: Sequence[Mapping[str, Any]],
    generation: int | None,
    now: datetime,
) -> tuple[dict[str, Any], ...]:
    """``conditions`` with ``cond`` added or replaced (merged against ``previous``), last."""
    kept = [dict(x) for x in conditions if x.get("type") != cond.type]
    return (*kept, *merge(previous, [cond], generation or 0, now))


def status_of(conditions: Sequence[Mapping[str, Any]], kind: str) -> str | None:
    c = by_type(conditions).get(kind)
    return str(c.get("status")) if c else None
