"""What ``keepvip status`` shows, built from either source: VirtualIP objects or agents' /status.

The two sources describe the same facts in different shapes. A VirtualIP
in the API carries ``status.nodes[]`` (one entry per agent, written by that
agent with server-side apply) and ``status.master`` (the operator's
summary); a standalone agent's ``/status`` carries its own instances, one
per VirtualIP, each with its last transition. Both are turned into the same
:class:`VipRow` here, so the table and the JSON output have one format and
the renderer never sees a raw object. An API entry is read through the
API's :class:`~keepvip_api.status.NodeStatus`, as the operator reads it, and
judged stale by the same rule: node agents write their entries on change
only, so an entry is as fresh as its node's Lease
(:func:`~keepvip_api.status.node_alive`). Without read access to those Leases
the entry's own write time is judged instead (:func:`~keepvip_api.status.is_stale`,
right for the per-VirtualIP agents, which rewrote their entries every 10 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from keepvip_api.status import NodeStatus, is_stale, node_alive
from keepvip_api.times import parse_time

__all__ = ["NodeRow", "VipRow", "from_agents", "from_virtualip"]


@dataclass
class NodeRow:
    name: str
    state: str
    effective_priority: int | None = None
    configured_priority: int | None = None
    last_transition: datetime | None = None
    reason: str = ""
    faults: list[str] = field(default_factory=list)
    heartbeat: datetime | None = None
    renewed: datetime | None = None
    """When the node's agent last renewed its node Lease (if ``liveness_known``)."""
    liveness_known: bool = False

    def stale(self, now: datetime) -> bool:
        """An API entry whose node agent is dead (a standalone agent's row is never stale)."""
        if self.liveness_known:
            return not node_alive(self.renewed, now)
        return self.heartbeat is not None and is_stale(self.heartbeat, now)

    @classmethod
    def from_status(cls, entry: NodeStatus) -> NodeRow:
        return cls(
            name=entry.name,
            state=entry.state,
            effective_priority=entry.effective_priority,
            configured_priority=entry.configured_priority,
            last_transition=entry.last_transition,
            reason=entry.reason or "",
            faults=list(entry.faults),
            heartbeat=entry.heartbeat,
        )


@dataclass
class VipRow:
    name: str
    namespace: str | None = None
    addresses: list[str] = field(default_factory=list)
    vrid: int | None = None
    master: str | None = None
    ready: str | None = None
    """The operator's Ready condition (True/False/Unknown), when there is one."""
    nodes: list[NodeRow] = field(default_factory=list)

    @property
    def masters(self) -> list[str]:
        return [n.name for n in self.nodes if n.state == "Master"]

    def master_text(self) -> str:
        held = self.masters
        if len(held) > 1:
            return ",".join(held) + " (split brain)"
        return self.master or (held[0] if held else "-")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for node in data["nodes"]:
            node.pop("liveness_known")  # how staleness was judged, not a fact of the node
            node.pop("renewed")
            for key in ("last_transition", "heartbeat"):
                if node[key] is not None:
                    node[key] = node[key].isoformat()
        data["master"] = self.master_text()
        return data


def _agent_time(value: Any) -> datetime | None:
    """A standalone agent's ``/status`` time: Unix seconds (or RFC 3339)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return parse_time(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _condition(status: Mapping[str, Any], kind: str) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def from_virtualip(
    obj: Mapping[str, Any], renewals: Mapping[str, datetime | None] | None = None
) -> VipRow:
    """A VirtualIP object as the API returns it (spec and status in the API's camelCase).

    ``renewals``: each node's agent Lease renewTime, by node; None when unreadable.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    row = VipRow(
        name=str(meta.get("name", "?")),
        namespace=meta.get("namespace"),
        addresses=[str(a) for a in spec.get("addresses") or []],
        vrid=_int(status.get("virtualRouterID")) or _int(spec.get("virtualRouterID")),
        master=status.get("master") or None,
        ready=_condition(status, "Ready"),
    )
    for raw in status.get("nodes") or []:
        entry = NodeStatus.from_api(raw)
        if entry is not None:  # the CRD schema admits no other shape
            node = NodeRow.from_status(entry)
            if renewals is not None:
                node.liveness_known, node.renewed = True, renewals.get(node.name)
            row.nodes.append(node)
    row.nodes.sort(key=lambda n: n.name)
    return row


def from_agents(statuses: Iterable[Mapping[str, Any]]) -> list[VipRow]:
    """Several standalone agents' ``/status`` documents merged into one row per VirtualIP."""
    rows: dict[str, VipRow] = {}
    for status in statuses:
        node = str(status.get("node", "?"))
        for inst in status.get("instances") or []:
            name = str(inst.get("name", "?"))
            row = rows.setdefault(name, VipRow(name=name))
            row.addresses = row.addresses or [str(a) for a in inst.get("addresses") or []]
            row.vrid = row.vrid or _int(inst.get("vrid"))
            last = inst.get("lastTransition") or {}
            reason = str(last.get("reason") or "")
            if last.get("from") and last.get("to"):
                reason = (
                    f"{last['from']} -> {last['to']}: {reason}"
                    if reason
                    else f"{last['from']} -> {last['to']}"
                )
            row.nodes.append(
                NodeRow(
                    name=str(inst.get("node") or node),
                    state=str(inst.get("state", "Unknown")),
                    effective_priority=_int(inst.get("effectivePriority")),
                    configured_priority=_int(inst.get("configuredPriority")),
                    last_transition=_agent_time(last.get("at")),
                    reason=reason,
                    faults=[str(x) for x in inst.get("faults") or []],
                )
            )
        for pending in status.get("pending") or []:
            name = str(pending.get("name", "?"))
            row = rows.setdefault(name, VipRow(name=name))
            problem = str(pending.get("problem") or "")
            row.nodes.append(NodeRow(name=node, state="Pending", reason=problem))
    for row in rows.values():
        row.nodes.sort(key=lambda n: n.name)
    return sorted(rows.values(), key=lambda r: r.name)
