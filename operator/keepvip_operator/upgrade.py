"""Upgrading from the per-VirtualIP layout of keepvip before 0.2 (pure decisions).

Before 0.2 the operator ran one DaemonSet (and a ServiceAccount, Role and
RoleBinding, all named ``keepvip-<name>``) per VirtualIP, in the VirtualIP's
namespace. Those old agents and the node agents cannot hear each other: the
old ones accept adverts only from the host IPs of their own DaemonSet's pods.
So a VirtualIP changes hands as a whole, and never with two agents of one
node advertising its VRID:

1. ``Upgrading=True`` is written on every VirtualIP that still has an old
   DaemonSet, and the node agents skip a VirtualIP while it says so
   (``keepvip_agent.kube.selection``). The node agent DaemonSet is applied
   only once every such VirtualIP carries it (:func:`node_agents_may_start`).
2. Once the node agent DaemonSet has a Ready pod on every node it is
   scheduled to, the old DaemonSets are deleted with foreground propagation:
   the DaemonSet object stays until its pods are gone, so its disappearance
   means no old agent of that VirtualIP advertises any more.
3. Then the condition is dropped (the node agents start the VirtualIP and
   elect a master, so the VIP moves once, after a master-down interval) and
   the old Role and RoleBinding are deleted. The old ServiceAccount and split
   brain Lease stay until the VirtualIP is deleted (they are owned by it and
   grant nothing once the RoleBinding is gone; the operator has no right to
   delete ServiceAccounts or Leases outside its own).

The old agents' port range (9650 upward) never overlaps the node agent's
port (9640), so old and new pods of one node never need the same host port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keepvip_operator.conditions import Cond

UPGRADING = "Upgrading"
REASON = "PerVirtualIPAgents"
VIRTUALIP_LABEL = "keepvip.io/virtualip"
"""Label of the old per-VirtualIP objects: the VirtualIP's name."""
OWNER_UID_LABEL = "keepvip.io/owner-uid"
"""Label of the old cross-namespace Role and RoleBinding: the VirtualIP's uid."""


@dataclass(frozen=True)
class LegacyAgents:
    """An old per-VirtualIP DaemonSet, as the operator's index shows it."""

    namespace: str
    name: str
    """The DaemonSet's name (``keepvip-<virtualip>``)."""
    virtualip: str
    """The VirtualIP it serves (its label ``keepvip.io/virtualip``)."""
    deleting: bool

    @property
    def key(self) -> str:
        """The VirtualIP's key (namespace/name)."""
        return f"{self.namespace}/{self.virtualip}"


def old_object_name(virtualip: str) -> str:
    """The old DaemonSet, ServiceAccount, Role and RoleBinding of a VirtualIP."""
    return f"keepvip-{virtualip}"


def condition(legacy: LegacyAgents) -> Cond:
    state = "being removed" if legacy.deleting else "still running"
    return Cond(
        UPGRADING,
        "True",
        REASON,
        f"the per-VirtualIP agents of an earlier keepvip (DaemonSet {legacy.namespace}/"
        f"{legacy.name}) are {state}; the node agents take this VirtualIP over once they are gone",
    )


def marked(status: Mapping[str, object]) -> bool:
    """The status says ``Upgrading=True`` (the node agents leave the VirtualIP alone)."""
    for c in status.get("conditions") or ():  # type: ignore[attr-defined]
        if isinstance(c, Mapping) and c.get("type") == UPGRADING and c.get("status") == "True":
            return True
    return False


def node_agents_may_start(
    legacy: Mapping[str, LegacyAgents], marked_keys: Iterable[str], existing: Iterable[str]
) -> bool:
    """Every existing VirtualIP that still has old agents is marked ``Upgrading``.

    ``marked_keys``: VirtualIPs whose status (as written or observed) says so;
    ``existing``: the VirtualIPs there are (an old DaemonSet of a VirtualIP that
    is gone is the garbage collector's, not a reason to wait).
    """
    waiting = {k for k in legacy if k in set(existing)} - set(marked_keys)
    return not waiting


def to_delete(
    legacy: Mapping[str, LegacyAgents], marked_keys: Iterable[str], node_agents_ready: bool
) -> list[LegacyAgents]:
    """The old DaemonSets to delete now: once the node agents are Ready everywhere, marked ones."""
    if not node_agents_ready:
        return []
    done = set(marked_keys)
    return [x for k, x in sorted(legacy.items()) if not x.deleting and k in done]
