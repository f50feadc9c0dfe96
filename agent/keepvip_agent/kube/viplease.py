"""Split-brain arbitration for the node agent: a per-VirtualIP Lease written on transitions only.

Same rules as the per-VirtualIP agent (:class:`~keepvip_agent.kube.arbiter.Arbiter`,
unchanged), other inputs. The Lease ``keepvip-vip-<hash>`` lives in the
agents' namespace and says only *who* holds the VIP: it is created or taken
over when this node becomes master and released when it leaves master, and
never renewed. Whether its holder is alive is read from the holder's **node
Lease** renewals (``keepvip-node-<holder>``, renewed every 2 s by that node's
agent for all its VirtualIPs), so the steady-state cost of arbitration does
not grow with the number of VirtualIPs. Both kinds of Lease come from one
watch (:class:`~keepvip_agent.kube.nodelease.LeaseCache`): a round reads no
API. ``fencing: strict`` fences on this node's own node-Lease renewals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keepvip_agent.kube.arbiter import LeaseView
from keepvip_agent.kube.lease import LeaseArbiter
from keepvip_agent.kube.nodelease import LeaseCache, NodeLease
from keepvip_api.names import (
    NODE_RENEW,
    VIP_LEASE_NAME_ANNOTATION,
    VIP_LEASE_NAMESPACE_ANNOTATION,
    vip_lease_name,
)

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube


class VipLease(LeaseArbiter):
    def __init__(
        self,
        kube: Kube,
        agent_namespace: str,
        vip_namespace: str,
        name: str,
        node: str,
        cache: LeaseCache,
        node_lease: NodeLease,
    ) -> None:
        super().__init__(
            kube,
            agent_namespace,
            name,
            node,
            renew=NODE_RENEW,
            lease=vip_lease_name(vip_namespace, name),
        )
        self.cache, self.node_lease = cache, node_lease
        self.annotations = {
            VIP_LEASE_NAMESPACE_ANNOTATION: vip_namespace,
            VIP_LEASE_NAME_ANNOTATION: name,
        }

    async def _read(self) -> Any:
        return self.cache.get(self.lease_name)

    def _view(self, lease: Any) -> LeaseView | None:
        if lease is None:
            return None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        return LeaseView(holder, self.cache.node_renewal(holder))

    async def _renew(self, lease: Any) -> None:
        """Holding it is enough: liveness is the node Lease's business."""

    def _api_ok(self) -> float:
        return self.node_lease.last_renewed
