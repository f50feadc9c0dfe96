"""Run the agent for one VirtualIP read from the Kubernetes API (``--virtualip NS/NAME``).

Wiring only: the VirtualIP comes from a watch (spec changes apply in place),
peers from the agent pods' host IPs, node health from the tracked pods on
this node and from the fronted Services' endpoints (``serviceRef``), status goes out through :class:`StatusWriter`, split brain is
arbitrated by :class:`LeaseArbiter`, and the role label follows the state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from keepvip_agent.kube.api import Kube, ListWatch
from keepvip_agent.kube.endpoints import SERVICE_NAME_LABEL, judge
from keepvip_agent.kube.lease import LeaseArbiter
from keepvip_agent.kube.pods import (
    AGENT_LABEL,
    ROLE_LABEL,
    node_addresses,
    peer_addresses,
    readiness,
    selector_string,
)
from keepvip_agent.kube.status import StatusWriter
from keepvip_agent.runtime.agent import Agent
from keepvip_agent.runtime.instance import InstanceRunner, TransitionRecord
from keepvip_agent.vrrp.packet import IPAddress
from keepvip_agent.vrrp.router import State
from keepvip_api import SpecError, from_api_object
from keepvip_api.cluster import ServiceRef, TrackPods
from keepvip_api.crd import GROUP, PLURAL, VERSION
from keepvip_api.model import VirtualIP

logger = logging.getLogger(__name__)
TRACK = "trackPods"
SERVICE = "serviceRef"
FIRST_PEERS_WAIT = 5.0


class KubeController:
    def __init__(self, kube: Kube, agent: Agent, namespace: str, name: str, node: str) -> None:
        self.kube, self.agent = kube, agent
        self.namespace, self.name, self.node = namespace, name, node
        self.loop = asyncio.get_running_loop()
        self.status = StatusWriter(kube, namespace, name, node)
        self.lease = LeaseArbiter(kube, namespace, name, node)
        self.lease.holder_address = self._address_of
        self.inst: InstanceRunner | None = None
        self.vip: VirtualIP | None = None
        self.problem: str | None = "waiting for the VirtualIP"
        self._peer_pods: list[dict[str, Any]] | None = None
        self._tracked_pods: list[dict[str, Any]] = []
        self._track: TrackPods | None = None
        self._track_watch: ListWatch | None = None
        self._service_ref: ServiceRef | None = None
        self._service_watches: list[ListWatch] = []
        self._services: dict[str, dict[str, Any] | None] = {}
        """Each fronted Service as last listed (None: absent); a name is here once listed."""
        self._slices: list[dict[str, Any]] | None = None
        self._service_generation = 0
        """Bumped when the watches are replaced: late deliveries of stopped ones are ignored."""
        self._applying = asyncio.Lock()
        self._watches: list[ListWatch] = []
        agent.instance_hooks.append(self._wire)

    async def start(self) -> None:
        peers = ListWatch(
            self.kube,
            "agent-pods",
            self.kube.core.list_namespaced_pod,
            self._on_peer_pods,
            self.loop,
            namespace=self.namespace,
            label_selector=f"{AGENT_LABEL}={self.name}",
        )
        vip = ListWatch(
            self.kube,
            "virtualip",
            self.kube.custom.list_namespaced_custom_object,
            self._on_virtualip,
            self.loop,
            group=GROUP,
            version=VERSION,
            namespace=self.namespace,
            plural=PLURAL,
            field_selector=f"metadata.name={self.name}",
        )
        self._watches += [peers, vip]
        peers.start()
        # Join with the peer list known, so the first adverts go to the right nodes.
        deadline = self.loop.time() + FIRST_PEERS_WAIT
        while self._peer_pods is None and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        vip.start()
        self.status.start()
        self.lease.start()

    async def stop(self) -> None:
        for w in self._watches:
            w.stop()
        if self._track_watch is not None:
            self._track_watch.stop()
        for w in self._service_watches:
            w.stop()
        await self.lease.stop()
        await self.status.stop()

    # -- inputs --------------------------------------------------------------------------

    def _on_virtualip(self, items: list[dict[str, Any]]) -> None:
        self.loop.create_task(self._apply(items))

    async def _apply(self, items: list[dict[str, Any]]) -> None:
        async with self._applying:
            if not items:
                if self.vip is not None:
                    logger.info("VirtualIP %s/%s deleted: releasing", self.namespace, self.name)
                self.vip, self.problem = None, "the VirtualIP does not exist"
                await self.agent.apply([])
                return
            try:
                # Status dropped, the VRID the operator allocated filled in.
                vip = from_api_object(items[0], allocated_vrid=True)
            except SpecError as exc:
                # Keep running the last good configuration; say what is wrong.
                self.problem = "invalid VirtualIP: " + "; ".join(exc.problems)
                logger.error("%s (keeping the last valid configuration)", self.problem)
                return
            if vip.spec.virtual_router_id is None:
                self.problem = "waiting for the operator to allocate a virtualRouterID"
                logger.info(self.problem)
                return
            self.problem = None
            self.vip = vip
            self.lease.fencing = vip.spec.fencing
            self._follow_tracked_pods(vip.spec.track_pods)
            ref = vip.spec.service_ref
            self._follow_services(ref if ref is not None and ref.track_endpoints else None)
            await self.agent.apply([vip])

    def _on_peer_pods(self, pods: list[dict[str, Any]]) -> None:
        self._peer_pods = pods
        self._push_peers()

    def _address_of(self, node: str) -> IPAddress | None:
        if self.inst is None or self._peer_pods is None:
            return None
        return node_addresses(self._peer_pods, self.inst.family).get(node)

    def _push_peers(self) -> None:
        inst = self.inst
        if inst is not None and self._peer_pods is not None:
            inst.set_peers(peer_addresses(self._peer_pods, self.node, inst.family))

    def _follow_tracked_pods(self, track: TrackPods | None) -> None:
        if track == self._track:
            return
        if self._track_watch is not None:
            self._track_watch.stop()
            self._track_watch = None
        self._track = track
        self._tracked_pods = []
        if self.inst is not None:
            if track is None:
                self.inst.health.forget(TRACK)
            else:
                self.inst.health.expect(TRACK)
        if track is None:
            return
        self._track_watch = ListWatch(
            self.kube,
            "tracked-pods",
            self.kube.core.list_namespaced_pod,
            self._on_tracked_pods,
            self.loop,
            namespace=track.namespace or self.namespace,
            label_selector=selector_string(track.selector),
            field_selector=f"spec.nodeName={self.node}",
        )
        self._track_watch.start()

    def _on_tracked_pods(self, pods: list[dict[str, Any]]) -> None:
        self._tracked_pods = pods
        self._report_readiness()
        self._label_roles()

    def _report_readiness(self) -> None:
        inst, track = self.inst, self._track
        if inst is None or track is None:
            return
        healthy, detail = readiness(self._tracked_pods, self.node)
        inst.health.report(TRACK, healthy, track.on_failure, detail)

    def _follow_services(self, ref: ServiceRef | None) -> None:
        """Watch the fronted Services (by name: RBAC names them) and their EndpointSlices."""
        if ref == self._service_ref:
            return
        for w in self._service_watches:
            w.stop()
        self._service_watches = []
        self._service_ref = ref
        self._services, self._slices = {}, None
        self._service_generation += 1
        gen = self._service_generation
        if self.inst is not None:
            if ref is None:
                self.inst.health.forget(SERVICE)
            else:
                self.inst.health.expect(SERVICE)
        if ref is None:
            return
        from kubernetes import client

        for name in ref.services:
            self._service_watches.append(
                ListWatch(
                    self.kube,
                    f"service-{name}",
                    self.kube.core.list_namespaced_service,
                    functools.partial(self._on_service, gen, name),
                    self.loop,
                    namespace=self.namespace,
                    field_selector=f"metadata.name={name}",
                )
            )
        self._service_watches.append(
            ListWatch(
                self.kube,
                "endpointslices",
                client.DiscoveryV1Api(self.kube.api).list_namespaced_endpoint_slice,
                functools.partial(self._on_slices, gen),
                self.loop,
                namespace=self.namespace,
                label_selector=f"{SERVICE_NAME_LABEL} in ({','.join(ref.services)})",
            )
        )
        for w in self._service_watches:
            w.start()

    def _on_service(self, gen: int, name: str, items: list[dict[str, Any]]) -> None:
        if gen != self._service_generation:
            return  # a stopped watch's last delivery
        self._services[name] = items[0] if items else None
        self._report_service()

    def _on_slices(self, gen: int, slices: list[dict[str, Any]]) -> None:
        if gen != self._service_generation:
            return
        self._slices = slices
        self._report_service()

    def _report_service(self) -> None:
        inst, ref = self.inst, self._service_ref
        if inst is None or ref is None or self._slices is None:
            return
        if any(n not in self._services for n in ref.services):
            return  # not every Service listed yet: stays "not checked yet"
        healthy, detail = judge(ref.services, self._services, self._slices, self.node)
        inst.health.report(SERVICE, healthy, ref.on_failure, detail)

    # -- instance wiring -------------------------------------------------------------------

    def _wire(self, inst: InstanceRunner) -> None:
        self.inst = inst
        self.status.inst = inst
        self.lease.inst = inst
        inst.add_listener(self._on_transition)
        self._push_peers()
        if self._track is not None:
            inst.health.expect(TRACK)
            if self._track_watch is not None and self._track_watch.healthy:
                self._report_readiness()
        if self._service_ref is not None:
            inst.health.expect(SERVICE)
            self._report_service()
        self.status.changed()

    def _on_transition(self, inst: InstanceRunner, record: TransitionRecord) -> None:
        self.status.changed()
        self._label_roles()
        if record.old is State.MASTER:
            self.lease.left_master()

    def _label_roles(self) -> None:
        inst, track = self.inst, self._track
        if inst is None or track is None or not track.role_label:
            return
        role = "master" if inst.state is State.MASTER else "backup"
        for pod in self._tracked_pods:
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(ROLE_LABEL) != role:
                self.loop.create_task(self._label(meta["namespace"], meta["name"], role))

    async def _label(self, namespace: str, name: str, role: str) -> None:
        try:
            await self.kube.call(
                self.kube.core.patch_namespaced_pod,
                name,
                namespace,
                {"metadata": {"labels": {ROLE_LABEL: role}}},
            )
        except Exception as exc:
            logger.warning(
                "cannot label pod %s/%s %s=%s: %s", namespace, name, ROLE_LABEL, role, exc
            )

    def ready_problem(self) -> str | None:
        return self.problem


async def run_kubernetes(
    namespace: str, name: str, node: str, metrics_address: str, metrics_port: int
) -> int:
    from keepvip_agent.runtime.http import serve

    kube = Kube()
    async with Agent(node) as agent:
        agent.install_signal_handlers()
        controller = KubeController(kube, agent, namespace, name, node)
        agent.readiness_problem = controller.ready_problem
        web = await serve(agent, metrics_address, metrics_port) if metrics_port else None
        try:
            await controller.start()
            await agent.stopping.wait()
        finally:
            await agent.shutdown()
            await controller.stop()
            if web is not None:
                await web.cleanup()
    return 0
