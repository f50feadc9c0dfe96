"""kopf wiring: indices, handlers and the operator's kopf settings. No decisions are made here.

* Indices (kopf keeps them complete before any handler runs, so allocation
  sees every VirtualIP even right after a restart): the VirtualIPs as
  :class:`Observed`, the node agent DaemonSet and its pods (their node),
  the Nodes (as placement reads them) and the node agents' Leases in the
  agents' namespace (their renewTime: the nodes' liveness). DaemonSets and
  pods are filtered server-side by label, Leases in memory by name.
* ``on.resume/create/update`` -> :meth:`Reconciler.reconcile`, with kopf's
  retries: ``TemporaryError(delay=)`` when the API is away or busy,
  ``PermanentError`` for an invalid spec or an object the API refuses.
* ``on.event`` (VirtualIPs, agent pods, agent DaemonSets) -> poke the resync
  loop, which runs :meth:`Reconciler.refresh`. Agent status lives in
  ``status.nodes``; a field handler on it would make kopf store a diff base
  on every agent heartbeat, so status is handled level-based instead.
* ``on.delete`` only for VirtualIPs with a ``serviceRef`` (their addresses
  come off the Services); kopf adds its finalizer to those alone. A deleted
  VirtualIP also re-plans the agents' RBAC (a namespace may lose its Role).
* ``on.event`` for Services that a VirtualIP's ``serviceRef`` names (an
  in-memory filter on the index: no Service of anyone else gets a handler
  run) -> :meth:`Reconciler.publish_for`: a Service appearing gets the
  addresses, a user's apply that dropped them gets them back. Merged per
  VirtualIP (:class:`~keepvip_operator.resync.Coalesce`): a shared router's
  own writes on its Services come back as one event each.

Blocking work runs in threads (``asyncio.to_thread``) on a :class:`View`
snapshot taken here, on the event loop that owns the indices.

Several replicas: only the holder of the leader-election Lease runs kopf
at all (main.py, leader.py), so neither these handlers nor the resync loop
(started and stopped here, on kopf's startup and cleanup) run in a standby.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import kopf

from keepvip_api.acceptance import node_addresses
from keepvip_api.placement import NodeView
from keepvip_api.pool import POOL_PLURAL
from keepvip_api.subnets import NETWORKS_ANNOTATION, Network, parse_networks
from keepvip_api.times import parse_time
from keepvip_operator import grants, names, services
from keepvip_operator.allocate import Claim
from keepvip_operator.conditions import CONFLICT, status_of
from keepvip_operator.grants import IP
from keepvip_operator.kube import CONNECTIONS, ApiError, Kube, load_configuration
from keepvip_operator.lbmodel import Pool
from keepvip_operator.observed import Observed, observe
from keepvip_operator.reconcile import InvalidSpec, Reconciler, View, sweep_keys
from keepvip_operator.resync import Coalesce, Resync
from keepvip_operator.settings import OperatorSettings
from keepvip_operator.upgrade import VIRTUALIP_LABEL, OldObject, by_virtualip

RESOURCE = (names.GROUP, names.VERSION, names.PLURAL)
AGENT_LABELS = dict(names.NODE_AGENT_SELECTOR)
LEGACY_LABELS = {**names.AGENT_OBJECT_LABELS, VIRTUALIP_LABEL: kopf.PRESENT}
# Retry delays for API trouble: busy or away (5xx, 429, 409, no connection) vs refused (403).
BUSY_DELAY, REFUSED_DELAY = 5.0, 30.0
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """What the handlers share: settings, the API adapter, the reconciler, the resync loop."""

    settings: OperatorSettings
    kube: Kube
    reconciler: Reconciler
    indices: dict[str, Any] = field(default_factory=dict)
    resync: Resync | None = None
    publisher: Coalesce | None = None
    """publish_for per VirtualIP, on its Services' events (merged while one runs)."""
    claims_seen: dict[str, Claim] = field(default_factory=dict)
    retry: set[str] = field(default_factory=set)
    """VirtualIPs whose last refresh failed: the next sweep looks at them again."""
    _alive_swept: frozenset[str] | None = None
    """Each VirtualIP's claim at its last event: did an event change addresses or VRID?"""
    _view: View | None = None

    @classmethod
    def create(cls, settings: OperatorSettings) -> Context:
        kube = Kube.connect(settings.kubeconfig)
        return cls(settings=settings, kube=kube, reconciler=Reconciler(kube, settings))

    def view(self) -> View:
        """A snapshot of the indices; call on the event loop.

        Cached until an event handler says an index changed (every indexed
        resource has one), so a sweep over all objects snapshots once.
        """
        if self._view is None:
            self._view = self._snapshot()
        return self._view

    def changed(self) -> None:
        self._view = None

    def _snapshot(self) -> View:
        vips = cast(Mapping[str, Iterable[Observed]], self.indices.get("virtualips", {}))
        daemonsets = cast(Mapping[str, Iterable[bool]], self.indices.get("agent_daemonset", {}))
        old = [
            cast(Mapping[str, Iterable[OldObject]], self.indices.get(k, {}))
            for k in ("legacy_daemonsets", "legacy_pods")
        ]
        pods = cast(Mapping[str, Iterable[str]], self.indices.get("agent_pods", {}))
        nodes = cast(Mapping[str, Iterable[NodeView]], self.indices.get("nodes", {}))
        leases = cast(Mapping[str, Iterable[Any]], self.indices.get("node_leases", {}))
        pools = cast(Mapping[str, Iterable[Any]], self.indices.get("lb_pools", {}))
        ips = cast(Mapping[str, Iterable[tuple[IP, ...]]], self.indices.get("node_ips", {}))
        nets = cast(Mapping[str, Iterable[Any]], self.indices.get("node_networks", {}))
        labels = cast(Mapping[str, Iterable[Any]], self.indices.get("namespace_labels", {}))
        return View(
            pools=tuple(
                sorted(
                    (p for s in pools.values() for p in s if isinstance(p, Pool)),
                    key=lambda p: p.name,
                )
            ),
            node_addresses=grants.node_address_map({k: next(iter(s)) for k, s in ips.items() if s}),
            node_networks={k: next(iter(s)) for k, s in nets.items() if s},
            namespace_labels={k: next(iter(s)) for k, s in labels.items() if s},
            # One object per key: namespace/name is unique.
            vips={k: next(iter(s)) for k, s in vips.items() if s},
            agent_nodes=frozenset(k for k, s in pods.items() if s),
            nodes={k: next(iter(s)) for k, s in nodes.items() if s},
            renewals={k: next(iter(s)) for k, s in leases.items() if s},
            daemonset=any(daemonsets.values()),
            agents_ready=any(any(s) for s in daemonsets.values()),
            legacy=by_virtualip(o for index in old for objs in index.values() for o in objs),
        )

    def sweep(self) -> list[str]:
        """The keys a periodic sweep re-judges (:func:`sweep_keys`, and the failed ones)."""
        keys, self._alive_swept = sweep_keys(
            self.view(), self._alive_swept, datetime.now(UTC), self.settings.heartbeat_timeout
        )
        failed, self.retry = self.retry - set(keys), set()
        return keys + sorted(failed)

    def poke(self, *keys: str, rejudge: bool = True) -> None:
        self.changed()
        if self.resync is not None:
            self.resync.poke(*keys, rejudge=rejudge)


BATCH_WINDOW = 0.02


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    ks = kopf.OperatorSettings()
    # The CRD's schema is strict (status.kopf would be pruned): keep kopf's state in annotations.
    ks.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="keepvip.io")
    ks.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="keepvip.io", key="last-handled-configuration"
    )
    ks.persistence.finalizer = "keepvip.io/cross-namespace-cleanup"  # the name stays: upgrades
    # Events with meaning (MasterChanged, Conflict, ...) are posted explicitly; the
    # per-object log becomes Events only for warnings and errors.
    ks.posting.level = logging.WARNING
    # Pods and DaemonSets: the node agents', and the per-VirtualIP ones of keepvip before 0.2
    # (upgrade.py).
    ks.watching.label_selectors["v1", "pods"] = names.selector_string(names.AGENT_OBJECT_LABELS)
    ks.watching.label_selectors["apps", "v1", "daemonsets"] = names.selector_string(
        names.AGENT_OBJECT_LABELS
    )
    # Without these a silently dropped connection can leave a watch hanging for ever.
    ks.watching.connect_timeout = 10
    ks.watching.server_timeout = 300
    ks.watching.client_timeout = 330
    # kopf waits this long after an object's event for more before handling it (0.1 s by
    # default). A new master's entry reaches status.master through this window, and a new
    # VirtualIP's VRID reaches the agents through it (issue 12: apply to master under 1 s);
    # bursts of one object's events still coalesce within it.
    ks.batching.batch_window = BATCH_WINDOW
    # No queueing.worker_limit: with indices, kopf holds every object's worker until all
    # are indexed, so a limit below the number of objects deadlocks a restart.
    return ks


def _lease_networks(body: Mapping[str, Any]) -> tuple[Network, ...]:
    """The connected networks a node agent publishes on its Lease (keepvip_api.subnets)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return parse_networks(annotations.get(NETWORKS_ANNOTATION))


def _lease_renewal(body: Mapping[str, Any]) -> Any:
    """A Lease's renewTime (else acquireTime) as a time; None if it has neither."""
    spec = body.get("spec") or {}
    return parse_time(spec.get("renewTime") or spec.get("acquireTime"))


def _has_service_ref(spec: kopf.Spec, **_: Any) -> bool:
    return isinstance(spec.get("serviceRef"), Mapping)


def _referencing(view: View, namespace: str | None, name: str | None) -> list[str]:
    """Keys of the VirtualIPs whose serviceRef names this Service."""
    out = []
    for key, obs in view.vips.items():
        ref = obs.vip.spec.service_ref if obs.vip is not None else None
        if ref is not None and obs.target.namespace == namespace and name in ref.services:
            out.append(key)
    return out


def _api_trouble(exc: ApiError) -> kopf.TemporaryError | kopf.PermanentError:
    if exc.transient:
        return kopf.TemporaryError(str(exc), delay=BUSY_DELAY)
    if exc.status in (401, 403, 404):  # RBAC being fixed, a namespace being created
        return kopf.TemporaryError(str(exc), delay=REFUSED_DELAY)
    return kopf.PermanentError(f"the API refused a rendered object (a bug): {exc}")


def _affected_by(obs: Observed, view: View, claim: Callable[[Observed], Claim]) -> list[str]:
    """VirtualIPs whose conflict state may change because ``obs`` changed or went away."""
    me = claim(obs)
    out = []
    for key, other in view.vips.items():
        if key == obs.key:
            continue
        theirs = claim(other)
        blocked = status_of(other.status.get("conditions") or (), CONFLICT) == "True"
        if blocked or (me.addresses & theirs.addresses) or (me.vrids & theirs.vrids):
            out.append(key)
    return out


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:  # noqa: PLR0915 - wiring
    """Register every handler on ``registry``, bound to ``ctx``."""

    def on(decorator: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[F], F]:
        # Explicit ids: the default (the qualified name, "register.<locals>.x") would end up
        # in kopf's annotation keys and index names.
        def wrap(fn: F) -> F:
            decorator(*args, registry=registry, id=fn.__name__, **kwargs)(fn)
            return fn

        return wrap

    # -- indices ------------------------------------------------------------------------------

    agent_ns = ctx.settings.agent_namespace
    watched = set(ctx.settings.watch_namespaces)

    def _ours(namespace: str | None, **_: Any) -> bool:
        """VirtualIPs of the watched namespaces (kopf also watches the agents' namespace)."""
        return not watched or namespace in watched

    def _in_agent_namespace(namespace: str | None, **_: Any) -> bool:
        return namespace == agent_ns

    def _node_lease(name: str | None, namespace: str | None, **_: Any) -> bool:
        return namespace == agent_ns and names.node_of_lease(name or "") is not None

    @on(kopf.index, *RESOURCE, when=_ours)
    def virtualips(body: kopf.Body, **_: Any) -> dict[str, Observed]:
        obs = observe(body)
        return {obs.key: obs}

    @on(kopf.index, "apps", "v1", "daemonsets", labels=AGENT_LABELS, when=_in_agent_namespace)
    def agent_daemonset(name: str | None, status: kopf.Status, **_: Any) -> dict[str, bool]:
        """The node agent DaemonSet -> whether it has a Ready pod on every node it wants."""
        if name != names.NODE_AGENT_NAME:
            return {}
        desired = status.get("desiredNumberScheduled") or 0
        return {str(name): desired > 0 and (status.get("numberReady") or 0) >= desired}

    def _old(kind: str, body: kopf.Body) -> dict[str, OldObject]:
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        old = OldObject(
            kind=kind,
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            virtualip=str((meta.get("labels") or {}).get(VIRTUALIP_LABEL)),
            node=spec.get("nodeName") if kind == "Pod" else None,
            deleting=bool(meta.get("deletionTimestamp")),
        )
        return {old.key: old}

    @on(kopf.index, "apps", "v1", "daemonsets", labels=LEGACY_LABELS, when=_ours)
    def legacy_daemonsets(body: kopf.Body, **_: Any) -> dict[str, OldObject]:
        """Per-VirtualIP DaemonSets of keepvip before 0.2, by their VirtualIP (upgrade.py)."""
        return _old("DaemonSet", body)

    @on(kopf.index, "v1", "pods", labels=LEGACY_LABELS, when=_ours)
    def legacy_pods(body: kopf.Body, **_: Any) -> dict[str, OldObject]:
        """Their agent pods, by their VirtualIP."""
        return _old("Pod", body)

    @on(kopf.index, "v1", "pods", labels=AGENT_LABELS, when=_in_agent_namespace)
    def agent_pods(spec: kopf.Spec, name: str | None, **_: Any) -> dict[str, str]:
        node = spec.get("nodeName")
        return {str(node): str(name)} if node else {}

    @on(kopf.index, "v1", "nodes")
    def nodes(body: kopf.Body, name: str | None, **_: Any) -> dict[str, NodeView]:
        return {str(name): NodeView.from_api_object(body)}

    @on(kopf.index, "v1", "nodes")
    def node_ips(body: kopf.Body, name: str | None, **_: Any) -> dict[str, tuple[IP, ...]]:
        """Each Node's own addresses: no VirtualIP may claim them (grants.py)."""
        return {str(name): tuple(sorted(node_addresses(body), key=str))}

    if ctx.settings.trusted_namespace_label is not None:

        @on(kopf.index, "v1", "namespaces")
        def namespace_labels(body: kopf.Body, name: str | None, **_: Any) -> dict[str, Any]:
            """Namespace labels: the trusted ones (settings.trusted_namespace_label)."""
            return {str(name): dict((body.get("metadata") or {}).get("labels") or {})}

        @on(kopf.on.event, "v1", "namespaces")
        async def namespace_event(**_: Any) -> None:
            _all(rejudge=True)

    pool_specs: dict[str, Any] = {}

    @on(kopf.on.event, names.GROUP, names.VERSION, POOL_PLURAL)
    async def grant_pool_event(body: kopf.Body, name: str | None, type: str | None,
                               **_: Any) -> None:  # fmt: skip
        spec = None if type == "DELETED" else dict(body.get("spec") or {})
        if pool_specs.get(str(name)) != spec:  # not on the operator's own status writes
            pool_specs[str(name)] = spec
            _all(rejudge=True)  # granted, narrowed or withdrawn: every VirtualIP judged again

    @on(kopf.index, "coordination.k8s.io", "v1", "leases", when=_node_lease)
    def node_leases(body: kopf.Body, name: str | None, **_: Any) -> dict[str, Any]:
        node = names.node_of_lease(name or "")
        return {node: _lease_renewal(body)} if node else {}

    @on(kopf.index, "coordination.k8s.io", "v1", "leases", when=_node_lease)
    def node_networks(body: kopf.Body, name: str | None, **_: Any) -> dict[str, Any]:
        """Each node's connected networks, as its agent publishes them (grants.py)."""
        node = names.node_of_lease(name or "")
        return {node: _lease_networks(body)} if node else {}

    # -- life cycle of the operator ----------------------------------------------------------

    @on(kopf.on.login)
    def login(**_: Any) -> kopf.ConnectionInfo:
        cfg = load_configuration(ctx.settings.kubeconfig)
        header = cfg.get_api_key_with_prefix("BearerToken") or ""
        scheme, _sep, token = header.rpartition(" ")
        return kopf.ConnectionInfo(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            scheme=scheme or ("Bearer" if token else None),
            token=token or None,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
        )

    @on(kopf.on.startup)
    async def start(**kwargs: Any) -> None:
        # Reconciliation waits on the API, not the CPU: more threads than asyncio's
        # default (cores + 4), so a burst of new VirtualIPs is not serialised.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=CONNECTIONS, thread_name_prefix="keepvip")
        )
        ctx.indices = {
            k: kwargs[k]
            for k in (
                "virtualips",
                "agent_daemonset",
                "legacy_daemonsets",
                "legacy_pods",
                "agent_pods",
                "nodes",
                "node_ips",
                "node_leases",
                "node_networks",
                "lb_pools",
                "namespace_labels",
            )
            if k in kwargs
        }

        async def refresh(key: str, rejudge: bool) -> None:
            try:
                await asyncio.to_thread(ctx.reconciler.refresh, key, ctx.view(), rejudge=rejudge)
            except ApiError as exc:
                ctx.retry.add(key)
                logging.getLogger(__name__).warning("%s: refresh: %s", key, exc)
            except Exception:
                ctx.retry.add(key)
                raise

        ctx.resync = Resync(refresh, ctx.sweep, interval=ctx.settings.resync_interval)
        ctx.resync.start()

        async def publish(key: str) -> None:
            try:
                await asyncio.to_thread(ctx.reconciler.publish_for, key, ctx.view())
            except ApiError as exc:
                logging.getLogger(__name__).warning("%s: publishing: %s", key, exc)

        ctx.publisher = Coalesce(publish)

    @on(kopf.on.cleanup)
    async def stop(**_: Any) -> None:
        if ctx.resync is not None:
            await ctx.resync.stop()
        if ctx.publisher is not None:
            await ctx.publisher.stop()

    # -- VirtualIPs ----------------------------------------------------------------------------

    @on(kopf.on.resume, *RESOURCE, when=_ours)
    @on(kopf.on.create, *RESOURCE, when=_ours)
    @on(kopf.on.update, *RESOURCE, when=_ours)
    async def reconcile(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        obs = observe(body)
        if obs.deleting:
            return
        try:
            decision = await asyncio.to_thread(ctx.reconciler.reconcile, obs, ctx.view())
        except InvalidSpec as exc:
            raise kopf.PermanentError(f"invalid spec: {exc}") from None
        except ApiError as exc:
            raise _api_trouble(exc) from None
        if decision.rollout:
            logger.info("reconciled: VRID %s, agents rolled out", decision.vrid)
        elif decision.refused and decision.verdict is not None:
            accepted = decision.verdict.accepted
            logger.info("reconciled: not accepted: %s: %s", accepted.reason, accepted.message)
        else:
            logger.info("reconciled: not rolled out: %s", decision.conflicts[0].message)

    @on(kopf.on.event, *RESOURCE, when=_ours)
    async def virtualip_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        assert ctx.resync is not None
        ctx.resync.arm()  # handlers run only once every index is complete
        ctx.changed()
        view = ctx.view()
        fresh = observe(body)
        obs = view.vips.get(fresh.key, fresh)  # the indexed one: its claim gets cached
        claim = ctx.reconciler.claim(obs)
        if type == "DELETED":
            ctx.poke(*_affected_by(obs, view, ctx.reconciler.claim))
            ctx.reconciler.forget(fresh.target)
            ctx.claims_seen.pop(obs.key, None)
            try:  # its namespace may need no agent RBAC any more
                await asyncio.to_thread(ctx.reconciler.converge_agents, ctx.view())
            except ApiError as exc:
                logging.getLogger(__name__).warning("node agents' objects: %s", exc)
        elif type is None:  # the initial listing: the resume handlers judge everything anyway
            ctx.claims_seen[obs.key] = claim
            ctx.poke(obs.key, rejudge=False)
        elif ctx.claims_seen.get(obs.key) != claim:  # addresses, VRID: others may be concerned
            ctx.claims_seen[obs.key] = claim
            ctx.poke(obs.key, *_affected_by(obs, view, ctx.reconciler.claim))
        else:  # an agent's entry, most likely: only this object's status
            ctx.poke(obs.key, rejudge=False)

    def _ours_fronting(spec: kopf.Spec, namespace: str | None, **_: Any) -> bool:
        return _ours(namespace) and _has_service_ref(spec)

    @on(kopf.on.delete, *RESOURCE, when=_ours_fronting)
    async def withdraw_from_services(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        target = observe(body).target
        try:  # a Service that is gone is fine: only labelled ones are listed
            await asyncio.to_thread(ctx.reconciler.withdraw, target)
        except ApiError as exc:
            raise _api_trouble(exc) from None
        logger.info("removed the addresses from the Services")

    def _fronted(namespace: str | None, name: str | None, **_: Any) -> bool:
        return bool(_referencing(ctx.view(), namespace, name))

    @on(kopf.on.event, "v1", "services", when=_fronted)
    async def fronted_service_event(namespace: str | None, name: str | None, **_: Any) -> None:
        assert ctx.publisher is not None
        for key in _referencing(ctx.view(), namespace, name):
            ctx.publisher.poke(key)

    # -- LoadBalancer Services and VirtualIPPools (services.py) -----------------------------------

    services.register(registry, ctx.kube, ctx.settings, on)

    # -- the agents' objects -------------------------------------------------------------------

    def _all(rejudge: bool) -> None:
        ctx.poke(*ctx.view().vips, rejudge=rejudge)

    @on(kopf.on.event, "v1", "pods", labels=AGENT_LABELS, when=_in_agent_namespace)
    async def agent_pod_event(**_: Any) -> None:
        _all(rejudge=False)  # which nodes run agents: status (entries counted, NoNode)

    @on(kopf.on.event, "apps", "v1", "daemonsets", labels=AGENT_LABELS, when=_in_agent_namespace)
    async def agent_daemonset_event(**_: Any) -> None:
        _all(rejudge=False)  # gone: the next refresh applies it again; Ready: the upgrade goes on

    @on(kopf.on.event, "apps", "v1", "daemonsets", labels=LEGACY_LABELS, when=_ours)
    @on(kopf.on.event, "v1", "pods", labels=LEGACY_LABELS, when=_ours)
    async def legacy_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        ctx.poke(f"{namespace}/{labels.get(VIRTUALIP_LABEL)}", rejudge=False)  # Upgrading

    placements: dict[str, Any] = {}
    addresses: dict[str, Any] = {}

    @on(kopf.on.event, "v1", "nodes")
    async def node_event(body: kopf.Body, name: str | None, type: str | None, **_: Any) -> None:
        now = None if type == "DELETED" else _placement_of(body)
        ips = None if type == "DELETED" else node_addresses(body)
        if addresses.get(str(name)) != ips:  # a node's own address: judged again (grants)
            addresses[str(name)] = ips
            placements[str(name)] = now
            _all(rejudge=True)
        elif placements.get(str(name)) != now:  # not on every kubelet status update
            placements[str(name)] = now
            _all(rejudge=False)

    networks: dict[str, Any] = {}

    @on(kopf.on.event, "coordination.k8s.io", "v1", "leases", when=_node_lease)
    async def node_lease_event(
        body: kopf.Body, name: str | None, type: str | None, **_: Any
    ) -> None:
        ctx.changed()  # renewals: the resync sweep ages the entries out
        node = names.node_of_lease(name or "")
        now = None if type == "DELETED" else _lease_networks(body)
        if node is not None and networks.get(node) != now:  # a node's networks: judged again
            networks[node] = now
            _all(rejudge=True)


def _placement_of(node: Any) -> Any:
    if not isinstance(node, Mapping):
        return None
    view = NodeView.from_api_object(node)
    return (dict(view.labels), view.taints)
