"""Reconciliation of one VirtualIP: decide, apply or withdraw the agents, write status.

No kopf here: the handlers call :meth:`Reconciler.reconcile` (on create,
update and resume, with kopf's retries) and :meth:`Reconciler.refresh`
(from the resync loop: agent status changes, stale heartbeats, another
VirtualIP going away). With ``spec.serviceRef`` both also publish the
addresses on the Services (decided by :mod:`publish`; a Service that is not
there yet is a condition, not an error), and :meth:`Reconciler.publish_for`
does it again when one of those Services changes. Both work on a :class:`View`, a snapshot of the
operator's indices taken on the event loop, so the worker threads never read
a structure the loop is changing.

Decisions that span objects (VRIDs, metrics ports) are made under one lock
and remembered until the API shows them, so two VirtualIPs created together
never get the same number from this process. Per object, one lock
serialises the handler and the resync loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from keepvip_operator import names, publish
from keepvip_operator.aggregate import Stale, aggregate
from keepvip_operator.allocate import (
    Claim,
    Conflict,
    choose_port,
    choose_vrid,
    claim_of,
    find_conflicts,
)
from keepvip_operator.conditions import Cond, put
from keepvip_operator.kube import ApiError, Kube, path
from keepvip_operator.names import Target
from keepvip_operator.observed import Observed
from keepvip_operator.rbac import render_cross_namespace_rbac
from keepvip_operator.render import render_namespaced
from keepvip_operator.settings import OperatorSettings
from keepvip_operator.statusplan import Decision, OperatorStatus, plan

logger = logging.getLogger(__name__)
RBAC = "rbac.authorization.k8s.io/v1"
MERGE_PATCH = "application/merge-patch+json"
CONVERGE_GRACE = 10.0


class InvalidSpec(Exception):
    """The VirtualIP cannot be reconciled until its spec changes."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class View:
    """What the operator knows about the cluster at one moment (keys are "namespace/name")."""

    vips: Mapping[str, Observed] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    """Metrics port of each VirtualIP's DaemonSet, for those that have one."""
    agent_nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Nodes running an agent pod, per VirtualIP."""


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
        self._ports: dict[str, int] = {}
        self._converged: dict[str, tuple[bool, int | None, float]] = {}
        self._claims: dict[str, tuple[Observed, Claim]] = {}
        self._decisions: dict[str, tuple[Decision, int | None]] = {}
        self._elsewhere: dict[str, bool] = {}
        self._published: dict[str, Cond | None] = {}
        """ServicePublished per VirtualIP uid, as last decided (None: no serviceRef)."""

    # -- entry points -------------------------------------------------------------------------

    def reconcile(self, obs: Observed, view: View) -> Decision:
        """Bring the agents' objects and the status in line with the spec; raises InvalidSpec."""
        failure: ApiError | None = None
        with self._lock(obs.target.uid):
            decision, port = self._decide(obs, view)
            self._converge(obs, decision, port)
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

        Writes status only if it changed; redoes the rollout only if the
        decision flipped (a conflict appeared or cleared, the DaemonSet went
        missing). Objects whose current generation is not reconciled yet are
        left to the handlers, which retry them. ``rejudge=False`` reuses the
        last decision: only the agents' status is looked at.
        """
        obs = view.vips.get(key)
        if obs is None or obs.deleting:
            return
        with self._lock(obs.target.uid):
            previous = self._previous(obs)
            if previous.observed_generation != obs.generation:
                return
            last = self._decisions.get(key)
            decision, port = last if last and not rejudge else self._decide(obs, view)
            if not decision.invalid and self._drifted(key, decision, port, view):
                logger.info(
                    "%s: %s",
                    key,
                    "rolling out agents" if decision.rollout else "withdrawing agents",
                )
                self._converge(obs, decision, port)
                self._publish(obs, decision)
            self._write_status(obs, decision, view, observed_generation=obs.generation)

    def publish_for(self, key: str, view: View) -> None:
        """One of the VirtualIP's Services changed (or appeared, or went): publish again."""
        obs = view.vips.get(key)
        last = self._decisions.get(key)
        if obs is None or obs.deleting or last is None:
            return  # not reconciled yet: the handler publishes
        with self._lock(obs.target.uid):
            self._publish(obs, last[0])
        self.refresh(key, view, rejudge=False)

    def _drifted(self, key: str, decision: Decision, port: int | None, view: View) -> bool:
        """The deployed agents (per the DaemonSet index) differ from the decision.

        Right after converging, the index may not show our own change yet:
        the same decision within ``CONVERGE_GRACE`` seconds is taken as done.
        """
        deployed = view.ports.get(key)
        if decision.rollout == (deployed is not None) and (port is None or port == deployed):
            return False
        last = self._converged.get(key)
        return not (
            last is not None
            and last[:2] == (decision.rollout, port)
            and time.monotonic() - last[2] < CONVERGE_GRACE
        )

    def forget(self, t: Target) -> None:
        """The VirtualIP is gone: drop what was remembered about it."""
        with self._alloc:
            self._vrids.pop(t.key, None)
            self._ports.pop(t.key, None)
        self._converged.pop(t.key, None)
        self._claims.pop(t.key, None)
        self._decisions.pop(t.key, None)
        self._elsewhere.pop(t.uid, None)
        with self._locks_guard:
            self._locks.pop(t.uid, None)
        self._written.pop(t.uid, None)
        self._last_master.pop(t.uid, None)
        self._published.pop(t.uid, None)

    def cleanup(self, t: Target) -> None:
        """Remove what garbage collection cannot: RBAC in other namespaces."""
        self.kube.delete_all(self._cross_namespace_objects(t))

    def withdraw(self, t: Target) -> None:
        """The VirtualIP is being deleted: take its addresses off every Service it published on."""
        for svc in self._labelled_services(t):
            self._write_service(t, svc, ())

    # -- publishing on Services (decisions in publish.py) ---------------------------------------

    def _publish(self, obs: Observed, decision: Decision) -> None:
        """Publish on the serviceRef Services (withdraw if not rolled out), sweep the others."""
        t, vip = obs.target, obs.vip
        if vip is None:
            return  # invalid spec: leave everything as it is
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

    def _decide(self, obs: Observed, view: View) -> tuple[Decision, int | None]:
        if obs.vip is None:
            return Decision(vrid=obs.status_vrid, invalid=obs.problems), None
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
            port = None
            if not conflicts:
                used = {p for k, p in view.ports.items() if k != key}
                used |= {p for k, p in self._ports.items() if k != key}
                current = view.ports.get(key, self._ports.get(key))
                first, count = self.settings.agent_metrics_port, self.settings.agent_metrics_ports
                port = choose_port(current, used, first, count)
                if port is None:
                    conflicts.append(
                        Conflict("NoFreeMetricsPort", f"all {count} agent metrics ports are in use")
                    )
            if port is None:
                self._ports.pop(key, None)
            else:
                self._ports[key] = port
        self._decisions[key] = (Decision(vrid=vrid, conflicts=tuple(conflicts)), port)
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

    def _converge(self, obs: Observed, decision: Decision, port: int | None) -> None:
        t = obs.target
        if decision.invalid:
            return  # the agents keep their last valid configuration; nothing to change
        self._converged[t.key] = (decision.rollout, port, time.monotonic())
        if not decision.rollout or port is None:
            if self.kube.delete("apps/v1", "DaemonSet", t.namespace, names.child_name(t.name)):
                logger.info(
                    "%s: deleted the agents' DaemonSet (%s)", t.key, decision.conflicts[0].reason
                )
            return
        assert obs.vip is not None  # a valid spec, or decision.invalid
        for obj in render_namespaced(obs.vip, t, self.settings, port):
            self.kube.apply(obj)
        wanted = render_cross_namespace_rbac(obs.vip, t)
        for obj in wanted:
            self.kube.apply(obj)
        # Look for leftovers elsewhere only when there may be some: after a start, or when
        # this object had (or has) RBAC in another namespace.
        if wanted or self._elsewhere.get(t.uid, True):
            keep = {_ident(o) for o in wanted}
            stale = [o for o in self._cross_namespace_objects(t) if _ident(o) not in keep]
            self.kube.delete_all(stale)
        self._elsewhere[t.uid] = bool(wanted)

    def _cross_namespace_objects(self, t: Target) -> list[dict[str, Any]]:
        labels = f"{names.OWNER_UID_LABEL}={t.uid}"
        return [
            *self.kube.list(RBAC, "RoleBinding", None, labels=labels),
            *self.kube.list(RBAC, "Role", None, labels=labels),
        ]

    def _previous(self, obs: Observed) -> OperatorStatus:
        """What the operator last wrote: memory first (the watch may lag behind our own write)."""
        return self._written.get(obs.target.uid) or OperatorStatus.read(obs.status)

    def _write_status(
        self, obs: Observed, decision: Decision, view: View, *, observed_generation: int
    ) -> None:
        t = obs.target
        previous = self._previous(obs)
        raw_nodes = [n for n in obs.status.get("nodes") or () if isinstance(n, Mapping)]
        agg = aggregate(
            raw_nodes,
            agent_nodes=view.agent_nodes.get(t.key, frozenset()),
            now=self.clock(),
            previous_master=previous.master,
            heartbeat_timeout=self.settings.heartbeat_timeout,
        )
        p = plan(
            previous,
            decision,
            agg,
            observed_generation=observed_generation,
            now=self.clock(),
            last_master=self._last_master.get(t.uid),
        )
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
