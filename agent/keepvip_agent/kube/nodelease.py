"""The node agent's liveness: its node Lease, renewed every ``NODE_RENEW`` seconds, and the one
Lease watch of the agents' namespace.

The node Lease ``keepvip-node-<node>`` is the only periodic API write of a node
agent: status entries are written on change only, and the per-VirtualIP
split-brain Leases on transitions only. Everybody judges a node agent's
liveness from it (peers arbitrating split brain, the operator and ``keepvip
status`` through :func:`keepvip_api.status.node_alive`).

:class:`LeaseCache` is the one watch on Leases in the agents' namespace; it
serves both kinds, so no VirtualIP's arbitration reads the API per round.
``last_renewed`` (monotonic) is when this node's own renewal last went
through: ``fencing: strict`` fences on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from keepvip_agent.kube.api import ListWatch
from keepvip_api.names import NODE_LEASE_DURATION, NODE_RENEW, node_lease_name

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube

logger = logging.getLogger(__name__)
NOT_FOUND, CONFLICT = 404, 409


class LeaseCache:
    """Every Lease of the agents' namespace, by name, as last listed or watched."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.leases: dict[str, dict[str, Any]] = {}
        self.synced = False
        self._watch: ListWatch | None = None

    def start(self) -> None:
        self._watch = ListWatch(
            self.kube,
            "leases",
            self.kube.coordination.list_namespaced_lease,
            self._on_leases,
            asyncio.get_running_loop(),
            namespace=self.namespace,
        )
        self._watch.start()

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()

    def _on_leases(self, items: list[dict[str, Any]]) -> None:
        self.leases = {i["metadata"]["name"]: i for i in items}
        self.synced = True

    def get(self, name: str) -> dict[str, Any] | None:
        return self.leases.get(name)

    def node_renewal(self, node: str | None) -> object:
        """The holder node's node-Lease renewTime (opaque: compared for change only)."""
        if not node:
            return None
        lease = self.leases.get(node_lease_name(node))
        return ((lease or {}).get("spec") or {}).get("renewTime")


def lease_object(raw: dict[str, Any]) -> V1Lease:
    """A watched Lease (API dict) as the client's model, to write it back with its version."""
    meta, spec = raw.get("metadata") or {}, raw.get("spec") or {}
    return V1Lease(
        metadata=V1ObjectMeta(
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            resource_version=meta.get("resourceVersion"),
            annotations=meta.get("annotations"),
            labels=meta.get("labels"),
        ),
        spec=V1LeaseSpec(
            holder_identity=spec.get("holderIdentity"),
            lease_duration_seconds=spec.get("leaseDurationSeconds"),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            lease_transitions=spec.get("leaseTransitions"),
        ),
    )


class NodeLease:
    """Create and renew ``keepvip-node-<node>`` every ``renew`` seconds; remember when it worked."""

    def __init__(self, kube: Kube, namespace: str, node: str, *, renew: float = NODE_RENEW) -> None:
        self.kube, self.namespace, self.node, self.renew = kube, namespace, node, renew
        self.name = node_lease_name(node)
        self.last_renewed = time.monotonic()
        """Monotonic time of the last renewal that went through (start counts as one)."""
        self.renewals = 0
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(3 * self.renew):
                    await self.renew_once()
                self.last_renewed = time.monotonic()
                self.renewals += 1
                if self._warned:
                    logger.info("node lease %s renewed again", self.name)
                self._warned = False
            except Exception as exc:
                if not self._warned:
                    logger.warning("cannot renew node lease %s: %s", self.name, exc or "timed out")
                    self._warned = True
            await asyncio.sleep(self.renew)

    async def renew_once(self) -> None:
        now = datetime.now(UTC)
        coord = self.kube.coordination
        try:
            lease = await self.kube.call(coord.read_namespaced_lease, self.name, self.namespace)
        except ApiException as exc:
            if exc.status != NOT_FOUND:
                raise
            body = V1Lease(
                metadata=V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=V1LeaseSpec(
                    holder_identity=self.node,
                    lease_duration_seconds=NODE_LEASE_DURATION,
                    acquire_time=now,
                    renew_time=now,
                ),
            )
            await self.kube.call(coord.create_namespaced_lease, self.namespace, body)
            return
        lease.spec.holder_identity = self.node
        lease.spec.lease_duration_seconds = NODE_LEASE_DURATION
        lease.spec.renew_time = now
        await self.kube.call(coord.replace_namespaced_lease, self.name, self.namespace, lease)
