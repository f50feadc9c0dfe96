"""One node's entry of ``status.nodes``, built from the runner's public surface.

The entry is keyed by node name; :mod:`.entries` applies it with server-side
apply under the field manager ``keepvip-agent-<node>`` when it changes, so
agents never overwrite each other and the operator's fields stay the
operator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keepvip_api.status import NodeStatus
from keepvip_api.times import micro_time

if TYPE_CHECKING:
    from keepvip_agent.runtime.instance import InstanceRunner


def node_entry(inst: InstanceRunner, now: float) -> NodeStatus:
    last = inst.transitions[-1] if inst.transitions else None
    return NodeStatus(
        name=inst.node,
        state=inst.state.value,
        configured_priority=inst.health.configured,
        effective_priority=inst.priority,
        faults=tuple(sorted(inst.faults)),
        demotions=demotions(inst) or None,
        heartbeat_time=micro_time(now),
        address=str(inst.source) if inst.source is not None else None,
        last_transition_time=micro_time(last.at) if last is not None else None,
        reason=last.reason[:1024] if last is not None else None,
    )


def demotions(inst: InstanceRunner) -> tuple[str, ...]:
    """The failing demote sources and their details (what lowered the effective priority)."""
    return tuple(
        sorted(
            f"{name}: {r.detail}"
            for name, r in inst.health.reports.items()
            if r is not None and not r.healthy and r.on_failure.action == "demote"
        )
    )
