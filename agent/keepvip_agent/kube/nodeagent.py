"""The node agent (``--kubernetes``): one process per node, one VRRP instance per VirtualIP here.

Wiring only, with a fixed number of watches whatever the number of
VirtualIPs: the VirtualIPs (cluster-wide, or per ``--watch-namespaces``),
this Node (placement), the node agent pods of the agents' namespace (peers:
the other nodes' host IPs) and the Leases of that namespace (liveness and
split brain). Pods, Services and EndpointSlices are watched per namespace
through :class:`~keepvip_agent.kube.shared.SharedWatches`, only where some
VirtualIP here needs them.

Every change of the VirtualIPs or of the Node recomputes the selection
(:func:`~keepvip_agent.kube.selection.select`, pure) and hands it to
:meth:`Agent.apply`, which adds, removes and reconfigures instances without
touching the others. Each wanted VirtualIP has a
:class:`~keepvip_agent.kube.vipglue.VipGlue` (status entry, Lease, readiness).
A VirtualIP that cannot start here (no connected network, a broken spec)
faults alone in its own status entry; the process and /readyz go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import Kube, ListWatch
from keepvip_agent.kube.nodelease import LeaseCache, NodeLease
from keepvip_agent.kube.pods import node_addresses, peer_addresses
from keepvip_agent.kube.secretkeys import SecretKeys
from keepvip_agent.kube.selection import (
    UPGRADING,
    Gate,
    ParseCache,
    Selection,
    handover_hold,
    select,
)
from keepvip_agent.kube.shared import SharedWatches
from keepvip_agent.kube.vipglue import VipGlue
from keepvip_agent.runtime.agent import Agent
from keepvip_agent.runtime.instance import InstanceRunner
from keepvip_agent.vrrp.packet import IPAddress
from keepvip_api.acceptance import Trust
from keepvip_api.model import VirtualIP
from keepvip_api.names import MOVE_ANNOTATION, NODE_AGENT_SELECTOR
from keepvip_api.placement import maintenance
from keepvip_api.subnets import format_networks

logger = logging.getLogger(__name__)
FIRST_PEERS_WAIT = 5.0
NETWORKS_REFRESH = 10.0
"""Seconds between readings of the connected networks the node Lease publishes."""


class NodeController:
    def __init__(
        self,
        kube: Kube,
        agent: Agent,
        node: str,
        agent_namespace: str,
        watch_namespaces: Sequence[str] = (),
        trust: Trust | None = None,
    ) -> None:
        self.kube, self.agent, self.node = kube, agent, node
        self.trust = trust
        """None: no gate (the tests that play an operator of an earlier release)."""
        self._accepted: dict[str, VirtualIP] = {}
        """What ran in the last round, by key: the last accepted spec of each (selection.Gate)."""
        self._labels: dict[str, dict[str, str]] | None = None
        """Namespace labels by name, when the trust names a label."""
        self.agent_namespace = agent_namespace
        self.watch_namespaces = tuple(watch_namespaces)
        self.loop = asyncio.get_running_loop()
        self.watches = SharedWatches(kube, node)
        self.leases = LeaseCache(kube, agent_namespace)
        self.node_lease = NodeLease(kube, agent_namespace, node)
        self.glues: dict[str, VipGlue] = {}
        self._vips: dict[str, list[dict[str, Any]]] = {}
        """The VirtualIPs as listed, per watched namespace ("" = cluster-wide)."""
        self._node: dict[str, Any] | None = None
        self._peer_pods: list[dict[str, Any]] | None = None
        self._skipped: dict[str, str] = {}
        self._held: dict[str, float] = {}
        """VirtualIPs that just left ``Upgrading``, started only at this loop time (handover_hold)."""
        self._parsed = ParseCache()
        self._applying = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._networks_task: asyncio.Task[None] | None = None
        self._list_watches: list[ListWatch] = []
        self.secret_keys = SecretKeys(kube, agent_namespace)
        agent.instance_hooks.append(self._wire)
        agent.stopped_hooks.append(self._unwire)
        agent.pending_blocks_ready = False
        agent.key_files = False

    async def start(self) -> None:
        await self._read_networks()
        self.node_lease.start()
        self._networks_task = self.loop.create_task(self._networks_loop())
        self.leases.start()
        peers = ListWatch(
            self.kube,
            "agent-pods",
            paths.pods(self.agent_namespace),
            self._on_peer_pods,
            self.loop,
            {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(NODE_AGENT_SELECTOR.items()))},
        )
        node = ListWatch(
            self.kube,
            "node",
            paths.nodes(),
            self._on_node,
            self.loop,
            {"fieldSelector": f"metadata.name={self.node}"},
        )
        self._list_watches += [peers, node]
        if self.trust is not None and self.trust.trusted_label is not None:
            self._list_watches.append(ListWatch(
                self.kube, "namespaces", paths.namespaces(), self._on_namespaces,
                self.loop,
            ))  # fmt: skip
        for w in self._list_watches:
            w.start()
        # Join with the peer list known, so the first adverts go to the right nodes.
        deadline = self.loop.time() + FIRST_PEERS_WAIT
        while self._peer_pods is None and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for ns in self.watch_namespaces or ("",):
            self._list_watches.append(self._vip_watch(ns))
            self._list_watches[-1].start()
        self._task = self.loop.create_task(self._reconcile_loop())

    def _vip_watch(self, ns: str) -> ListWatch:
        def deliver(items: list[dict[str, Any]]) -> None:
            self._vips[ns] = items
            self._dirty.set()

        name = f"virtualips-{ns}" if ns else "virtualips"
        return ListWatch(self.kube, name, paths.virtualips(ns or None), deliver, self.loop)

    async def stop(self) -> None:
        for w in self._list_watches:
            w.stop()
        for task in (self._task, self._networks_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*(g.stop(withdraw=False) for g in self.glues.values()))
        self.watches.stop()
        self.leases.stop()
        self.secret_keys.close()
        await self.node_lease.stop()

    async def _read_networks(self) -> None:
        """Publish this node's connected networks on its node Lease (the operator's judgement)."""
        try:
            self.node_lease.networks = format_networks(await self.agent.connected_networks())
        except Exception as exc:  # kept as last read; the agent judges its own instances anyway
            logger.warning("cannot read this node's connected networks: %s", exc)

    async def _networks_loop(self) -> None:
        while True:
            await asyncio.sleep(NETWORKS_REFRESH)
            await self._read_networks()

    # -- inputs ------------------------------------------------------------------------------

    def _on_node(self, items: list[dict[str, Any]]) -> None:
        self._node = items[0] if items else None
        for glue in self.glues.values():
            glue.report_cordon()
        self._dirty.set()

    def _on_namespaces(self, items: list[dict[str, Any]]) -> None:
        self._labels = {
            str((n.get("metadata") or {}).get("name")): dict(
                (n.get("metadata") or {}).get("labels") or {}
            )
            for n in items
        }
        self._dirty.set()

    def _maintenance(self) -> str | None:
        return maintenance(self._node) if self._node is not None else None

    def _on_peer_pods(self, pods: list[dict[str, Any]]) -> None:
        self._peer_pods = pods
        for glue in self.glues.values():
            glue.push_peers()

    def _peers(self, family: int) -> frozenset[IPAddress] | None:
        return peer_addresses(self._peer_pods or [], self.node, family)

    def _address_of(self, node: str, family: int) -> IPAddress | None:
        return node_addresses(self._peer_pods or [], family).get(node)

    # -- reconcile ---------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:  # never the end of the process: the next change retries
                logger.exception("reconciling the VirtualIPs failed; retrying on the next change")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def reconcile(self) -> None:
        if len(self._vips) < len(self.watch_namespaces or ("",)):
            return  # not every VirtualIP list is in yet
        objects = [o for items in self._vips.values() for o in items]
        gate = None
        if self.trust is not None:
            gate = Gate(self.trust, self._labels, self._accepted)
        sel = select(objects, self._node, gate, cache=self._parsed)
        self._accepted = dict(sel.run)
        by_key = {
            f"{(o.get('metadata') or {}).get('namespace', '')}/{o['metadata']['name']}": o
            for o in objects
        }
        self._hold_back(sel, by_key)
        for key, why in sel.skipped.items():
            if self._skipped.get(key) != why:
                logger.info("%s: not run on %s: %s", key, self.node, why)
        self._skipped = sel.skipped
        async with self._applying:
            for key, vip in sel.run.items():
                glue = self.glues.get(key)
                if glue is None:
                    glue = self.glues[key] = VipGlue(
                        self.kube,
                        vip,
                        self.node,
                        agent_namespace=self.agent_namespace,
                        watches=self.watches,
                        leases=self.leases,
                        node_lease=self.node_lease,
                        problem=self.agent.pending.get,
                        peers=self._peers,
                        address_of=self._address_of,
                        maintenance=self._maintenance,
                    )
                    glue.start()
                elif glue.vip != vip:
                    glue.update(vip)
                annotations = by_key[key].get("metadata", {}).get("annotations") or {}
                glue.move_to(annotations.get(MOVE_ANNOTATION) or None)
            await self.agent.apply(list(sel.run.values()))
            gone = [(k, self.glues.pop(k)) for k in list(self.glues) if k not in sel.run]
            # Together (each releases its Lease and withdraws its entry: API round trips).
            stopped = await asyncio.gather(
                *(glue.stop(withdraw=key in by_key) for key, glue in gone),
                return_exceptions=True,
            )
            for result in stopped:
                if isinstance(result, BaseException):
                    raise result
            for key, glue in self.glues.items():
                glue.entries.changed()  # a VirtualIP that could not start: its fault entry
                if key in by_key:
                    glue.entries.observed(self._has_entry(by_key[key]))

    def _has_entry(self, obj: dict[str, Any]) -> bool:
        nodes = (obj.get("status") or {}).get("nodes") or []
        return any(isinstance(e, dict) and e.get("name") == self.node for e in nodes)

    def _hold_back(self, sel: Selection, by_key: dict[str, dict[str, Any]]) -> None:
        """Leave out the VirtualIPs whose handover hold after the upgrade has not run out."""
        now = self.loop.time()
        self._held = {k: t for k, t in self._held.items() if k in sel.run}
        for key in list(sel.run):
            if self._skipped.get(key) == UPGRADING:  # it was upgrading in the last round
                hold = handover_hold(by_key[key], sel.run[key], self.node)
                if hold:
                    self._held[key] = now + hold
            until = self._held.get(key)
            if until is None:
                continue
            if now < until:
                del sel.run[key]
                master = (by_key[key].get("status") or {}).get("master")
                sel.skipped[key] = f"upgrade: starts once {master} has taken it over"
                self.loop.call_later(until - now, self._dirty.set)
            else:
                del self._held[key]

    # -- instance wiring ---------------------------------------------------------------------

    def _wire(self, inst: InstanceRunner) -> None:
        glue = self.glues.get(inst.vip.key)
        if glue is not None:
            glue.wire(inst)
        auth = inst.spec.auth_hmac
        if auth is not None and auth.secret_name is not None:
            self.secret_keys.subscribe(auth.secret_name, id(inst), inst.set_keys)

    def _unwire(self, inst: InstanceRunner) -> None:
        glue = self.glues.get(inst.vip.key)
        if glue is not None and glue.inst is inst:
            glue.unwire()
        auth = inst.spec.auth_hmac
        if auth is not None and auth.secret_name is not None:
            self.secret_keys.unsubscribe(auth.secret_name, id(inst))

    def ready_problem(self) -> str | None:
        if self._node is None:
            return f"waiting for Node {self.node}"
        if len(self._vips) < len(self.watch_namespaces or ("",)):
            return "waiting for the VirtualIPs"
        return None


async def run_node_agent(
    node: str,
    agent_namespace: str,
    watch_namespaces: Sequence[str],
    metrics_address: str,
    metrics_port: int,
    trust: Trust | None = None,
) -> int:
    from keepvip_agent.runtime.http import serve

    kube = Kube()
    async with Agent(node) as agent:
        agent.install_signal_handlers()
        controller = NodeController(
            kube, agent, node, agent_namespace, watch_namespaces, trust=trust
        )
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
