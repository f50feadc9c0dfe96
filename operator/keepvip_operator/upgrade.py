"""Upgrading from the per-VirtualIP layout of keepvip before 0.2 (pure decisions).

Before 0.2 the operator ran one DaemonSet (and a ServiceAccount, Role and
RoleBinding, all named ``keepvip-<name>``) per VirtualIP, in the VirtualIP's
namespace. Those old agents and the node agents cannot hear each other: the
old ones accept adverts only from the host IPs of their own DaemonSet's pods.
So a VirtualIP changes hands as a whole, never with two agents of one node
advertising its VRID, and moves once:

1. ``Upgrading=True`` is written on every VirtualIP that old agents still
   serve, and the node agents skip a VirtualIP while it says so
   (``keepvip_agent.kube.selection``). The node agent DaemonSet is applied
   only once every such VirtualIP carries it (:func:`node_agents_may_start`).
2. Once the node agent DaemonSet has a Ready pod on every node it is
   scheduled to, the old DaemonSet is deleted with orphan propagation (its
   pods stay), then its pods on the backups are deleted, and the pod on the
   master (``status.master``) last (:func:`next_deletions`). Deleting the
   DaemonSet with its pods at once would let each dying master hand the VIP
   to a backup that is about to die too: several moves instead of one.
3. When no old pod is left the condition is dropped: the node agents start
   the VirtualIP and elect a master, so the VIP moves once, after a
   master-down interval. The old Role and RoleBinding are deleted; the old
   ServiceAccount and split-brain Lease stay until the VirtualIP is deleted
   (owned by it, they grant nothing once the RoleBinding is gone, and the
   operator has no right to delete ServiceAccounts or Leases).

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
class OldObject:
    """An old per-VirtualIP DaemonSet or agent pod, as the operator's indices show it."""

    kind: str
    """``DaemonSet`` or ``Pod``."""
    namespace: str
    name: str
    virtualip: str
    """The VirtualIP it serves (its label ``keepvip.io/virtualip``)."""
    node: str | None = None
    """A pod's node."""
    deleting: bool = False

    @property
    def key(self) -> str:
        """The VirtualIP's key (namespace/name)."""
        return f"{self.namespace}/{self.virtualip}"


def by_virtualip(objects: Iterable[OldObject]) -> dict[str, tuple[OldObject, ...]]:
    out: dict[str, list[OldObject]] = {}
    for obj in objects:
        out.setdefault(obj.key, []).append(obj)
    return {k: tuple(sorted(v, key=lambda o: (o.kind, o.name))) for k, v in out.items()}


def old_object_name(virtualip: str) -> str:
    """The old DaemonSet, ServiceAccount, Role and RoleBinding of a VirtualIP."""
    return f"keepvip-{virtualip}"


def condition(old: Iterable[OldObject]) -> Cond:
    pods = sorted(f"{o.name} on {o.node}" for o in old if o.kind == "Pod")
    what = f"pods {', '.join(pods)}" if pods else "its DaemonSet"
    return Cond(
        UPGRADING,
        "True",
        REASON,
        f"served by the per-VirtualIP agents of an earlier keepvip ({what}); the node agents "
        "take it over once they are gone",
    )


def marked(status: Mapping[str, object]) -> bool:
    """The status says ``Upgrading=True`` (the node agents leave the VirtualIP alone)."""
    conditions = status.get("conditions") or ()
    assert isinstance(conditions, Iterable)
    return any(
        isinstance(c, Mapping) and c.get("type") == UPGRADING and c.get("status") == "True"
        for c in conditions
    )


def node_agents_may_start(
    old: Mapping[str, object], marked_keys: Iterable[str], existing: Iterable[str]
) -> bool:
    """Every existing VirtualIP that old agents still serve is marked ``Upgrading``.

    ``marked_keys``: VirtualIPs whose status (as written or observed) says so;
    ``existing``: the VirtualIPs there are (old objects of a VirtualIP that is
    gone are the garbage collector's, not a reason to wait).
    """
    return not ({k for k in old if k in set(existing)} - set(marked_keys))


def next_deletions(
    old: tuple[OldObject, ...], master: str | None, *, node_agents_ready: bool, is_marked: bool
) -> list[OldObject]:
    """What to delete now for one VirtualIP: the DaemonSet (orphaning its pods), the backups'
    pods, the master's pod last; nothing before the node agents are Ready and it is marked."""
    if not (node_agents_ready and is_marked):
        return []
    daemonsets = [o for o in old if o.kind == "DaemonSet"]
    if daemonsets:
        return [o for o in daemonsets if not o.deleting]
    pods = [o for o in old if o.kind == "Pod"]
    backups = [o for o in pods if o.node != master]
    if backups:
        return [o for o in backups if not o.deleting]
    return [o for o in pods if not o.deleting]
