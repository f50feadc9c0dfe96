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


# -- the node agent (one DaemonSet, one agent per node, every VirtualIP) ----------------------

NODE_AGENT_NAME = "keepvip-agent"
"""The node agents' DaemonSet and ServiceAccount, in the agents' namespace."""
NODE_AGENT_SELECTOR: dict[str, str] = {
    "app.kubernetes.io/name": "keepvip-agent",
    "app.kubernetes.io/managed-by": "keepvip-operator",
    "app.kubernetes.io/component": "node-agent",
}
"""Labels of every node agent pod; the DaemonSet's selector is exactly these (peers are found by them)."""
NODE_AGENT_METRICS_PORT = 9640
"""The node agent's default metrics port, outside the old per-VirtualIP range 9650..10161."""
NODE_RENEW = 2.0
"""Seconds between renewals of an agent's node Lease: its liveness, the only periodic write."""
NODE_LEASE_DURATION = 6
"""The node Lease's leaseDurationSeconds (three renewals)."""
VIP_LEASE_NAMESPACE_ANNOTATION = "keepvip.io/virtualip-namespace"
VIP_LEASE_NAME_ANNOTATION = "keepvip.io/virtualip-name"
"""Annotations on a per-VirtualIP split-brain Lease naming its VirtualIP (names can be too long
for label values)."""
_LEASE_PREFIX_ROOM = 63 - len("keepvip-vip-") - 1 - 10


def node_lease_name(node: str) -> str:
    """The node agent's liveness Lease (coordination.k8s.io, in the agents' namespace)."""
    return f"{NODE_LEASE_PREFIX}{node}"


def vip_lease_name(namespace: str, name: str) -> str:
    """The split-brain Lease of one VirtualIP in the agents' namespace: readable, unique, <= 63.

    ``keepvip-vip-`` + the start of ``<namespace>-<name>`` + ``-`` + 10 hex digits of a hash of
    both (the hash keeps two VirtualIPs whose readable parts collide or are cut apart).
    """
    import hashlib

    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:10]
    readable = f"{namespace}-{name}"[:_LEASE_PREFIX_ROOM].rstrip("-.")
    return f"keepvip-vip-{readable}-{digest}"


NODE_LEASE_PREFIX = "keepvip-node-"
AGENT_RBAC_NAME = "keepvip-agent-tracking"
"""The per-namespace Role and RoleBinding the operator grants the node agents. Not
``keepvip-agent``: that is the chart's static Role in the agents' namespace, where
VirtualIPs may live too."""
AGENT_RBAC_LABEL = "keepvip.io/agent-rbac"
"""On the per-namespace Roles and RoleBindings the operator grants the node agents ("true")."""


def node_of_lease(lease: str) -> str | None:
    """The node a node Lease name (:func:`node_lease_name`) stands for; None for any other Lease."""
    return lease[len(NODE_LEASE_PREFIX) :] if lease.startswith(NODE_LEASE_PREFIX) else None


def selector_string(labels: dict[str, str]) -> str:
    """``{a: 1, b: 2}`` -> ``a=1,b=2``, a label selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


MOVE_ANNOTATION = "keepvip.io/move-to"
"""A one-shot request to hand the VIP over to the node it names (``keepvip move``): the agents
act on it, the operator judges it and removes it when done or refused."""
