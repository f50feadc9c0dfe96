"""Names shared by the agent and the operator, spelled once.

The operator reads what agents write (the split-brain fault text, the agent
pod label, the status entries each agent applies under its own field
manager) and both sides address the same Lease; a constant here keeps them
from drifting apart.
"""

from __future__ import annotations

AGENT_LABEL = "keepvip.io/virtualip"
"""Label on every agent pod: the VirtualIP it serves (peers are found by it)."""
ROLE_LABEL = "keepvip.io/role"
"""Label the agent puts on tracked pods: master or backup."""
SPLIT_BRAIN_FAULT = "split brain"
"""Fault name an agent reports while the Lease holder keeps it out of the election."""
OPERATOR_FIELD_MANAGER = "keepvip-operator"
"""Server-side apply field manager of everything the operator writes (status: master,
conditions, virtualRouterID, observedGeneration)."""


def agent_field_manager(node: str) -> str:
    """The field manager under which the agent on ``node`` applies its own ``status.nodes[]`` entry."""
    return f"keepvip-agent-{node}"


def lease_name(virtualip: str) -> str:
    """The coordination.k8s.io Lease that arbitrates split brain for one VirtualIP."""
    return f"keepvip-{virtualip}"
