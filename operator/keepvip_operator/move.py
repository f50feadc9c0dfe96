"""A manual move (annotation ``keepvip.io/move-to: NODE``): may that node take the VIP, is it done (pure).

The agents do the moving: while the annotation names another node, each of
them drops the VirtualIP to priority 1 (``keepvip_agent.kube.vipglue``), so the
named node displaces the master without a gap (the VRRP core lets a backup
displace a master whose priority fell, whatever ``preempt`` says). The
operator judges the request and ends it: refused at once when the node
cannot take the VIP, done when that node's agent reports Master, refused
when it has not after :data:`TIMEOUT`. Either way the annotation is removed
and the outcome is the condition ``Moved`` and an Event.

``preempt: true`` VirtualIPs are refused: the preferred node would take the
VIP back as soon as the request ends. Cordon or ``keepvip drain`` its node
instead, which lasts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from keepvip_api.model import VirtualIP
from keepvip_api.placement import NodeView, judge
from keepvip_api.status import NodeStatus
from keepvip_operator.conditions import Cond

MOVED = "Moved"
TIMEOUT = 30.0
"""Seconds a move may take before it is refused (a handover takes about 3 adverts)."""


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["pending", "done", "refused"]
    message: str

    def condition(self) -> Cond:
        if self.outcome == "done":
            return Cond(MOVED, "True", "Moved", self.message)
        return Cond(MOVED, "False", "MoveRefused", self.message)


def verdict(
    target: str,
    vip: VirtualIP,
    *,
    nodes: Mapping[str, NodeView],
    entry: NodeStatus | None,
    master: str | None,
    waited: float,
) -> Verdict:
    """What to make of a request to move ``vip`` to ``target``, ``waited`` seconds after it
    was first seen; ``entry``: the target's live status entry, ``master``: the current one."""
    if master == target:
        return Verdict("done", f"moved to {target} on request")
    node = nodes.get(target)
    if node is None:
        return Verdict("refused", f"move to {target}: no such Node")
    placed = judge(node, vip.spec.node_selector, vip.spec.tolerations)
    if not placed.selected:
        return Verdict("refused", f"move to {target}: not placed there ({placed.reason})")
    if vip.spec.preempt:
        return Verdict(
            "refused",
            f"move to {target}: preempt is true, so the preferred node would take it back; "
            "cordon its node or run `keepvip drain` instead",
        )
    if node.maintenance is not None:
        return Verdict("refused", f"move to {target}: {node.maintenance}")
    if entry is None:
        return Verdict("refused", f"move to {target}: no live agent there runs this VirtualIP")
    if entry.state not in ("Backup", "Master"):
        why = "; ".join(entry.faults) or entry.reason or entry.state
        return Verdict("refused", f"move to {target}: its agent is {entry.state} ({why})")
    if waited > TIMEOUT:
        return Verdict(
            "refused", f"move to {target}: not master after {TIMEOUT:g}s (master: {master})"
        )
    return Verdict("pending", f"moving to {target}")
