"""The split-brain Lease and API fencing, on the wire: read and write the Lease, apply decisions.

The rules (when to create, renew, take over or give back the Lease; when a
master steps down for a live holder and when it rejoins; ``fencing: strict``)
are :class:`~keepvip_agent.kube.arbiter.Arbiter`'s, on injected time. This
module is the shell around it: the coordination.k8s.io calls, the two loops
(a Lease round every ``renew`` seconds; the API's reachability judged every
``renew / 2`` on its own, never behind a hung request), and the few places it
touches the instance runner (see "runner access" below).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import ApiError
from keepvip_agent.kube.arbiter import (
    ApiFence,
    ApiReachable,
    Arbiter,
    Create,
    LeaseView,
    Rejoin,
    Release,
    Renew,
    StepDown,
    TakeOver,
)
from keepvip_agent.vrrp.packet import IPAddress
from keepvip_agent.vrrp.router import State
from keepvip_api.cluster import OnFailure
from keepvip_api.names import SPLIT_BRAIN_FAULT as SPLIT_BRAIN
from keepvip_api.names import lease_name
from keepvip_api.times import micro_time

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube
    from keepvip_agent.runtime.instance import InstanceRunner

logger = logging.getLogger(__name__)
FAULT = OnFailure(action="fault")
API_FENCE = "api fencing"
NOT_FOUND, CONFLICT = 404, 409


class LeaseArbiter:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        node: str,
        *,
        renew: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        lease: str | None = None,
    ) -> None:
        self.kube, self.namespace, self.node = kube, namespace, node
        self.lease_name = lease or lease_name(name)
        self.annotations: dict[str, str] = {}
        """Put on a Lease this node creates (the node agent names the VirtualIP there)."""
        self.core = Arbiter(node, self.lease_name, renew=renew)
        self.clock = clock
        """Monotonic, like ``Kube.last_ok`` and the loop's clock (``last_heard``)."""
        self.inst: InstanceRunner | None = None
        self.holder_address: Callable[[str], IPAddress | None] = lambda node: None
        """Where the named node's advertisements come from (Kubernetes: its agent pod's host IP)."""
        self._task: asyncio.Task[None] | None = None
        self._fence_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._warned = False

    @property
    def renew(self) -> float:
        return self.core.renew

    @property
    def duration(self) -> float:
        return self.core.duration

    @property
    def fencing(self) -> str:
        return self.core.fencing

    @fencing.setter
    def fencing(self, value: str) -> None:
        self.core.fencing = value

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._fence_task = loop.create_task(self._watch_api())

    async def stop(self) -> None:
        for task in (self._task, self._fence_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            async with asyncio.timeout(3.0):
                await self._release()
        except Exception as exc:  # best effort on the way out
            logger.info("lease release skipped: %s", exc)

    async def _run(self) -> None:
        while True:
            try:
                # Bounded: against a hung API server a call blocks for its timeout
                # times the client's retries; the next round simply tries again.
                async with asyncio.timeout(self.duration):
                    await self.round()
                self._warned = False
            except Exception as exc:
                if not self._warned:
                    logger.warning(
                        "lease %s/%s: %s", self.namespace, self.lease_name, exc or "timed out"
                    )
                    self._warned = True
            await asyncio.sleep(self.renew)

    async def _watch_api(self) -> None:
        """Judge the API's reachability on its own clock, never behind a hung request."""
        while True:
            await asyncio.sleep(self.renew / 2)
            self._check_api_fence()

    # -- one round ---------------------------------------------------------------------

    async def round(self) -> None:
        inst = self.inst
        if inst is None:
            return
        master = _is_master(inst)
        lease = await self._read()
        action = self.core.round(self.clock(), master, self._view(lease))
        if isinstance(action, Create):
            await self._create(action.duration)
        elif isinstance(action, Renew):
            await self._renew(lease)
        elif isinstance(action, TakeOver):
            logger.info(
                "taking over lease %s from %s (not renewed)",
                self.lease_name,
                action.previous or "nobody",
            )
            await self._write(lease, take_over=action.duration)
        elif isinstance(action, Release):
            await self._release_lease(lease)
        elif isinstance(action, StepDown):
            logger.warning("%s: stepping down (%s): %s", _name(inst), SPLIT_BRAIN, action.reason)
            _report(inst, SPLIT_BRAIN, False, action.reason)
        # Only once the round's write went through, as a failed one ends the round.
        rejoin = self.core.heal(self._heard_from(inst, self.core.fenced))
        if rejoin is not None:
            self._rejoin(inst, rejoin)

    def _view(self, lease: Any) -> LeaseView | None:
        """The arbiter's reading of ``lease``: its holder, and the renewal that proves it alive.

        Here the Lease's own renewTime; the node agent's shell reads the holder's node Lease.
        """
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        return LeaseView(spec.get("holderIdentity"), spec.get("renewTime"))

    async def _renew(self, lease: Any) -> None:
        await self._write(lease)

    def _api_ok(self) -> float:
        """When the API last answered (monotonic): what ``fencing: strict`` judges."""
        return self.kube.last_ok

    def _heard_from(self, inst: InstanceRunner, node: str | None) -> float:
        """When ``node``'s own advertisements were last heard (monotonic), or -inf."""
        address = self.holder_address(node) if node is not None else None
        if address is None:
            return -math.inf
        return _loop_to_mono(_last_heard(inst, address))

    def _rejoin(self, inst: InstanceRunner, rejoin: Rejoin) -> None:
        logger.info("%s: split brain over (%s); rejoining", _name(inst), rejoin.why)
        _report(inst, SPLIT_BRAIN, True, rejoin.why)

    def left_master(self) -> None:
        """The instance stopped being master: release the Lease now, not at the next round."""
        if self._release_task is None or self._release_task.done():
            self._release_task = asyncio.get_running_loop().create_task(self._release_quietly())

    async def _release_quietly(self) -> None:
        try:
            await self._release()
        except Exception as exc:  # the next round releases it anyway
            logger.info("lease release deferred: %s", exc)

    def _check_api_fence(self) -> None:
        inst = self.inst
        if inst is None:
            return
        action = self.core.check_api(self.clock(), self._api_ok(), _is_master(inst))
        if isinstance(action, ApiFence):
            logger.warning("%s: %s", _name(inst), action.reason)
            _report(inst, API_FENCE, False, action.reason)
        elif isinstance(action, ApiReachable):
            _report(inst, API_FENCE, True, action.reason)

    # -- API calls -------------------------------------------------------------------------

    async def _read(self) -> Any:
        """The Lease as an API dict, or None."""
        try:
            return await self.kube.call("GET", paths.lease(self.namespace, self.lease_name))
        except ApiError as exc:
            if exc.status == NOT_FOUND:
                self.kube.last_ok = self.clock()
                return None
            raise

    async def _create(self, duration: int) -> None:
        now = micro_time(datetime.now(UTC))
        meta: dict[str, Any] = {"name": self.lease_name, "namespace": self.namespace}
        if self.annotations:
            meta["annotations"] = self.annotations
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            await self.kube.call("POST", paths.leases(self.namespace), body)
        except ApiError as exc:
            if exc.status != CONFLICT:  # somebody else created it first: next round decides
                raise

    async def _write(self, lease: dict[str, Any], *, take_over: int | None = None) -> None:
        """Renew ``lease``, or with ``take_over`` (a duration) make it ours first."""
        now = micro_time(datetime.now(UTC))
        spec = dict(lease.get("spec") or {})
        if take_over is not None:
            spec["holderIdentity"] = self.node
            spec["acquireTime"] = now
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
            spec["leaseDurationSeconds"] = take_over
        spec["renewTime"] = now
        await self._replace({**lease, "spec": spec})

    async def _release_lease(self, lease: dict[str, Any]) -> None:
        spec = dict(lease.get("spec") or {})
        spec.pop("holderIdentity", None)
        spec.pop("renewTime", None)
        await self._replace({**lease, "spec": spec})

    async def _replace(self, lease: dict[str, Any]) -> None:
        """Write the Lease back; a conflict means it changed under us: the next round re-reads."""
        try:
            await self.kube.call("PUT", paths.lease(self.namespace, self.lease_name), lease)
        except ApiError as exc:
            if exc.status != CONFLICT:
                raise

    async def _release(self) -> None:
        lease = await self._read()
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        if lease is not None and self.core.releases(LeaseView(holder, None)):
            await self._release_lease(lease)


# -- runner access: the only places this module touches the instance runner ------------------
# The runner's public surface is being renamed: runner.name, runner.state,
# runner.health.report(...), runner.last_heard.


def _name(inst: InstanceRunner) -> str:
    return inst.name


def _is_master(inst: InstanceRunner) -> bool:
    return inst.state is State.MASTER


def _last_heard(inst: InstanceRunner, address: IPAddress) -> float:
    return inst.last_heard.get(address, -math.inf)


def _report(inst: InstanceRunner, source: str, healthy: bool, detail: str) -> None:
    inst.health.report(source, healthy, FAULT, detail)


def _loop_to_mono(loop_time: float) -> float:
    """asyncio's default loop clock is time.monotonic, so loop times compare directly."""
    return loop_time
