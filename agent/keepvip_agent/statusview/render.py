"""The ``keepvip status`` table: one line per node of each VirtualIP, kubectl-style columns.

The VirtualIP's own columns (name, addresses, VRID, master) appear on its
first line only, so a glance down the MASTER column finds every VIP's
holder and the lines below show who would take over, at which priority.
Ages are relative to ``now``, which the caller passes in (tests pin it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keepvip_agent.statusview.model import NodeRow, VipRow

__all__ = ["age", "table"]

MAX_REASON = 80


def age(then: datetime | None, now: datetime) -> str:
    """``45s``, ``12m``, ``3h``, ``2d`` (kubectl's rounding: the largest whole unit)."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _priority(node: NodeRow) -> str:
    eff, conf = node.effective_priority, node.configured_priority
    if eff is None:
        return "-" if conf is None else str(conf)
    if conf is not None and conf != eff:
        return f"{eff} ({conf})"
    return str(eff)


def _reason(node: NodeRow, now: datetime) -> str:
    parts = []
    if node.stale(now):
        parts.append(f"no heartbeat for {age(node.heartbeat, now)}")
    if node.reason:
        parts.append(node.reason)
    if node.faults and node.state == "Fault":
        parts.append("faults: " + "; ".join(node.faults))
    text = "; ".join(parts)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _state(node: NodeRow, now: datetime) -> str:
    return f"{node.state}?" if node.stale(now) else node.state


def table(rows: Sequence[VipRow], now: datetime, namespaces: bool = False) -> str:
    """The rows as aligned text; ``namespaces`` adds the NAMESPACE column (``-A``)."""
    head = [
        "NAME",
        "ADDRESSES",
        "VRID",
        "MASTER",
        "NODE",
        "STATE",
        "PRIORITY",
        "LAST CHANGE",
        "REASON",
    ]
    if namespaces:
        head.insert(0, "NAMESPACE")
    lines: list[list[str]] = [head]
    for row in rows:
        vip = [row.name, ",".join(row.addresses) or "-", str(row.vrid or "-"), row.master_text()]
        if namespaces:
            vip.insert(0, row.namespace or "-")
        blank = [""] * len(vip)
        nodes = row.nodes or [NodeRow(name="-", state="-", reason="no agent has reported yet")]
        for i, node in enumerate(nodes):
            lines.append(
                [
                    *(vip if i == 0 else blank),
                    node.name,
                    _state(node, now),
                    _priority(node),
                    age(node.last_transition, now),
                    _reason(node, now),
                ]
            )
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[c]) for c, cell in enumerate(line)]
        out.append("   ".join(cells).rstrip())
    return "\n".join(out) + "\n"
