"""LoadBalancer Services of class ``keepvip.io/vrrp``: kopf wiring and the one loop applying plans.

Every Service, pool and VirtualIP event pokes one loop; each round snapshots
the three indices (on the event loop), lets :func:`keepvip_operator.pools.plan`
decide for all Services at once (in a thread) and applies the difference:
deletes VirtualIPs that serve nobody, writes those that changed, sets each
Service's ``keepvip.io/AddressAssigned`` condition (Event on every change),
and keeps the pools' status current. One loop, not a handler per Service:
allocation is a decision over all Services, and serialising it makes two
Services never get one address. A waiting Service is retried by the next
round that any change triggers, without an edit on it.

The source of truth is the VirtualIPs (indexed). The only memory is what
this process wrote in the last seconds and the watch does not show yet, so
the next round does not allocate twice.

The operator never writes ``status.loadBalancer.ingress`` here: the
VirtualIP's ``serviceRef`` makes the VirtualIP reconciliation publish it.
Service conditions are applied under their own field manager
(``keepvip-operator-loadbalancer``): a manager owns only what it applies,
so the ingress written by the publishing side is never removed by a
conditions-only apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import kopf

from keepvip_api import SpecError, from_api_object
from keepvip_api.pool import POOL_PLURAL
from keepvip_operator import names, pools
from keepvip_operator.conditions import Cond, merge
from keepvip_operator.kube import APPLY, ApiError, Kube
from keepvip_operator.lbmodel import (
    POOL_LABEL,
    Holding,
    LBService,
    Pool,
    read_pool,
    read_service,
    read_virtualip,
)
from keepvip_operator.resync import cancel
from keepvip_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)
FIELD_MANAGER = f"{names.FIELD_MANAGER}-loadbalancer"
PENDING_FOR = 15.0
"""How long a VirtualIP this process wrote stands in for the watch's view of it."""
RETRY = 5.0
SWEEP = 60.0
Handler = Callable[..., Any]


@dataclass
class LoadBalancers:
    kube: Kube
    settings: OperatorSettings
    indices: dict[str, Any] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _armed: bool = False
    _task: asyncio.Task[None] | None = None
    _pending: dict[str, tuple[Holding, float]] = field(default_factory=dict)
    _conds: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    _served: dict[str, tuple[str, str]] = field(default_factory=dict)
    """uid -> (namespace, name) of the Services that have our condition (this process's view)."""
    _pool_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seen: dict[str, Holding] = field(default_factory=dict)

    # -- the loop (event loop side) ----------------------------------------------------------

    def poke(self) -> None:
        self._armed = True  # a handler ran: every index is complete
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keepvip-lb")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWEEP):
                    await self._wake.wait()
            if not self._armed:
                continue
            await asyncio.sleep(0.05)  # a burst of events makes one round
            self._wake.clear()
            snapshot = self._snapshot()
            try:
                await asyncio.to_thread(self.round, *snapshot)
            except Exception as exc:  # one failed round must not stop the loop
                level = logging.WARNING if isinstance(exc, ApiError) else logging.ERROR
                logger.log(
                    level,
                    "load balancers: %s; retrying in %.0fs",
                    exc,
                    RETRY,
                    exc_info=level == logging.ERROR,
                )
                asyncio.get_running_loop().call_later(RETRY, self._wake.set)

    def _snapshot(self) -> tuple[list[LBService], list[Pool], list[Holding]]:
        def values(name: str) -> list[Any]:
            index: Mapping[str, Any] = self.indices.get(name, {})
            return [next(iter(s)) for s in index.values() if s]

        services = values("lb_services")
        pool_list = [p for p in values("lb_pools") if isinstance(p, Pool)]
        holdings = {h.key: h for h in values("lb_virtualips")}
        now = time.monotonic()
        for key, (written, until) in list(self._pending.items()):
            live = holdings.get(key)
            if now > until or (live is not None and _same_holding(live, written)):
                del self._pending[key]
            else:
                holdings[key] = written
        return services, pool_list, list(holdings.values())

    def changed_holding(self, holding: Holding | None, key: str) -> bool:
        """A VirtualIP event that matters for allocation (not an agent's heartbeat)."""
        before = self._seen.pop(key, None)
        if holding is None:
            return True
        self._seen[key] = holding
        return (
            before is None
            or not _same_holding(before, holding)
            or before.deleting != holding.deleting
        )

    # -- one round (worker thread) -----------------------------------------------------------

    def round(
        self, services: list[LBService], pool_list: list[Pool], holdings: list[Holding]
    ) -> None:
        """Apply one plan. A failed write does not stop the others; the first is raised at the
        end, and the loop tries again."""
        p = pools.plan(services, pool_list, holdings)
        live = {h.key: h for h in holdings}
        errors: list[ApiError] = []

        def attempt(what: str, call: Callable[[], object]) -> None:
            try:
                call()
            except ApiError as exc:
                logger.warning("%s: %s", what, exc)
                errors.append(exc)

        for key in p.delete:
            attempt(key, partial(self._delete, key))
        # Existing objects first: an address moving between two of ours is released first.
        for w in sorted(p.wanted, key=lambda w: w.key not in live):
            if w.body is not None and not _up_to_date(live.get(w.key), w.body):
                attempt(w.key, partial(self._apply, w, w.key in live))
        for svc in services:
            outcome = p.outcomes.get(svc.key)
            if outcome is not None:
                attempt(svc.key, partial(self._condition, svc, outcome))
        current = {svc.uid for svc in services}
        for uid, (ns, name) in list(self._served.items()):
            if uid not in current:  # no longer of the class (or gone): take our condition back
                attempt(f"{ns}/{name}", partial(self._withdraw_condition, ns, name))
                self._served.pop(uid, None)
                self._conds.pop(uid, None)
        by_name = {pool.name: pool for pool in pool_list}
        for name, status in p.pools.items():
            attempt(name, partial(self._write_pool_status, by_name[name], status))
        if errors:
            raise errors[0]

    def _delete(self, key: str) -> None:
        ns, name = key.split("/", 1)
        if self.kube.delete(names.API_VERSION, names.KIND, ns, name):
            logger.info("%s: deleted: it serves no Service any more", key)

    def _apply(self, w: pools.Wanted, existed: bool) -> None:
        assert w.body is not None
        applied = self.kube.apply(dict(w.body))
        self._pending[w.key] = (read_virtualip(applied), time.monotonic() + PENDING_FOR)
        logger.info(
            "%s: %s for %s", w.key, "updated" if existed else "created",
            ", ".join(s.key for s in w.services),
        )  # fmt: skip

    def _status_apply(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """Server-side apply of a Service's status under our manager; False if it is gone.

        An apply to the status of a missing Service tries to create it and is refused as
        invalid (422), not 404: look whether it still exists before raising.
        """
        url = f"/api/v1/namespaces/{namespace}/services/{name}"
        try:
            self.kube.request(
                "PATCH", url + "/status", body,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")], content_type=APPLY,
            )  # fmt: skip
        except ApiError as exc:
            if exc.status not in (404, 422):
                raise
            try:
                self.kube.request("GET", url)
            except ApiError as gone:
                if gone.not_found:
                    return False
                raise
            raise
        return True

    def _condition(self, svc: LBService, outcome: pools.Outcome) -> None:
        now = (outcome.status, outcome.reason, outcome.message)
        previous = self._conds.get(svc.uid)
        if previous is None:
            old = next((c for c in svc.conditions if c.get("type") == pools.CONDITION), None)
            previous = (
                (str(old.get("status")), str(old.get("reason")), str(old.get("message")))
                if old
                else None
            )
        self._served[svc.uid] = (svc.namespace, svc.name)
        if previous == now:
            self._conds[svc.uid] = now
            return
        cond = Cond(pools.CONDITION, outcome.status, outcome.reason, outcome.message)
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": svc.name, "namespace": svc.namespace},
            "status": {
                "conditions": merge(svc.conditions, [cond], svc.generation, datetime.now(UTC))
            },
        }
        if not self._status_apply(svc.namespace, svc.name, body):
            return
        self._conds[svc.uid] = now
        if previous is not None and previous[:2] == now[:2] and not outcome.warning:
            return  # the same assignment, reworded (say, another Service joined the share)
        logger.info("%s: %s: %s", svc.key, outcome.reason, outcome.message)
        self._event(
            svc, "Warning" if outcome.warning else "Normal", outcome.reason, outcome.message
        )

    def _withdraw_condition(self, namespace: str, name: str) -> None:
        """Apply no condition under our field manager: the API removes the one we owned."""
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "status": {"conditions": []},
        }
        self._status_apply(namespace, name, body)

    def _event(self, svc: LBService, type_: str, reason: str, message: str) -> None:
        involved = {"apiVersion": "v1", "kind": "Service", "name": svc.name, "uid": svc.uid}
        self.kube.post_event_on(involved, svc.namespace, type_, reason, message)

    def _write_pool_status(self, pool: Pool, status: pools.PoolStatus) -> None:
        body = status.body()
        if self._pool_status.get(pool.name, _plain(pool.status)) == body:
            return
        url = f"/apis/{names.API_VERSION}/{POOL_PLURAL}/{pool.name}/status"
        doc = {
            "apiVersion": names.API_VERSION,
            "kind": "VirtualIPPool",
            "metadata": {"name": pool.name},
            "status": body,
        }
        try:
            self.kube.request(
                "PATCH", url, doc, query=[("fieldManager", names.FIELD_MANAGER), ("force", "true")],
                content_type=APPLY,
            )  # fmt: skip
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self._pool_status[pool.name] = body


def _plain(status: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "assigned": status.get("assigned"),
        "available": status.get("available"),
        "services": list(status.get("services") or ()),
    }


def _same_holding(a: Holding, b: Holding) -> bool:
    return (a.addresses, a.services, sorted(a.owners), a.spec) == (
        b.addresses,
        b.services,
        sorted(b.owners),
        b.spec,
    )


def _up_to_date(live: Holding | None, body: Mapping[str, Any]) -> bool:
    if live is None or live.deleting:
        return False
    meta = body["metadata"]
    owners = sorted((o["name"], o["uid"]) for o in meta["ownerReferences"])
    return (
        live.spec == from_api_object(body).spec
        and sorted(live.owners) == owners
        and live.pool_label == meta["labels"][POOL_LABEL]
    )


# -- kopf wiring ------------------------------------------------------------------------------


def register(
    registry: kopf.OperatorRegistry,
    kube: Kube,
    settings: OperatorSettings,
    on: Callable[..., Callable[[Handler], Handler]],
) -> LoadBalancers:
    """Register the Service, pool and VirtualIP handlers of the load balancer; ``on`` as in handlers."""
    lb = LoadBalancers(kube, settings)
    default = settings.default_load_balancer

    @on(kopf.index, "v1", "services")
    def lb_services(body: kopf.Body, **_: Any) -> dict[str, LBService]:
        svc = read_service(body, default_load_balancer=default)
        return {svc.key: svc} if svc else {}

    @on(kopf.index, names.GROUP, names.VERSION, POOL_PLURAL)
    def lb_pools(body: kopf.Body, name: str | None, **_: Any) -> dict[str, Pool | SpecError]:
        return {str(name): read_pool(body)}

    @on(kopf.index, names.GROUP, names.VERSION, names.PLURAL)
    def lb_virtualips(body: kopf.Body, **_: Any) -> dict[str, Holding]:
        holding = read_virtualip(body)
        return {holding.key: holding}

    @on(kopf.on.startup)
    async def lb_start(**kwargs: Any) -> None:
        lb.indices = {k: kwargs[k] for k in ("lb_services", "lb_pools", "lb_virtualips")}
        lb.start()

    @on(kopf.on.cleanup)
    async def lb_stop(**_: Any) -> None:
        await lb.stop()

    @on(kopf.on.event, "v1", "services")
    async def lb_service_event(body: kopf.Body, **_: Any) -> None:
        spec = body.get("spec") or {}
        if (
            spec.get("type") == "LoadBalancer"
            or (body.get("metadata") or {}).get("uid") in lb._served
        ):
            lb.poke()

    @on(kopf.on.event, names.GROUP, names.VERSION, POOL_PLURAL)
    async def lb_pool_event(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
        pool = read_pool(body)
        if isinstance(pool, SpecError):
            logger.warning("invalid pool, no address is handed out from it: %s", pool)
        lb.poke()

    @on(kopf.on.event, names.GROUP, names.VERSION, names.PLURAL)
    async def lb_virtualip_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        holding = read_virtualip(body)
        if lb.changed_holding(None if type == "DELETED" else holding, holding.key):
            lb.poke()

    return lb
