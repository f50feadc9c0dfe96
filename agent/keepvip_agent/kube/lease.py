"""Split-brain arbitration through a coordination.k8s.io Lease, and API fencing.

VRRP stays the fast path: a backup that stops hearing adverts takes over at
once and never waits for the API. The Lease only settles what VRRP cannot see:
two masters at once while both still reach the API (a partition of the node
network, not of the control plane).

* A master holds ``keepvip-<name>`` and renews it every ``renew`` seconds.
* A master that finds the Lease held by another node waits until it has
  *seen the holder renew* (its renewTime advancing) before concluding the
  holder is alive; it then steps out of the election (``fault``: "split
  brain") and the live holder keeps the VIP. A holder that does not renew for
  the lease duration is dead, and the new master takes the Lease over.
  Liveness is judged by observed change on this node's monotonic clock, never
  by comparing clocks across nodes.
* The fence lifts when the holder stops renewing, or when this node hears a
  master's advertisement again (the partition healed): it rejoins as backup.
* ``fencing: strict``: a master cut off from the API for longer than the lease
  duration drops the VIP (``fault``), and rejoins when the API answers again.
  ``none`` (default) keeps serving, as keepalived would.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from keepvip_agent.vrrp.packet import IPAddress
from keepvip_agent.vrrp.router import State
from keepvip_api.cluster import OnFailure
from keepvip_api.names import SPLIT_BRAIN_FAULT as SPLIT_BRAIN
from keepvip_api.names import lease_name

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube
    from keepvip_agent.runtime.instance import InstanceRunner

logger = logging.getLogger(__name__)
FAULT = OnFailure(action="fault")
API_FENCE = "api fencing"
NOT_FOUND, CONFLICT = 404, 409


@dataclass
class _Seen:
    holder: str | None
    renew: Any
    since: float
    advanced: bool
    """The holder's renewTime changed while we watched: it is alive."""
    renewals_while_master: int = 0
    """Renewals seen since this node became master: proof the holder still thinks it is one."""


class LeaseArbiter:
    def __init__(
        self, kube: Kube, namespace: str, name: str, node: str, *, renew: float = 2.0
    ) -> None:
        self.kube, self.namespace, self.node = kube, namespace, node
        self.lease_name = lease_name(name)
        self.renew = renew
        self.duration = 3 * renew
        self.inst: InstanceRunner | None = None
        self.fencing = "none"
        self.holder_address: Callable[[str], IPAddress | None] = lambda node: None
        """Where the named node's advertisements come from (Kubernetes: its agent pod's host IP)."""
        self._seen: _Seen | None = None
        self._fenced: str | None = None
        self._fenced_at = 0.0
        self._master_since: float | None = None
        self._api_fenced = False
        self._task: asyncio.Task[None] | None = None
        self._fence_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._warned = False

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
            await asyncio.wait_for(self._release(), 3.0)
        except Exception as exc:  # best effort on the way out
            logger.info("lease release skipped: %s", exc)

    async def _run(self) -> None:
        while True:
            try:
                # Bounded: against a hung API server a call blocks for its timeout
                # times the client's retries; the next round simply tries again.
                await asyncio.wait_for(self.round(), self.duration)
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
        master = inst.state is State.MASTER
        if not master:
            self._master_since = None
        elif self._master_since is None:
            self._master_since = time.monotonic()
        lease = await self._read()
        now = time.monotonic()
        if lease is None:
            if master:
                await self._create()
            self._seen = None
            self._maybe_unfence(now, holder_alive=False)
            return
        holder = lease.spec.holder_identity
        seen = self._observe(holder, lease.spec.renew_time, now, master)
        alive = bool(holder) and holder != self.node and now - seen.since < self.duration
        if master:
            await self._as_master(lease, holder, alive, seen)
        elif holder == self.node:
            await self._release_lease(lease)
        self._maybe_unfence(now, holder_alive=alive and seen.advanced)

    def _observe(self, holder: str | None, renew: Any, now: float, master: bool) -> _Seen:
        """Track the holder's renewals on our own clock."""
        seen = self._seen
        if seen is None or seen.holder != holder:
            self._seen = seen = _Seen(holder, renew, now, advanced=False)
        elif seen.renew != renew:
            seen.renew, seen.since, seen.advanced = renew, now, True
            if master:
                seen.renewals_while_master += 1
        if not master:
            seen.renewals_while_master = 0
        return seen

    async def _as_master(self, lease: Any, holder: str | None, alive: bool, seen: _Seen) -> None:
        if holder == self.node:
            await self._write(lease, renew_only=True)
        elif not alive:
            logger.info(
                "taking over lease %s from %s (not renewed)", self.lease_name, holder or "nobody"
            )
            await self._write(lease, renew_only=False)
        elif seen.renewals_while_master >= 2:
            # A holder that stepped down releases the Lease at once, and one
            # renewal may have been in flight as we took over: two renewals
            # seen while we are master mean it really still serves.
            self._fence(str(holder), f"{holder} holds lease {self.lease_name} and renews it")

    def _fence(self, holder: str, reason: str) -> None:
        if self._fenced is None and self.inst is not None:
            logger.warning("%s: stepping down (%s): %s", self.inst.name, SPLIT_BRAIN, reason)
            self._fenced = holder
            self._fenced_at = time.monotonic()
            self.inst.health.report(SPLIT_BRAIN, False, FAULT, reason)

    def _maybe_unfence(self, now: float, holder_alive: bool) -> None:
        inst = self.inst
        if self._fenced is None or inst is None:
            return
        # Only the holder's own advertisements prove the partition healed: the
        # other nodes on our side of it are advertising too.
        address = self.holder_address(self._fenced)
        last = inst.last_heard.get(address, -math.inf) if address is not None else -math.inf
        heard = _loop_to_mono(last) > self._fenced_at
        if heard or not holder_alive:
            why = f"hearing {self._fenced} again" if heard else f"{self._fenced} stopped renewing"
            logger.info("%s: split brain over (%s); rejoining", inst.name, why)
            self._fenced = None
            inst.health.report(SPLIT_BRAIN, True, FAULT, why)

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
        cut_off = time.monotonic() - self.kube.last_ok
        if self.fencing == "strict" and not self._api_fenced and cut_off > self.duration:
            if inst.state is State.MASTER:
                self._api_fenced = True
                reason = f"cut off from the API server for {cut_off:.0f}s (fencing: strict)"
                logger.warning("%s: %s", inst.name, reason)
                inst.health.report(API_FENCE, False, FAULT, reason)
        elif self._api_fenced and cut_off <= self.renew * 1.5:
            self._api_fenced = False
            inst.health.report(API_FENCE, True, FAULT, "API server reachable")

    # -- API calls -------------------------------------------------------------------------

    async def _read(self) -> Any:
        try:
            return await self.kube.call(
                self.kube.coordination.read_namespaced_lease, self.lease_name, self.namespace
            )
        except ApiException as exc:
            if exc.status == NOT_FOUND:
                self.kube.last_ok = time.monotonic()
                return None
            raise

    async def _create(self) -> None:
        now = datetime.now(UTC)
        body = V1Lease(
            metadata=V1ObjectMeta(name=self.lease_name, namespace=self.namespace),
            spec=V1LeaseSpec(
                holder_identity=self.node,
                lease_duration_seconds=int(self.duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            await self.kube.call(
                self.kube.coordination.create_namespaced_lease, self.namespace, body
            )
        except ApiException as exc:
            if exc.status != CONFLICT:  # somebody else created it first: next round decides
                raise

    async def _write(self, lease: Any, *, renew_only: bool) -> None:
        now = datetime.now(UTC)
        spec = lease.spec
        if not renew_only:
            spec.holder_identity = self.node
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.lease_duration_seconds = int(self.duration)
        spec.renew_time = now
        await self._replace(lease)

    async def _release_lease(self, lease: Any) -> None:
        lease.spec.holder_identity = None
        lease.spec.renew_time = None
        await self._replace(lease)

    async def _replace(self, lease: Any) -> None:
        """Write the Lease back; a conflict means it changed under us: the next round re-reads."""
        try:
            await self.kube.call(
                self.kube.coordination.replace_namespaced_lease,
                self.lease_name,
                self.namespace,
                lease,
            )
        except ApiException as exc:
            if exc.status != CONFLICT:
                raise

    async def _release(self) -> None:
        lease = await self._read()
        if lease is not None and lease.spec.holder_identity == self.node:
            await self._release_lease(lease)


def _loop_to_mono(loop_time: float) -> float:
    """asyncio's default loop clock is time.monotonic, so loop times compare directly."""
    return loop_time
