"""The node agent's liveness: its node Lease, renewed every ``NODE_RENEW`` seconds, and the one
Lease watch of the agents' namespace.

The node Lease ``keepvip-node-<node>`` is the only periodic API write of a node
agent (it also carries the node's connected networks, for the operator's
judgement of network and broadcast addresses): status entries are written on change only, and the per-VirtualIP
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
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import ApiError, ListWatch
from keepvip_api.names import NODE_LEASE_DURATION, NODE_RENEW, node_lease_name
from keepvip_api.subnets import NETWORKS_ANNOTATION
from keepvip_api.times import micro_time

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
            paths.leases(self.namespace),
            self._on_leases,
            asyncio.get_running_loop(),
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


class NodeLease:
    """Create and renew ``keepvip-node-<node>`` every ``renew`` seconds; remember when it worked.

    Renewals have a thread of their own: behind hundreds of status writes in the
    shared worker threads (250 VirtualIPs changing at once, or at 100 ms adverts
    on a busy node) they came late, the operator judged the node dead and pruned
    its entries, and the agent wrote them all again. A renewal is one PUT of the
    object the last write returned (a GET only first and after a conflict), on a
    fixed cadence that does not drift with the time a call takes.
    """

    def __init__(self, kube: Kube, namespace: str, node: str, *, renew: float = NODE_RENEW) -> None:
        self.kube, self.namespace, self.node, self.renew = kube, namespace, node, renew
        self.name = node_lease_name(node)
        self.last_renewed = time.monotonic()
        """Monotonic time of the last renewal that went through (start counts as one)."""
        self.renewals = 0
        self.networks: str | None = None
        """The node's connected networks (keepvip_api.subnets), published as an annotation."""
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self._last: dict[str, Any] | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="node-lease")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
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
                self._last = None  # read it again next time
                if not self._warned:
                    logger.warning("cannot renew node lease %s: %s", self.name, exc or "timed out")
                    self._warned = True
            due = max(due + self.renew, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        run = functools.partial(self.kube.request, method, path, body)
        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    async def renew_once(self, *, again: bool = True) -> None:
        path = paths.lease(self.namespace, self.name)
        if self._last is None:
            try:
                self._last = await self._call("GET", path)
            except ApiError as exc:
                if exc.status != NOT_FOUND:
                    raise
                self._last = await self._call(
                    "POST", paths.leases(self.namespace), self._body(None)
                )
                return
        try:
            self._last = await self._call("PUT", path, self._body(self._last))
        except ApiError as exc:
            self._last = None
            if exc.status != CONFLICT or not again:
                raise
            await self.renew_once(again=False)  # changed under us (a hand edit): read, write

    def _body(self, last: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(time.time())
        spec = dict((last or {}).get("spec") or {})
        spec.setdefault("acquireTime", now)
        spec.update(
            holderIdentity=self.node, leaseDurationSeconds=NODE_LEASE_DURATION, renewTime=now
        )
        meta = dict(
            (last or {}).get("metadata") or {"name": self.name, "namespace": self.namespace}
        )
        if self.networks is not None:
            meta["annotations"] = {
                **(meta.get("annotations") or {}),
                NETWORKS_ANNOTATION: self.networks,
            }
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }
