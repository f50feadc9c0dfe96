"""From the agents' own entries in ``status.nodes`` to master and conditions (pure).

Each agent applies its own entry (field manager ``keepvip-agent-<node>``); an
entry counts only while it is fresh (:func:`keepvip_api.status.is_stale`: a
heartbeat within the timeout, by default 3 x the agents' 10 s heartbeat) and
its node still runs an agent pod of this VirtualIP. Entries that fail either test are ignored here and pruned from
the status by the caller: a dead agent cannot take its entry away itself.

``master`` is the node that reports Master. While more than one does (split
brain) the one that already was master stays named, so the name does not
flap while the Lease settles it; otherwise the highest effective priority.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keepvip_api.names import SPLIT_BRAIN_FAULT
from keepvip_api.status import STALE_AFTER, NodeStatus, is_stale
from keepvip_operator.conditions import DEGRADED, READY, SPLIT_BRAIN, Cond


@dataclass(frozen=True)
class Stale:
    index: int
    name: str
    why: str


@dataclass(frozen=True)
class Aggregate:
    master: str | None
    counted: tuple[NodeStatus, ...]
    stale: tuple[Stale, ...]
    """Entries to prune, with their position in the list as read."""
    conditions: tuple[Cond, ...]
    """Ready, Degraded and SplitBrain."""

    def entry(self, node: str | None) -> NodeStatus | None:
        return next((n for n in self.counted if n.name == node), None)


def _why_stale(
    entry: NodeStatus, agent_nodes: frozenset[str] | None, now: datetime, timeout: float
) -> str | None:
    if agent_nodes is not None and entry.name not in agent_nodes:
        return "no agent pod on the node"
    beat = entry.heartbeat
    if beat is None:
        return "no heartbeatTime"
    if is_stale(beat, now, timeout):
        return f"heartbeat {int((now - beat).total_seconds())}s old"
    return None


def _names(nodes: Sequence[NodeStatus]) -> str:
    return ", ".join(n.name for n in nodes)


def aggregate(
    raw_nodes: Sequence[Mapping[str, Any]],
    *,
    agent_nodes: frozenset[str] | None,
    now: datetime,
    previous_master: str | None,
    heartbeat_timeout: float = STALE_AFTER,
) -> Aggregate:
    """``agent_nodes``: nodes running an agent pod of this VirtualIP; None if unknown."""
    counted: list[NodeStatus] = []
    stale: list[Stale] = []
    for index, raw in enumerate(raw_nodes):
        entry = NodeStatus.from_api(raw)
        if entry is None:
            continue  # not the agents' shape; the CRD schema makes this unreachable
        why = _why_stale(entry, agent_nodes, now, heartbeat_timeout)
        if why:
            stale.append(Stale(index, entry.name, why))
        else:
            counted.append(entry)
    counted.sort(key=lambda n: n.name)
    master = _choose_master(counted, previous_master)
    return Aggregate(
        master=master,
        counted=tuple(counted),
        stale=tuple(stale),
        conditions=(_ready(counted, master), _degraded(counted, master), _split_brain(counted)),
    )


def _masters(counted: Sequence[NodeStatus]) -> list[NodeStatus]:
    return [n for n in counted if n.state == "Master"]


def _choose_master(counted: Sequence[NodeStatus], previous: str | None) -> str | None:
    masters = _masters(counted)
    if len(masters) > 1 and previous in {m.name for m in masters}:
        return previous
    if masters:
        return max(masters, key=lambda n: (n.effective_priority or 0, n.name)).name
    return None


def _ready(counted: Sequence[NodeStatus], master: str | None) -> Cond:
    masters = _masters(counted)
    if len(masters) == 1:
        return Cond(READY, "True", "MasterElected", f"{master} holds the VIP")
    if masters:
        return Cond(
            READY, "False", "SplitBrain", f"{len(masters)} nodes are Master: {_names(masters)}"
        )
    if counted:
        states = ", ".join(f"{n.name} {n.state}" for n in counted)
        return Cond(READY, "False", "NoMaster", f"no node holds the VIP ({states})")
    return Cond(READY, "False", "NoAgentReports", "no agent has reported (fresh) status yet")


def _degraded(counted: Sequence[NodeStatus], master: str | None) -> Cond:
    backups = [n for n in counted if n.state == "Backup"]
    if backups:
        return Cond(
            DEGRADED,
            "False",
            "BackupAvailable",
            f"{len(backups)} node(s) in Backup: {_names(backups)}",
        )
    if master:
        return Cond(
            DEGRADED, "True", "NoBackup", f"no node in Backup: nothing takes over if {master} fails"
        )
    return Cond(DEGRADED, "True", "NoBackup", "no node in Backup")


def _split_brain(counted: Sequence[NodeStatus]) -> Cond:
    masters = _masters(counted)
    if len(masters) > 1:
        return Cond(SPLIT_BRAIN, "True", "MultipleMasters", f"{_names(masters)} are all Master")
    reported = [
        f"{n.name}: {f}" for n in counted for f in n.faults if SPLIT_BRAIN_FAULT in f.lower()
    ]
    if reported:
        return Cond(SPLIT_BRAIN, "True", "ReportedByAgent", "; ".join(reported))
    return Cond(SPLIT_BRAIN, "False", "SingleMaster", "at most one node is Master")
