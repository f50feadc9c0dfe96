"""Reconciliation: the node agents' objects, and each VirtualIP's decision and status.

No kopf here: the handlers call :meth:`Reconciler.reconcile` (on create,
update and resume, with kopf's retries) and :meth:`Reconciler.refresh`
(from the resync loop: agent status changes, stale heartbeats, another
VirtualIP going away). With ``spec.serviceRef`` both also publish the
addresses on the Services (decided by :mod:`publish`; a Service that is not
there yet is a condition, not an error), and :meth:`Reconciler.publish_for`
does it again when one of those Services changes. Both work on a :class:`View`, a snapshot of the
operator's indices taken on the event loop, so the worker threads never read
a structure the loop is changing.

The agents' objects do not belong to any one VirtualIP: one DaemonSet in the
agents' namespace (from the settings alone) and the per-namespace RBAC that
:func:`rbac.plan_namespace_rbac` derives from every VirtualIP.
:meth:`Reconciler.converge_agents` applies them when the plan changed and
withdraws the Roles no VirtualIP needs any more; every reconcile and refresh
calls it, and it costs nothing while the plan stays the same.

A VirtualIP's status is judged from the agents' entries, counted only for
nodes that run a node agent pod and whose node Lease is fresh
(:func:`keepvip_api.status.node_alive`), and from placement: ``NoNode`` when
its nodeSelector and tolerations select no node that runs an agent.

Decisions that span objects (VRIDs) are made under one lock
and remembered until the API shows them, so two VirtualIPs created together
never get the same number from this process. Per object, one lock
serialises the handler and the resync loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from keepvip_api.names import MOVE_ANNOTATION
from keepvip_api.placement import NodeView, judge, selected_nodes
from keepvip_api.status import NodeStatus, node_alive
from keepvip_api.subnets import Network
from keepvip_operator import grants, move, names, publish, upgrade
from keepvip_operator.aggregate import Stale, aggregate
from keepvip_operator.allocate import Claim, choose_vrid, claim_of, find_conflicts
from keepvip_operator.conditions import NO_NODE, Cond, put
from keepvip_operator.grants import IP
from keepvip_operator.kube import ApiError, Kube, path
from keepvip_operator.lbmodel import Pool
from keepvip_operator.names import Target
from keepvip_operator.observed import Observed
from keepvip_operator.rbac import RBAC_API, plan_namespace_rbac, render_plan
from keepvip_operator.render import render_daemonset
from keepvip_operator.settings import OperatorSettings
from keepvip_operator.statusplan import Decision, OperatorStatus, plan
from keepvip_operator.upgrade import OldObject

logger = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"


class InvalidSpec(Exception):
    """The VirtualIP cannot be reconciled until its spec changes."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class View:
    """What the operator knows about the cluster at one moment (keys are "namespace/name")."""

    vips: Mapping[str, Observed] = field(default_factory=dict)
    agent_nodes: frozenset[str] | None = None
    """Nodes running a node agent pod; None: not known (counts every entry)."""
    nodes: Mapping[str, NodeView] = field(default_factory=dict)
    """Every Node, as placement reads it."""
    renewals: Mapping[str, datetime | None] | None = None
    """Each node's agent Lease renewTime, by node; None: not known (counts every entry)."""
    daemonset: bool = True
    """The node agent DaemonSet is there (as the index shows it)."""
    agents_ready: bool = True
    """The node agent DaemonSet has a Ready pod on every node it is scheduled to."""
    legacy: Mapping[str, tuple[OldObject, ...]] = field(default_factory=dict)
    """Per-VirtualIP DaemonSets and agent pods of keepvip before 0.2, by their VirtualIP's key
    (:mod:`upgrade`)."""
    pools: tuple[Pool, ...] = ()
    """The valid VirtualIPPools: the address grants (:mod:`grants`)."""
    node_addresses: Mapping[IP, str] = field(default_factory=dict)
    """Every Node's own address (InternalIP, ExternalIP), to the Node's name."""
    node_networks: Mapping[str, tuple[Network, ...]] = field(default_factory=dict)
    """Each node's connected networks, as its agent publishes them on its node Lease."""
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Namespace labels by name (indexed only when the trust names a label)."""


def sweep_keys(
    view: View, alive_before: frozenset[str] | None, now: datetime, timeout: float
) -> tuple[list[str], frozenset[str] | None]:
    """The VirtualIPs a periodic sweep re-judges, and the live nodes it judged by (pure).

    Without an event, a status changes only with the clock: a node whose Lease
    stops renewing dies (its entries stop counting), a manual move waits, and
    VirtualIPs still served by per-VirtualIP agents age by their heartbeats.
    While the live nodes are those of the last sweep, only the latter two are
    looked at; re-judging every VirtualIP every sweep found nothing new at a
    cost growing with their number (250 VirtualIPs: 50 judgements a second).
    """
    if view.renewals is None:
        return list(view.vips), None
    alive = frozenset(n for n, t in view.renewals.items() if node_alive(t, now, timeout))
    if alive != alive_before:
        return list(view.vips), alive
    ticking = [k for k, o in view.vips.items() if o.move_to is not None or k in view.legacy]
    return ticking, alive


def no_node(vip_selector: Mapping[str, str], tolerations: Any, view: View) -> Cond:
    """``NoNode``: the placement selects no node that runs a node agent (pure)."""
    carrying = [n for name, n in sorted(view.nodes.items())
                if view.agent_nodes is None or name in view.agent_nodes]  # fmt: skip
    chosen = selected_nodes(carrying, vip_selector, tolerations)
    if chosen:
        return Cond(NO_NODE, "False", "NodesSelected", f"placed on {', '.join(chosen)}")
    if not carrying:
        return Cond(NO_NODE, "True", "NoNodeSelected", "no node runs a keepvip node agent")
    why = "; ".join(f"{n.name}: {judge(n, vip_selector, tolerations).reason}" for n in carrying[:5])
    return Cond(NO_NODE, "True", "NoNodeSelected",
                f"placement selects no node that runs a node agent ({why})")  # fmt: skip


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube, self.settings, self.clock = kube, settings, clock
        self._alloc = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._written: dict[str, OperatorStatus] = {}
        self._last_master: dict[str, str | None] = {}
        self._vrids: dict[str, int] = {}
        self._agents = threading.Lock()
        self._applied: tuple[dict[str, Any], ...] | None = None
        """The agents' objects as last applied (None: not yet, in this process)."""
        self._converged_view: View | None = None
        self._claims: dict[str, tuple[Observed, Claim]] = {}
        self._decisions: dict[str, Decision] = {}
        self._published: dict[str, Cond | None] = {}
        """ServicePublished per VirtualIP uid, as last decided (None: no serviceRef)."""
        self._withdrawn: set[str] = set()
        self._legacy_deleted: set[tuple[str, str, str]] = set()
        """Old per-VirtualIP DaemonSets and pods this process asked the API to delete."""
        self._waiting_logged = False
        self._moves: dict[str, tuple[str, datetime]] = {}
        """VirtualIP uid -> the node a pending manual move asks for, and when it was first seen."""
        self._ended_moves: dict[str, str] = {}
        """uid -> a move this process ended (its annotation may still show in a late event)."""
        self._move_results: dict[str, Cond] = {}
        """uid -> the condition ``Moved`` of the last move ended (kept in every status write)."""
        self._handover: dict[str, str] = {}
        """VirtualIP uid -> the node whose old agent was master when its pod was deleted: named
        as master when the node agents take over, so they start it there first."""
        """VirtualIP uids being deleted whose addresses were taken off their Services: a
        reconcile or a Service event still in flight on an older view must not publish again."""

    # -- entry points -------------------------------------------------------------------------

    def reconcile(self, obs: Observed, view: View) -> Decision:
        """Bring the agents' objects and the status in line with the spec; raises InvalidSpec."""
        failure: ApiError | None = None
        self.converge_agents(view, also=obs)
        with self._lock(obs.target.uid):
            decision = self._decide(obs, view)
            try:
                self._publish(obs, decision)
            except ApiError as exc:  # status still written; the handler retries
                failure = exc
            self._write_status(obs, decision, view, observed_generation=obs.generation)
        if failure is not None:
            raise failure
        if decision.invalid:
            raise InvalidSpec(decision.invalid)
        return decision

    def refresh(self, key: str, view: View, *, rejudge: bool = True) -> None:
        """Re-judge an already reconciled VirtualIP against the current view.

        Writes status only if it changed; publishes again only if the
        decision flipped (a conflict appeared or cleared). Objects whose
        current generation is not reconciled yet are left to the handlers,
        which retry them. ``rejudge=False`` reuses the last decision: only the
        agents' status is looked at.
        """
        self.converge_agents(view)
        obs = view.vips.get(key)
        if obs is None or obs.deleting:
            return
        with self._lock(obs.target.uid):
            previous = self._previous(obs)
            if previous.observed_generation != obs.generation:
                return
            last = self._decisions.get(key)
            decision = last if last and not rejudge else self._decide(obs, view)
            if last is not None and not decision.invalid and last.rollout != decision.rollout:
                logger.info(
                    "%s: %s", key, "agents may run it" if decision.rollout else "agents stop it"
                )
                self._publish(obs, decision)
            self._write_status(obs, decision, view, observed_generation=obs.generation)

    def publish_for(self, key: str, view: View) -> None:
        """One of the VirtualIP's Services changed (or appeared, or went): publish again."""
        obs = view.vips.get(key)
        last = self._decisions.get(key)
        if obs is None or obs.deleting or last is None:
            return  # not reconciled yet: the handler publishes
        with self._lock(obs.target.uid):
            self._publish(obs, last)
        self.refresh(key, view, rejudge=False)

    def forget(self, t: Target) -> None:
        """The VirtualIP is gone: drop what was remembered about it."""
        with self._alloc:
            self._vrids.pop(t.key, None)
        self._claims.pop(t.key, None)
        self._decisions.pop(t.key, None)
        with self._locks_guard:
            self._locks.pop(t.uid, None)
        self._written.pop(t.uid, None)
        self._last_master.pop(t.uid, None)
        self._published.pop(t.uid, None)
        self._withdrawn.discard(t.uid)
        self._moves.pop(t.uid, None)
        self._ended_moves.pop(t.uid, None)
        self._move_results.pop(t.uid, None)

    def converge_agents(self, view: View, *, also: Observed | None = None) -> None:
        """Apply the node agent DaemonSet and the RBAC plan if they changed; withdraw the rest.

        ``also``: a VirtualIP the view may not show yet (the one being reconciled).
        A view already converged (a sweep shares one) costs nothing.
        """
        if also is None and view is self._converged_view:
            return
        vips = dict(view.vips)
        if also is not None and not also.deleting:
            vips[also.key] = also
        namespace = self.settings.agent_namespace
        assert namespace, "settings.agent_namespace is checked at start-up"
        plan = plan_namespace_rbac(
            (
                (o.target.namespace, o.vip)
                for o in vips.values()
                if o.vip is not None and not o.deleting
            ),
            namespace,
        )
        marked = [k for k, o in vips.items() if self._marked(o)]
        may_start = upgrade.node_agents_may_start(view.legacy, marked, vips)
        daemonset = (render_daemonset(self.settings, namespace),) if may_start else ()
        wanted = (*daemonset, *render_plan(plan, namespace))
        if not may_start and not self._waiting_logged:
            self._waiting_logged = True
            logger.info(
                "upgrade: the node agent DaemonSet waits until every VirtualIP served by a "
                "per-VirtualIP DaemonSet is marked Upgrading"
            )
        if may_start and view.daemonset:
            self._delete_legacy(view, marked)
        with self._agents:
            if wanted == self._applied and (view.daemonset or not may_start):
                if also is None:
                    self._converged_view = view
                return
            for obj in wanted:
                self.kube.apply(obj)
            keep = {_ident(o) for o in wanted}
            labels = names.selector_string(names.agent_rbac_labels())
            stale = [
                o
                for kind in ("RoleBinding", "Role")
                for o in self.kube.list(RBAC_API, kind, None, labels=labels)
                if _ident(o) not in keep
            ]
            for obj in stale:
                logger.info(
                    "withdrawing the node agents' %s in %s: no VirtualIP needs it",
                    obj.get("kind", "RBAC"), obj["metadata"].get("namespace"),
                )  # fmt: skip
            self.kube.delete_all(stale)
            if daemonset and (self._applied is None or daemonset[0] not in self._applied):
                logger.info(
                    "applied the node agent DaemonSet %s/%s", namespace, names.NODE_AGENT_NAME
                )
            self._applied = wanted
            if also is None:
                self._converged_view = view

    def _marked(self, obs: Observed) -> bool:
        """Its status says ``Upgrading=True``: as this process wrote it, else as observed."""
        written = self._written.get(obs.target.uid)
        if written is not None:
            return written.condition(upgrade.UPGRADING) is not None
        return upgrade.marked(obs.status)

    def _delete_legacy(self, view: View, marked: list[str]) -> None:
        """Delete the old per-VirtualIP objects whose turn it is (:func:`upgrade.next_deletions`)."""
        for key, old in sorted(view.legacy.items()):
            obs = view.vips.get(key)
            if obs is None:
                continue  # its VirtualIP is gone: the garbage collector's
            master = self._previous(obs).master
            steps = upgrade.next_deletions(
                old, master, node_agents_ready=view.agents_ready, is_marked=key in marked
            )
            for obj in steps:
                ident = (obj.kind, obj.namespace, obj.name)
                if ident in self._legacy_deleted:
                    continue
                self._legacy_deleted.add(ident)
                if obj.kind == "DaemonSet":
                    logger.info(
                        "%s: upgrade: deleting the per-VirtualIP DaemonSet %s (its pods stay "
                        "and go one by one, the master's last)", key, obj.name,
                    )  # fmt: skip
                    self.kube.delete("apps/v1", "DaemonSet", obj.namespace, obj.name, orphan=True)
                else:
                    logger.info(
                        "%s: upgrade: deleting the per-VirtualIP agent %s on %s%s",
                        key, obj.name, obj.node, " (the master)" if obj.node == master else "",
                    )  # fmt: skip
                    if master is not None and obj.node == master:
                        self._handover[obs.target.uid] = master
                    self.kube.delete("v1", "Pod", obj.namespace, obj.name)

    def _remove_legacy_rbac(self, t: Target) -> None:
        """The old agents' Role and RoleBinding (here and in tracked namespaces): they are gone."""
        name = upgrade.old_object_name(t.name)
        for kind in ("RoleBinding", "Role"):
            self.kube.delete(RBAC_API, kind, t.namespace, name)
            for obj in self.kube.list(
                RBAC_API, kind, None, labels=f"{upgrade.OWNER_UID_LABEL}={t.uid}"
            ):
                self.kube.delete_all([obj])
        logger.info("%s: upgrade: the per-VirtualIP agents are gone; their RBAC removed", t.key)

    def withdraw(self, t: Target) -> None:
        """The VirtualIP is being deleted: take its addresses off every Service it published on.

        Under the VirtualIP's lock, and for good: from here on :meth:`_publish` leaves its
        Services alone (until :meth:`forget`), whatever view a late caller holds."""
        with self._lock(t.uid):
            self._withdrawn.add(t.uid)
            for svc in self._labelled_services(t):
                self._write_service(t, svc, ())

    # -- publishing on Services (decisions in publish.py) ---------------------------------------

    def _publish(self, obs: Observed, decision: Decision) -> None:
        """Publish on the serviceRef Services (withdraw if not rolled out), sweep the others."""
        t, vip = obs.target, obs.vip
        if vip is None or t.uid in self._withdrawn:
            return  # invalid spec: leave everything as it is; being deleted: withdrawn already
        ref = vip.spec.service_ref
        if ref is None and not self._may_have_published(obs):
            return  # no Service requests at all for VirtualIPs that never had a serviceRef
        wanted = ref.services if ref is not None else ()
        addresses = publish.addresses_of(vip) if decision.rollout else ()
        for svc in self._labelled_services(t):
            if svc["metadata"]["name"] not in wanted:
                self._write_service(t, svc, ())
        published: dict[str, str] = {}
        missing: list[str] = []
        for name in wanted:
            own = publish.addresses_for(vip, name) if addresses else ()  # addressPerService
            got = self._write_service(t, self._service(t.namespace, name), own)
            if got is None:
                missing.append(name)
            else:
                published[name] = publish.where(got)
        cond = None
        if ref is not None:
            withheld = None if decision.rollout else "not rolled out: see Ready and Conflict"
            cond = publish.condition(
                publish.addresses_of(vip), published, missing, namespace=t.namespace,
                withheld=withheld,
            )  # fmt: skip
        self._published_changed(obs, cond)

    def _may_have_published(self, obs: Observed) -> bool:
        """A ServicePublished condition (kept until the addresses are withdrawn) says so."""
        if self._published.get(obs.target.uid) is not None:
            return True
        return OperatorStatus.read(obs.status).condition(publish.SERVICE_PUBLISHED) is not None

    def _published_changed(self, obs: Observed, cond: Cond | None) -> None:
        t = obs.target
        if t.uid in self._published:
            before = self._published[t.uid]
        else:  # after a restart: what the status says
            old = OperatorStatus.read(obs.status).condition(publish.SERVICE_PUBLISHED)
            before = Cond(publish.SERVICE_PUBLISHED, old.get("status", "Unknown"),
                          old.get("reason", ""), old.get("message", "")) if old else None  # fmt: skip
        self._published[t.uid] = cond
        if cond is None or cond == before:
            return
        if cond.reason == "ServiceNotFound":
            logger.info("%s: %s", t.key, cond.message)
            self.kube.post_event(t, "Warning", cond.reason, cond.message)
        elif cond.true and not (before is not None and before.true):
            logger.info("%s: published: %s", t.key, cond.message)
            self.kube.post_event(t, "Normal", publish.SERVICE_PUBLISHED, cond.message)

    def _service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.kube.request(
                "GET", f"/api/v1/namespaces/{namespace}/services/{name}"
            )
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return got

    def _labelled_services(self, t: Target) -> list[dict[str, Any]]:
        answer = self.kube.request(
            "GET",
            f"/api/v1/namespaces/{t.namespace}/services",
            query=[("labelSelector", publish.claim_key(t.name))],
        )
        return list(answer.get("items") or [])

    def _write_service(
        self, t: Target, svc: dict[str, Any] | None, addresses: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """Write ``publish.next_step`` until done; the Service as written (None: not there)."""
        for _attempt in range(8):
            if svc is None:
                return None
            step = publish.next_step(svc, t.name, addresses)
            if step is None:
                return svc
            name = svc["metadata"]["name"]
            url = f"/api/v1/namespaces/{t.namespace}/services/{name}"
            url += f"/{step.subresource}" if step.subresource else ""
            try:
                svc = self.kube.request(
                    "PATCH", url, step.body, query=[("fieldManager", names.FIELD_MANAGER)],
                    content_type=MERGE_PATCH,
                )  # fmt: skip
            except ApiError as exc:
                if exc.status != 409:  # 409: it changed since we read it
                    raise
                svc = self._service(t.namespace, name)
        raise ApiError(409, f"{t.key}: Service kept changing while publishing the addresses")

    # -- deciding -------------------------------------------------------------------------------

    def _decide(self, obs: Observed, view: View) -> Decision:
        before = self._previous(obs).accepted_before(obs.generation)
        if obs.vip is None:
            return Decision(
                vrid=obs.status_vrid, invalid=obs.problems, verdict=grants.invalid(before),
                generation=obs.generation,
            )  # fmt: skip
        verdict = grants.judge(
            obs.vip,
            generation=obs.generation,
            managed=obs.managed,
            pools=view.pools,
            node_addresses=view.node_addresses,
            node_networks=view.node_networks,
            trust=self.settings.trust,
            namespace_labels=view.namespace_labels.get(obs.target.namespace),
            accepted_before=before,
        )
        key = obs.key
        with self._alloc:
            others = [self.claim(o) for k, o in view.vips.items() if k != key]
            # VRIDs handed out to objects this (older) snapshot does not show yet.
            others += [
                Claim(k, datetime.max.replace(tzinfo=UTC), frozenset(), None, None, v)
                for k, v in self._vrids.items()
                if k != key and k not in view.vips
            ]
            me = self.claim(obs)
            vrid = choose_vrid(me, others)
            if vrid is not None and me.spec_vrid is None:
                self._vrids[key] = vrid
            conflicts = find_conflicts(me, vrid, others)
        self._decisions[key] = Decision(
            vrid=vrid, conflicts=tuple(conflicts), verdict=verdict, generation=obs.generation
        )
        return self._decisions[key]

    def claim(self, obs: Observed) -> Claim:
        """claim_of(), cached per observed object (a sweep judges every object against all)."""
        cached = self._claims.get(obs.key)
        if cached is None or cached[0] is not obs:
            cached = (obs, claim_of(obs))
            self._claims[obs.key] = cached
        claim = cached[1]
        reserved = self._vrids.get(obs.key)
        if claim.status_vrid is None and reserved is not None:
            return replace(claim, status_vrid=reserved)
        return claim

    # -- acting -------------------------------------------------------------------------------

    def _previous(self, obs: Observed) -> OperatorStatus:
        """What the operator last wrote: memory first (the watch may lag behind our own write)."""
        return self._written.get(obs.target.uid) or OperatorStatus.read(obs.status)

    def _write_status(
        self, obs: Observed, decision: Decision, view: View, *, observed_generation: int
    ) -> None:
        t = obs.target
        previous = self._previous(obs)
        raw_nodes = [n for n in obs.status.get("nodes") or () if isinstance(n, Mapping)]
        now = self.clock()
        legacy = view.legacy.get(obs.key)
        alive = None
        if view.renewals is not None and legacy is None:
            timeout = self.settings.heartbeat_timeout
            alive = frozenset(n for n, t_ in view.renewals.items() if node_alive(t_, now, timeout))
        handover = None
        if legacy is None and self._marked(obs):
            self._remove_legacy_rbac(t)  # the old agents are gone: the condition goes next
            handover = self._handover.pop(t.uid, None)
        agg = aggregate(  # the old agents' entries count as they are while they run
            raw_nodes,
            agent_nodes=view.agent_nodes if legacy is None else None,
            alive=alive,
            previous_master=previous.master,
        )
        extra = []
        if legacy is None and obs.vip is not None:
            moved = self._judge_move(obs, agg.master, agg.entry(obs.move_to), view, now)
            if moved is not None:
                extra.append(moved)
        if legacy is not None:
            extra.append(upgrade.condition(legacy))
        elif obs.vip is not None and decision.rollout:
            spec = obs.vip.spec
            extra.append(no_node(spec.node_selector or {}, spec.tolerations or (), view))
        p = plan(
            previous,
            decision,
            agg,
            observed_generation=observed_generation,
            now=now,
            last_master=self._last_master.get(t.uid),
            extra=extra,
        )
        if handover is not None and p.status.master is None:
            # The node agents start where the old master was; the others join it as backups
            # (keepvip_agent.kube.selection.handover_hold).
            p = replace(p, status=replace(p.status, master=handover))
        published = self._published.get(t.uid)
        if published is not None:  # the plan knows nothing of Services
            p = replace(p, status=replace(p.status, conditions=put(
                p.status.conditions, published, previous.conditions,
                observed_generation, self.clock(),
            )))  # fmt: skip
        if p.prune:
            self._prune(t, p.prune)
        if p.status.body() != OperatorStatus.read(obs.status).body():
            self.kube.apply(
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.KIND,
                    "metadata": {"name": t.name, "namespace": t.namespace},
                    "status": p.status.body(),
                },
                subresource="status",
            )
        self._written[t.uid] = p.status
        self._last_master[t.uid] = p.last_master
        for event in p.events:
            logger.info("%s: %s: %s", t.key, event.reason, event.message)
            self.kube.post_event(t, event.type, event.reason, event.message)

    def _judge_move(
        self,
        obs: Observed,
        master: str | None,
        entry: NodeStatus | None,
        view: View,
        now: datetime,
    ) -> Cond | None:
        """Judge a manual move (:mod:`move`); end it when done or refused. The ``Moved``
        condition to keep, if any."""
        t, target = obs.target, obs.move_to
        kept = self._move_results.get(t.uid)
        if kept is None:  # after a restart: what the status says
            old = OperatorStatus.read(obs.status).condition(move.MOVED)
            if old is not None:
                kept = Cond(move.MOVED, old.get("status", "Unknown"), old.get("reason", ""),
                            old.get("message", ""))  # fmt: skip
        if target is None:
            self._ended_moves.pop(t.uid, None)
            self._moves.pop(t.uid, None)
            return kept
        if self._ended_moves.get(t.uid) == target:
            return kept  # our removal of the annotation is not in this view yet
        assert obs.vip is not None
        asked, since = self._moves.get(t.uid, (target, now))
        since = since if asked == target else now
        self._moves[t.uid] = (target, since)
        v = move.verdict(
            target, obs.vip, nodes=view.nodes, entry=entry, master=master,
            waited=(now - since).total_seconds(),
        )  # fmt: skip
        if v.outcome == "pending":
            return kept
        url = path(names.API_VERSION, names.KIND, t.namespace, t.name)
        self.kube.request(
            "PATCH", url, {"metadata": {"annotations": {MOVE_ANNOTATION: None}}},
            query=[("fieldManager", names.FIELD_MANAGER)], content_type=MERGE_PATCH,
        )  # fmt: skip
        self._moves.pop(t.uid, None)
        self._ended_moves[t.uid] = target
        cond = self._move_results[t.uid] = v.condition()
        logger.info("%s: %s", t.key, v.message)
        self.kube.post_event(t, "Normal" if cond.true else "Warning", cond.reason, v.message)
        return cond

    def _prune(self, t: Target, stale: tuple[Stale, ...]) -> None:
        """Remove dead agents' entries; each removal is guarded by a test of the name there."""
        ops: list[dict[str, Any]] = []
        for entry in sorted(stale, key=lambda s: -s.index):
            at = f"/status/nodes/{entry.index}"
            ops += [
                {"op": "test", "path": f"{at}/name", "value": entry.name},
                {"op": "remove", "path": at},
            ]
        url = path(names.API_VERSION, names.KIND, t.namespace, t.name) + "/status"
        try:
            self.kube.json_patch(url, ops)
        except ApiError as exc:
            if exc.status != 422:  # the list moved under us: the next round sees it
                raise
            return
        logger.info(
            "%s: pruned node entries %s",
            t.key,
            ", ".join(f"{s.name} ({s.why})" for s in stale),
        )

    def _lock(self, uid: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(uid, threading.Lock())


def _ident(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace")), str(meta["name"]))
