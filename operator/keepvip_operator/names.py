"""Names and labels shared by the operator's objects and the agents that find them.

Everything the agent also reads (the node agent's labels, the node Lease
names, the status field managers) is spelled once in the API package
(:mod:`keepvip_api.names`) and re-exported here so the two sides cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip_api.crd import GROUP, KIND, PLURAL, VERSION
from keepvip_api.names import (
    AGENT_LABEL,
    AGENT_RBAC_LABEL,
    AGENT_RBAC_NAME,
    NODE_AGENT_NAME,
    NODE_AGENT_SELECTOR,
    OPERATOR_FIELD_MANAGER,
    ROLE_LABEL,
    node_lease_name,
    node_of_lease,
    selector_string,
)

__all__ = [
    "AGENT_LABEL",
    "AGENT_RBAC_LABEL",
    "AGENT_RBAC_NAME",
    "API_VERSION",
    "FIELD_MANAGER",
    "GROUP",
    "KIND",
    "NODE_AGENT_NAME",
    "NODE_AGENT_SELECTOR",
    "PLURAL",
    "ROLE_LABEL",
    "VERSION",
    "Target",
    "node_lease_name",
    "node_of_lease",
    "selector_string",
]

API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = OPERATOR_FIELD_MANAGER
"""Server-side apply field manager of everything the operator writes."""
NAME_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MAX_LABEL_VALUE = 63


@dataclass(frozen=True)
class Target:
    """The identity of one VirtualIP: where its objects go and who owns them."""

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


AGENT_OBJECT_LABELS: dict[str, str] = {NAME_LABEL: "keepvip-agent", MANAGED_BY_LABEL: FIELD_MANAGER}
"""Labels of every agent DaemonSet keepvip renders: the node agent's, and the per-VirtualIP
ones of keepvip before 0.2 (which the upgrade removes)."""


def agent_pods_selector() -> str:
    """The node agent pods (and their DaemonSet), as a label selector string."""
    return selector_string(NODE_AGENT_SELECTOR)


def agent_rbac_labels() -> dict[str, str]:
    """Labels of the per-namespace Roles and RoleBindings granted to the node agents."""
    return {MANAGED_BY_LABEL: FIELD_MANAGER, AGENT_RBAC_LABEL: "true"}
