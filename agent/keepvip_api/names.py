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


# -- the node agent (one per node, every VirtualIP: issue 12) ---------------------------------

NODE_AGENT_NAME = "keepvip-agent"
"""The agent DaemonSet, its ServiceAccount and the agents' Roles: one name everywhere."""
NODE_AGENT_SELECTOR: dict[str, str] = {
    "app.kubernetes.io/name": "keepvip-agent",
    "app.kubernetes.io/managed-by": OPERATOR_FIELD_MANAGER,
    "app.kubernetes.io/component": "node-agent",
}
"""Labels of the node agent pods, exactly the DaemonSet's (immutable) selector."""
AGENT_RBAC_NAME = "keepvip-agent-tracking"
"""The per-namespace Role and RoleBinding the operator grants the node agents. Not
``keepvip-agent``: that is the chart's static Role in the agents' namespace, where
VirtualIPs may live too."""
AGENT_RBAC_LABEL = "keepvip.io/agent-rbac"
"""On the per-namespace Roles and RoleBindings the operator grants the node agents ("true")."""
NODE_LEASE_PREFIX = "keepvip-node-"
AGENT_METRICS_PORT = 9640
"""The node agent's one port (/metrics, /healthz, /readyz, /status): below the old
per-VirtualIP range 9650..10161, so an upgrade never needs a port an old agent holds."""


def node_lease_name(node: str) -> str:
    """The Lease (agents' namespace) the agent on ``node`` renews: its liveness."""
    return f"{NODE_LEASE_PREFIX}{node}"


def node_of_lease(lease: str) -> str | None:
    """The node a node Lease name stands for; None for any other Lease."""
    return lease[len(NODE_LEASE_PREFIX) :] if lease.startswith(NODE_LEASE_PREFIX) else None


def selector_string(labels: dict[str, str]) -> str:
    """``{a: 1, b: 2}`` -> ``a=1,b=2``, a label selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
