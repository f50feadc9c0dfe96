"""Does a VirtualIP's placement select a node? Kubernetes' own rule, judged without a scheduler (pure).

With one agent per node carrying every VirtualIP, placement is no longer the
scheduler's business: the agent judges each VirtualIP's ``nodeSelector`` and
``tolerations`` against its own Node, and the operator judges them against
every Node to say when a VirtualIP selects none. Both call :func:`judge`, so
the two never disagree.

The rule is the one a DaemonSet pod with that selector and those tolerations
would meet: every selector entry equals a label, and every ``NoSchedule`` or
``NoExecute`` taint is tolerated (``PreferNoSchedule`` never excludes). The
tolerations the DaemonSet controller adds to every daemon pod (and, for
host-network pods, ``network-unavailable``) count as given, so a cordon
(``node.kubernetes.io/unschedulable``) or a node that is not Ready changes
nothing here: what cordon means for a VIP is decided apart from placement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keepvip_api.cluster import Toleration

EXCLUDING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects that keep a pod off a node (PreferNoSchedule only discourages)."""

DAEMON_TOLERATIONS: tuple[Toleration, ...] = tuple(
    Toleration.model_validate({"key": key, "operator": "Exists", "effect": effect})
    for key, effect in (
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/network-unavailable", "NoSchedule"),
    )
)
"""What the DaemonSet controller adds to a host-network daemon pod's tolerations."""


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True)
class NodeView:
    """The two things of a Node that placement reads (and whether it is in maintenance)."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...] = ()
    maintenance: str | None = None
    """Why the node is in maintenance (:func:`maintenance`); not a placement input."""

    @classmethod
    def from_api_object(cls, node: Mapping[str, Any]) -> NodeView:
        meta = node.get("metadata") or {}
        taints = tuple(
            Taint(key=t.get("key", ""), effect=t.get("effect", ""), value=t.get("value") or "")
            for t in (node.get("spec") or {}).get("taints") or ()
        )
        return cls(
            name=meta.get("name", ""),
            labels=meta.get("labels") or {},
            taints=taints,
            maintenance=maintenance(node),
        )


@dataclass(frozen=True)
class Placement:
    selected: bool
    reason: str
    """Why not, naming the label or the taint; empty when selected."""


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Kubernetes' ToleratesTaint: empty effect or key match any; Exists ignores the value."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    return (toleration.value or "") == taint.value


def judge(
    node: NodeView, node_selector: Mapping[str, str], tolerations: Iterable[Toleration]
) -> Placement:
    """Whether a VirtualIP with this selector and these tolerations belongs on ``node``."""
    for key, want in sorted(node_selector.items()):
        have = node.labels.get(key)
        if have != want:
            found = "absent" if have is None else f"{have!r}"
            return Placement(False, f"nodeSelector {key}={want!r} does not match ({found})")
    given = (*tolerations, *DAEMON_TOLERATIONS)
    for taint in node.taints:
        if taint.effect in EXCLUDING_EFFECTS and not any(tolerates(t, taint) for t in given):
            shown = f"{taint.key}={taint.value}" if taint.value else taint.key
            return Placement(False, f"taint {shown}:{taint.effect} is not tolerated")
    return Placement(True, "")


def selected_nodes(
    nodes: Iterable[NodeView], node_selector: Mapping[str, str], tolerations: Iterable[Toleration]
) -> list[str]:
    """Names of the nodes the placement selects, sorted."""
    given = tuple(tolerations)
    return sorted(n.name for n in nodes if judge(n, node_selector, given).selected)


EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
"""The well-known label that keeps a node out of load balancers (kube-proxy, cloud providers)."""


MAINTENANCE_LABEL = "keepvip.io/maintenance"
"""Set by ``keepvip drain NODE``: keepvip's maintenance of a node, without cordoning it."""


def maintenance(node: Mapping[str, Any]) -> str | None:
    """Why a Node is in maintenance (cordoned, drained for keepvip, excluded from load
    balancers), or None.

    A VirtualIP with ``onCordon: yield`` hands over from such a node and keeps it as a
    backup of last resort; placement is not changed by it (a DaemonSet pod tolerates the
    cordon's taint), so the node's agent keeps its place in the election.
    """
    if (node.get("spec") or {}).get("unschedulable"):
        return "the node is cordoned (spec.unschedulable)"
    labels = (node.get("metadata") or {}).get("labels") or {}
    if MAINTENANCE_LABEL in labels:
        return f"the node is drained for keepvip ({MAINTENANCE_LABEL}, `keepvip undrain` ends it)"
    if EXCLUDE_LABEL in labels:
        return f"the node is labelled {EXCLUDE_LABEL}"
    return None
