"""The ``keepvip status`` table: one line per node of each VirtualIP, kubectl-style columns.

The VirtualIP's own columns (name, addresses, VRID, master) appear on its
first line only, so a glance down the MASTER column finds every VIP's
holder and the lines below show who would take over, at which priority.
Ages are relative to ``now``, which the caller passes in (tests pin it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from keepvip_tools.status.model import NodeRow, VipRow

__all__ = ["age", "table"]

MAX_REASON = 80


def age(then: datetime | None, now: datetime) -> str:
    """A duration the way kubectl prints ages: ``95s``, ``5m30s``, ``42m``, ``3h10m``, ``2d``."""
    if then is None:
        return "-"
    s = max(0, int((now - then).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def _priority(node: NodeRow) -> str:
    eff, conf = node.effective_priority, node.configured_priority
    if eff is None:
        return "-" if conf is None else str(conf)
    if conf is not None and conf != eff:
        return f"{eff} ({conf})"
    return str(eff)


def _reason(node: NodeRow, now: datetime) -> str:
    parts = []
    if node.stale(now) and node.liveness_known:
        last = f"for {age(node.renewed, now)}" if node.renewed else "(no node Lease)"
        parts.append(f"node agent silent {last}")
    elif node.stale(now):
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
        "LAST TRANSITION",
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
