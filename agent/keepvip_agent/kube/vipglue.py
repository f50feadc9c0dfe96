"""One VirtualIP on the node agent: the glue between its instance and the cluster.

A :class:`VipGlue` exists while the node controller wants the VirtualIP on
this node. It wires the instance the :class:`~keepvip_agent.runtime.agent.Agent`
creates for it (peers, tracked-pod readiness, fronted Services, the role
label), owns its status entry (:class:`~keepvip_agent.kube.entries.EntryWriter`,
on change only) and its split-brain Lease (:class:`~keepvip_agent.kube.viplease.VipLease`).
It holds no watch of its own: it subscribes to the node's shared ones. The
instance can be replaced under it (a spec change the runner cannot apply in
place), so everything goes through ``self.inst``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.endpoints import judge
from keepvip_agent.kube.entries import EntryWriter, fault_entry
from keepvip_agent.kube.pods import ROLE_LABEL, readiness, selector_matches
from keepvip_agent.kube.rest import MERGE_PATCH
from keepvip_agent.kube.shared import PODS, SERVICES, SLICES, SharedWatches
from keepvip_agent.kube.status import node_entry
from keepvip_agent.kube.viplease import VipLease
from keepvip_agent.runtime.instance import InstanceRunner, TransitionRecord
from keepvip_agent.vrrp.packet import IPAddress
from keepvip_agent.vrrp.router import State
from keepvip_api.cluster import OnFailure, ServiceRef, TrackPods
from keepvip_api.model import VirtualIP
from keepvip_api.status import NodeStatus

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube
    from keepvip_agent.kube.nodelease import LeaseCache, NodeLease

logger = logging.getLogger(__name__)
TRACK = "trackPods"
SERVICE = "serviceRef"
CORDON = "onCordon"
CORDON_DEMOTE = OnFailure(action="demote", weight=254)
"""Down to priority 1 (a health board never goes below it): a backup of last resort."""


class VipGlue:
    def __init__(
        self,
        kube: Kube,
        vip: VirtualIP,
        node: str,
        *,
        agent_namespace: str,
        watches: SharedWatches,
        leases: LeaseCache,
        node_lease: NodeLease,
        problem: Callable[[str], str | None],
        peers: Callable[[int], frozenset[IPAddress] | None],
        address_of: Callable[[str, int], IPAddress | None],
        maintenance: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.kube, self.vip, self.node = kube, vip, node
        self.namespace, self.name = vip.metadata.namespace or "default", vip.metadata.name
        self.watches = watches
        self._problem, self._peers, self._address_of = problem, peers, address_of
        self._maintenance = maintenance
        self._move_to: str | None = None
        self.inst: InstanceRunner | None = None
        self.entries = EntryWriter(kube, self.namespace, self.name, node, self._entry)
        self.lease = VipLease(
            kube, agent_namespace, self.namespace, self.name, node, leases, node_lease
        )
        self.lease.holder_address = self._holder_address
        self.lease.fencing = vip.spec.fencing
        self._track: TrackPods | None = None
        self._track_token: int | None = None
        self._pods: list[dict[str, Any]] = []
        self._ref: ServiceRef | None = None
        self._service_tokens: list[int] = []
        self._services: list[dict[str, Any]] | None = None
        self._slices: list[dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self.update(self.vip)
        self.entries.start()
        self.lease.start()

    async def stop(self, *, withdraw: bool) -> None:
        """The VirtualIP leaves this node (``withdraw``: remove our entry) or the agent stops."""
        self._follow_tracked_pods(None)
        self._follow_services(None)
        await self.lease.stop()
        await self.entries.stop(withdraw=withdraw)
        for t in list(self._tasks):
            t.cancel()

    def update(self, vip: VirtualIP) -> None:
        """A new valid spec: follow its pods and Services (the Agent reconfigures the instance)."""
        self.vip = vip
        self.lease.fencing = vip.spec.fencing
        self._follow_tracked_pods(vip.spec.track_pods)
        ref = vip.spec.service_ref
        self._follow_services(ref if ref is not None and ref.track_endpoints else None)
        self.report_cordon()
        self.entries.changed()

    def report_cordon(self) -> None:
        """With ``onCordon: yield``, a node in maintenance drops to priority 1 (the last resort).

        The VRRP core lets any backup displace a master whose priority fell below what it
        advertised before, whatever ``preempt`` says, and the master keeps the VIP until the
        new one's first advertisement: a handover without a gap, and the way back after
        uncordon is the usual preempt rule.
        """
        inst = self.inst
        if inst is None:
            return
        moving = self._move_to not in (None, self.node)
        if self.vip.spec.on_cordon != "yield" and not moving:
            inst.health.forget(CORDON)
            return
        reason = self._maintenance() if self.vip.spec.on_cordon == "yield" else None
        if reason is None and self._move_to not in (None, self.node):
            reason = f"moving to {self._move_to} on request"
        inst.health.report(CORDON, reason is None, CORDON_DEMOTE, reason or "")

    def move_to(self, target: str | None) -> None:
        """A manual move (annotation ``keepvip.io/move-to``): every node but ``target`` yields
        as under a cordon, so ``target`` displaces the master without a gap (even with
        ``onCordon: ignore``: the request is explicit)."""
        if target != self._move_to:
            self._move_to = target
            self.report_cordon()

    # -- the status entry --------------------------------------------------------------------

    def _entry(self, now: float) -> NodeStatus | None:
        inst = self.inst
        if inst is not None:
            if inst.state is State.INITIALIZE and self.entries.writes == 0:
                # A new instance, about to start: its first entry says Backup (or Master)
                # a moment later. Writing Initialize first cost one more write on this
                # object (and one more status write of the operator's) in the path from a
                # new VirtualIP to status.master. A stopping instance's Initialize is written.
                return None
            return node_entry(inst, now)
        problem = self._problem(self.vip.key)
        if problem is None:
            return None  # starting: nothing to say yet
        fault, _, _ = problem.partition(";")
        return fault_entry(self.node, fault.strip(), problem, now)

    # -- instance wiring ---------------------------------------------------------------------

    def wire(self, inst: InstanceRunner) -> None:
        self.inst = inst
        self.lease.inst = inst
        inst.add_listener(self._on_transition)
        self.push_peers()
        if self._track is not None:
            inst.health.expect(TRACK)
            self._report_readiness()
        if self._ref is not None:
            inst.health.expect(SERVICE)
            self._report_service()
        self.report_cordon()
        self.entries.changed()

    def unwire(self) -> None:
        self.inst = None
        self.lease.inst = None
        self.entries.changed()

    def push_peers(self) -> None:
        if self.inst is not None:
            self.inst.set_peers(self._peers(self.inst.family))

    def _holder_address(self, node: str) -> IPAddress | None:
        return self._address_of(node, self.inst.family) if self.inst is not None else None

    def _on_transition(self, inst: InstanceRunner, record: TransitionRecord) -> None:
        if inst is not self.inst:
            return
        self.entries.changed()
        self._label_roles()
        if record.old is State.MASTER:
            self.lease.left_master()

    # -- tracked pods (the namespace's shared pod watch, filtered here) ------------------------

    def _follow_tracked_pods(self, track: TrackPods | None) -> None:
        if track == self._track:
            return
        if self._track_token is not None:
            self.watches.unsubscribe(self._track_token)
            self._track_token = None
        self._track, self._pods = track, []
        if self.inst is not None:
            if track is None:
                self.inst.health.forget(TRACK)
            else:
                self.inst.health.expect(TRACK)
        if track is not None:
            ns = track.namespace or self.namespace
            self._track_token = self.watches.subscribe(PODS, ns, self._on_pods)

    def _on_pods(self, pods: list[dict[str, Any]]) -> None:
        track = self._track
        if track is None:
            return
        self._pods = [
            p
            for p in pods
            if selector_matches(track.selector, (p.get("metadata") or {}).get("labels") or {})
        ]
        self._report_readiness()
        self._label_roles()

    def _report_readiness(self) -> None:
        inst, track = self.inst, self._track
        if inst is None or track is None or self._track_token is None:
            return
        healthy, detail = readiness(self._pods, self.node)
        inst.health.report(TRACK, healthy, track.on_failure, detail)

    def _label_roles(self) -> None:
        inst, track = self.inst, self._track
        if inst is None or track is None or not track.role_label:
            return
        role = "master" if inst.state is State.MASTER else "backup"
        for pod in self._pods:
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(ROLE_LABEL) != role:
                task = asyncio.get_running_loop().create_task(
                    self._label(meta["namespace"], meta["name"], role)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _label(self, namespace: str, name: str, role: str) -> None:
        try:
            await self.kube.call(
                "PATCH",
                paths.pod(namespace, name),
                {"metadata": {"labels": {ROLE_LABEL: role}}},
                content_type=MERGE_PATCH,
            )
        except Exception as exc:
            logger.warning(
                "cannot label pod %s/%s %s=%s: %s", namespace, name, ROLE_LABEL, role, exc
            )

    # -- fronted Services (the namespace's shared Service and EndpointSlice watches) ------------

    def _follow_services(self, ref: ServiceRef | None) -> None:
        if ref == self._ref:
            return
        for token in self._service_tokens:
            self.watches.unsubscribe(token)
        self._service_tokens, self._ref = [], ref
        self._services, self._slices = None, None
        if self.inst is not None:
            if ref is None:
                self.inst.health.forget(SERVICE)
            else:
                self.inst.health.expect(SERVICE)
        if ref is not None:
            self._service_tokens = [
                self.watches.subscribe(SERVICES, self.namespace, self._on_services),
                self.watches.subscribe(SLICES, self.namespace, self._on_slices),
            ]

    def _on_services(self, items: list[dict[str, Any]]) -> None:
        self._services = items
        self._report_service()

    def _on_slices(self, items: list[dict[str, Any]]) -> None:
        self._slices = items
        self._report_service()

    def _report_service(self) -> None:
        inst, ref = self.inst, self._ref
        if inst is None or ref is None or self._services is None or self._slices is None:
            return
        by_name = {s["metadata"]["name"]: s for s in self._services}
        services = {n: by_name.get(n) for n in ref.services}
        healthy, detail = judge(ref.services, services, self._slices, self.node)
        inst.health.report(SERVICE, healthy, ref.on_failure, detail)
