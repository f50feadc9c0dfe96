"""The operator's part of a VirtualIP's status, and the Events its changes deserve (pure).

The operator owns ``master``, ``virtualRouterID``, ``observedGeneration``
and ``conditions`` (server-side apply, field manager ``keepvip-operator``);
``nodes`` belongs to the agents, and the operator only ever removes stale
entries from it. Because an apply replaces everything its manager owns,
every write carries the whole operator part, computed here in one place
from the previous part, the allocation/conflict decision and the agents'
aggregate. Events are derived from the difference, so each change is told
once: a master change, a conflict appearing or clearing, an invalid spec,
split brain starting or ending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from keepvip_api import acceptance as acc
from keepvip_operator import conditions as c
from keepvip_operator.aggregate import Aggregate, Stale
from keepvip_operator.allocate import Conflict
from keepvip_operator.conditions import Cond
from keepvip_operator.grants import Verdict

EventType = Literal["Normal", "Warning"]
NORMAL: EventType = "Normal"
WARNING: EventType = "Warning"
MASTER_CHANGED = "MasterChanged"
INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class Decision:
    """What reconciliation decided: the VRID, and whether agents may run."""

    vrid: int | None
    conflicts: tuple[Conflict, ...] = ()
    invalid: tuple[str, ...] = ()
    """The spec's problems, one line each (parse_virtualip's SpecError)."""
    verdict: Verdict | None = None
    """The grants judgement (:mod:`grants`); None: not judged (acceptance keeps what it was)."""
    generation: int | None = None
    """The generation judged."""

    @property
    def refused(self) -> bool:
        """This generation is not accepted (and no earlier acceptance of it stands)."""
        v = self.verdict
        return v is not None and not self.invalid and v.accepted_generation != self.generation

    @property
    def rollout(self) -> bool:
        return not self.conflicts and not self.invalid and not self.refused


@dataclass(frozen=True)
class OperatorStatus:
    """The operator-owned status fields, as last written (or read back)."""

    master: str | None = None
    vrid: int | None = None
    observed_generation: int | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    accepted_generation: int | None = None

    @classmethod
    def read(cls, status: Mapping[str, Any]) -> OperatorStatus:
        conds = status.get("conditions") or ()
        vrid = status.get("virtualRouterID")
        gen = status.get("observedGeneration")
        accepted = status.get("acceptedGeneration")
        return cls(
            master=status.get("master") or None,
            vrid=vrid if isinstance(vrid, int) else None,
            observed_generation=gen if isinstance(gen, int) else None,
            conditions=tuple(x for x in conds if isinstance(x, Mapping)),
            accepted_generation=accepted if isinstance(accepted, int) else None,
        )

    def accepted_before(self, generation: int) -> int | None:
        """The accepted generation so far; an operator of an earlier release (no ``Accepted``
        condition) accepted what it observed (keepvip_api.acceptance.acceptance)."""
        if self.accepted_generation is not None or self.condition(acc.ACCEPTED) is not None:
            return self.accepted_generation
        return generation if self.observed_generation == generation else None

    def body(self) -> dict[str, Any]:
        """The status stanza to apply; fields left out are released (and so removed)."""
        out: dict[str, Any] = {"conditions": [dict(x) for x in self.conditions]}
        if self.master:
            out["master"] = self.master
        if self.vrid is not None:
            out["virtualRouterID"] = self.vrid
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        if self.accepted_generation is not None:
            out["acceptedGeneration"] = self.accepted_generation
        return out

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        return c.by_type(self.conditions).get(kind)


@dataclass(frozen=True)
class EventSpec:
    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    status: OperatorStatus
    prune: tuple[Stale, ...]
    events: tuple[EventSpec, ...]
    last_master: str | None
    """The last node known to hold the VIP (kept across a gap with no master)."""

    def changes(self, previous: OperatorStatus) -> bool:
        return self.status.body() != previous.body()


def _conflict_cond(decision: Decision) -> Cond:
    if decision.invalid:
        return Cond(c.CONFLICT, "Unknown", INVALID_SPEC, "not judged while the spec is invalid")
    if decision.conflicts:
        reason = decision.conflicts[0].reason
        text = "; ".join(x.message for x in decision.conflicts)
        return Cond(c.CONFLICT, "True", reason, f"{text}; no agents are rolled out")
    return Cond(
        c.CONFLICT, "False", "NoConflict", "no other VirtualIP claims its addresses or VRID"
    )


def _ready(decision: Decision, aggregated: Cond) -> Cond:
    if decision.invalid:
        return Cond(c.READY, "False", INVALID_SPEC, "\n".join(decision.invalid))
    if decision.refused:
        return Cond(c.READY, "False", "NotAccepted", "not run: see the Accepted condition")
    if decision.conflicts:
        return Cond(c.READY, "False", "Conflict", "not rolled out: see the Conflict condition")
    return aggregated


def _master_event(before: str | None, last: str | None, agg: Aggregate) -> EventSpec | None:
    """``before``: status.master so far; ``last``: the last node known to hold the VIP.

    A new master is announced from the last holder, so a failover with a gap
    in between still reads "n1 -> n2: <why n2 took over>".
    """
    after = agg.master
    if before == after:
        return None
    if after is not None:
        entry = agg.entry(after)
        why = entry.reason if entry is not None and entry.reason else "became Master"
        origin = before or (last if last != after else None)
        return EventSpec(NORMAL, MASTER_CHANGED, f"{origin or '(none)'} -> {after}: {why}")
    old = agg.entry(before)
    if old is None:
        why = f"{before} no longer reports"
    else:
        why = f"{before} is {old.state}" + (f" ({old.reason})" if old.reason else "")
    return EventSpec(WARNING, MASTER_CHANGED, f"{before} -> (none): {why}")


def _acceptance_events(previous: OperatorStatus, new: Mapping[str, Cond]) -> list[EventSpec]:
    """A refusal (reason and message as the condition's), an acceptance after one, an address
    that left its pools (the grants judgement, :mod:`grants`)."""
    out: list[EventSpec] = []
    before = previous.condition(acc.ACCEPTED) or {}
    accepted = new.get(acc.ACCEPTED)
    if accepted is not None and accepted.reason != INVALID_SPEC:
        told = (before.get("reason"), before.get("message"))
        if not accepted.true and told != (accepted.reason, accepted.message):
            out.append(EventSpec(WARNING, accepted.reason, accepted.message))
        elif accepted.true and before.get("status") == "False":
            out.append(EventSpec(NORMAL, acc.ACCEPTED, accepted.message))
    outside = new.get(acc.ADDRESS_OUTSIDE_POOL)
    was_outside = (previous.condition(acc.ADDRESS_OUTSIDE_POOL) or {}).get("message")
    if outside is not None and was_outside != outside.message:
        out.append(
            EventSpec(
                WARNING,
                acc.ADDRESS_OUTSIDE_POOL,
                f"{outside.message}; it keeps serving until its spec changes",
            )
        )
    return out


def _transition_events(previous: OperatorStatus, conds: Sequence[Cond]) -> list[EventSpec]:
    out: list[EventSpec] = []
    new = {x.type: x for x in conds}

    def was(kind: str, key: str = "status") -> Any:
        before = previous.condition(kind)
        return before.get(key) if before else None

    conflict = new[c.CONFLICT]
    if conflict.true and (was(c.CONFLICT), was(c.CONFLICT, "message")) != (
        "True",
        conflict.message,
    ):
        out.append(EventSpec(WARNING, "Conflict", conflict.message))
    elif not conflict.true and was(c.CONFLICT) == "True":
        out.append(EventSpec(NORMAL, "ConflictResolved", conflict.message))

    ready = new[c.READY]
    if ready.reason == INVALID_SPEC and (was(c.READY, "reason"), was(c.READY, "message")) != (
        INVALID_SPEC,
        ready.message,
    ):
        out.append(EventSpec(WARNING, INVALID_SPEC, ready.message))

    for kind, reason in ((c.FAULTED, "Faulted"), (c.NO_NODE, "NoNodeSelected")):
        cond = new.get(kind)
        if cond is None:
            continue
        if cond.true and (was(kind), was(kind, "message")) != ("True", cond.message):
            out.append(EventSpec(WARNING, reason, cond.message))
        elif not cond.true and was(kind) == "True":
            out.append(EventSpec(NORMAL, f"{reason}Cleared", cond.message))

    out += _acceptance_events(previous, new)
    split = new[c.SPLIT_BRAIN]
    if split.true and was(c.SPLIT_BRAIN) != "True":
        out.append(EventSpec(WARNING, "SplitBrain", split.message))
    elif not split.true and was(c.SPLIT_BRAIN) == "True":
        out.append(EventSpec(NORMAL, "SplitBrainResolved", split.message))
    return out


def plan(
    previous: OperatorStatus,
    decision: Decision,
    agg: Aggregate,
    *,
    observed_generation: int | None,
    now: datetime,
    last_master: str | None = None,
    extra: Sequence[Cond] = (),
) -> Plan:
    """The operator status to write, the stale node entries to prune, the Events to post.

    ``extra``: conditions judged elsewhere (NoNode), merged and told like the others.
    """
    ready, degraded, split, faulted = agg.conditions
    judged = decision.verdict.conditions if decision.verdict is not None else ()
    conds = [_ready(decision, ready), degraded, split, faulted, *extra, *judged,
             _conflict_cond(decision)]  # fmt: skip
    vrid = previous.vrid if decision.invalid else decision.vrid
    accepted = previous.accepted_generation
    if decision.verdict is not None:
        accepted = decision.verdict.accepted_generation
    status = OperatorStatus(
        master=agg.master,
        vrid=vrid,
        observed_generation=observed_generation,
        conditions=tuple(c.merge(previous.conditions, conds, observed_generation or 0, now)),
        accepted_generation=accepted,
    )
    events = _transition_events(previous, conds)
    last = last_master or previous.master
    master_event = _master_event(previous.master, last, agg)
    if master_event is not None:
        events.insert(0, master_event)
    return Plan(
        status=status, prune=agg.stale, events=tuple(events), last_master=agg.master or last
    )
