"""From the agents' own entries in ``status.nodes`` to master and conditions (pure).

Each agent applies its own entry (field manager ``keepvip-agent-<node>``) on
change only; an entry counts only while its node is alive (the caller judges
that from the node's Lease with :func:`keepvip_api.status.node_alive`, the
rule ``keepvip status`` uses too) and its node still runs a node agent pod.
Entries that fail either test are ignored here and pruned from the status by
the caller: a dead agent cannot take its entry away itself.

An entry in state Fault with a fault other than split brain (an interface
that is missing, an address on no connected network, a check that cannot
run, a failing check) makes the ``Faulted`` condition, naming node and cause.

``master`` is the node that reports Master. While more than one does (split
brain) the one that already was master stays named, so the name does not
flap while the Lease settles it; otherwise the highest effective priority.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keepvip_api.names import SPLIT_BRAIN_FAULT
from keepvip_api.status import NodeStatus
from keepvip_operator.conditions import DEGRADED, FAULTED, READY, SPLIT_BRAIN, Cond


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
    """Ready, Degraded, SplitBrain and Faulted."""

    def entry(self, node: str | None) -> NodeStatus | None:
        return next((n for n in self.counted if n.name == node), None)


def _why_stale(
    entry: NodeStatus, agent_nodes: frozenset[str] | None, alive: frozenset[str] | None
) -> str | None:
    if agent_nodes is not None and entry.name not in agent_nodes:
        return "no agent pod on the node"
    if alive is not None and entry.name not in alive:
        return "node Lease not renewed"
    return None


def _names(nodes: Sequence[NodeStatus]) -> str:
    return ", ".join(n.name for n in nodes)


def aggregate(
    raw_nodes: Sequence[Mapping[str, Any]],
    *,
    agent_nodes: frozenset[str] | None,
    alive: frozenset[str] | None,
    previous_master: str | None,
) -> Aggregate:
    """``agent_nodes``: nodes running a node agent pod; ``alive``: nodes whose node Lease is
    fresh; None if unknown."""
    counted: list[NodeStatus] = []
    stale: list[Stale] = []
    for index, raw in enumerate(raw_nodes):
        entry = NodeStatus.from_api(raw)
        if entry is None:
            continue  # not the agents' shape; the CRD schema makes this unreachable
        why = _why_stale(entry, agent_nodes, alive)
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
        conditions=(
            _ready(counted, master),
            _degraded(counted, master),
            _split_brain(counted),
            _faulted(counted),
        ),
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


def _faulted(counted: Sequence[NodeStatus]) -> Cond:
    """The agents' per-VirtualIP faults (split brain has its own condition)."""
    reported = [
        f"{n.name}: {f}"
        for n in counted
        if n.state == "Fault"
        for f in n.faults
        if SPLIT_BRAIN_FAULT not in f.lower()
    ]
    if reported:
        return Cond(FAULTED, "True", "AgentFault", "; ".join(reported))
    return Cond(FAULTED, "False", "NoFault", "no agent reports a fault")
