"""Names and labels shared by the operator's objects and the agent that finds them.

The agent finds its peers by the label ``keepvip.io/virtualip=<name>`` and
holds the Lease ``keepvip-<name>``; both are spelled once in the API package
(:mod:`keepvip_api.names`) and re-exported here so the two sides cannot
drift apart. Label values
are at most 63 characters, so a VirtualIP whose name is longer cannot label
its agents: :func:`name_problem` reports that as a spec problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip_api.crd import GROUP, KIND, PLURAL, VERSION
from keepvip_api.names import AGENT_LABEL, OPERATOR_FIELD_MANAGER, ROLE_LABEL, lease_name

__all__ = [
    "AGENT_LABEL",
    "API_VERSION",
    "FIELD_MANAGER",
    "GROUP",
    "KIND",
    "PLURAL",
    "ROLE_LABEL",
    "VERSION",
    "Target",
    "lease_name",
]

API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = OPERATOR_FIELD_MANAGER
"""Server-side apply field manager of everything the operator writes."""
APP_NAME = "keepvip-agent"
NAME_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VIP_NAMESPACE_LABEL = "keepvip.io/virtualip-namespace"
OWNER_UID_LABEL = "keepvip.io/owner-uid"
"""On objects in other namespaces (not garbage-collectable): the VirtualIP's uid, for cleanup."""
METRICS_PORT_ANNOTATION = "keepvip.io/metrics-port"
"""On the DaemonSet: the metrics port allocated to this VirtualIP's agents."""
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


def child_name(name: str) -> str:
    """ServiceAccount, Role, RoleBinding and DaemonSet of a VirtualIP (its namespace)."""
    return f"keepvip-{name}"


def cross_namespace_name(t: Target) -> str:
    """Role and RoleBinding in another namespace; a namespace has no dot, so this is unique."""
    return f"keepvip-{t.namespace}.{t.name}"


def agent_selector(name: str) -> dict[str, str]:
    """The DaemonSet's selector: immutable, so never extended by settings."""
    return {NAME_LABEL: APP_NAME, AGENT_LABEL: name}


def common_labels(name: str) -> dict[str, str]:
    return {**agent_selector(name), MANAGED_BY_LABEL: FIELD_MANAGER}


def agent_pods_selector() -> str:
    """Every agent pod the operator made, as a label selector string."""
    return f"{NAME_LABEL}={APP_NAME},{MANAGED_BY_LABEL}={FIELD_MANAGER}"


def name_problem(name: str) -> str | None:
    if len(name) > MAX_LABEL_VALUE:
        return (
            f"metadata.name: at most {MAX_LABEL_VALUE} characters in Kubernetes mode "
            f"(it labels the agent pods), got {len(name)}"
        )
    return None
