"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Why: two operator replicas must never reconcile at once. kopf's peering
pauses kopf's handlers but not the resync loop (it is not a handler), and
VRID and port allocation are serialised inside one process only. So the
whole kopf operator runs only in the process that holds the Lease; the
others wait as standby (``main.py``), and a leader that cannot renew in time
stops and exits, as client-go's do.

* :class:`Election` is client-go's ``tryAcquireOrRenew`` as a sans-IO core:
  a read Lease in, the record to write out. Expiry is judged like client-go:
  from when *this* process saw the record change, on its own monotonic
  clock, plus the holder's ``leaseDurationSeconds``; never by comparing the
  holder's renewTime with our clock (clocks of two nodes differ). The wall
  clock only goes into the Lease for people and other tools to read.
* :class:`LeaseStore` is the I/O: get, create, replace (``update`` with the
  read resourceVersion, so two writers never both win) through
  :class:`~keepvip_operator.kube.Kube`, blocking.
* :class:`LeaderElector` runs the rounds: ``acquire`` (standby), ``hold``
  (renew until lost), ``release``. Its blocking calls run in a thread of
  their own, so a reconciler pool busy with the API never delays a renewal,
  and every call is bounded by the renew deadline, so a hung API server
  cannot hold leadership past it. It creates no asyncio task while kopf
  runs: kopf cancels every task younger than itself when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from keepvip_api.times import micro_time, parse_time
from keepvip_operator.kube import ApiError, Kube

logger = logging.getLogger(__name__)
T = TypeVar("T")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
CONFLICT, NOT_FOUND = 409, 404
RELEASED_DURATION = 1
"""leaseDurationSeconds written on release (client-go's value); holderIdentity is emptied too."""


def default_identity() -> str:
    """hostname_pid: unique per process when the pod name is not known (POD_NAME unset)."""
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class Timing:
    """client-go's three durations, in seconds.

    A leader that has not renewed for ``renew_deadline`` gives up; a standby
    takes over a Lease it has seen unchanged for the holder's
    ``lease_duration``. The difference is the time the old leader has to
    stop before a new one can start.
    """

    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"need 0 < retry period ({self.retry_period}) < renew deadline "
                f"({self.renew_deadline}) < lease duration ({self.lease_duration})"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The election's part of a Lease: its spec and the resourceVersion it was read at."""

    holder: str = ""
    """holderIdentity; empty: released (or never held)."""
    duration: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None
    """None for a record not written yet: writing it creates the Lease."""

    @classmethod
    def from_lease(cls, obj: dict[str, Any]) -> LeaseRecord:
        spec = obj.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(obj.get("metadata") or {}).get("resourceVersion"),
        )

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            out["acquireTime"] = micro_time(self.acquire_time)
        if self.renew_time is not None:
            out["renewTime"] = micro_time(self.renew_time)
        return out


class Election:
    """One process's view of the election; every time is passed in (``now``: monotonic seconds)."""

    def __init__(self, identity: str, timing: Timing) -> None:
        self.identity, self.timing = identity, timing
        self.observed: LeaseRecord | None = None
        """The Lease as last read or written."""
        self.observed_at = 0.0
        """When ``observed`` last changed, on our clock."""
        self.renewed_at: float | None = None
        """When our last successful write as holder was sent; None while not leading."""
        self._lost: str | None = None

    @property
    def leading(self) -> bool:
        return self.renewed_at is not None and self._lost is None

    @property
    def holder(self) -> str:
        return self.observed.holder if self.observed else ""

    def observe(self, current: LeaseRecord, now: float) -> None:
        if current != self.observed:
            self.observed, self.observed_at = current, now
        if self.renewed_at is not None and self._lost is None and current.holder != self.identity:
            # Someone else wrote the Lease while we lead: we are not the leader any more.
            self._lost = f"the Lease is now held by {current.holder or 'nobody'!r}"

    def plan(self, current: LeaseRecord | None, now: float, wall: datetime) -> LeaseRecord | None:
        """What to write after reading ``current`` (None: there is no Lease), or None to wait.

        Renew our own Lease; take over one that is free (released) or expired;
        create a missing one. Anything else: someone else holds it.
        """
        mine = self.timing.lease_duration
        if self._lost is not None:
            return None
        if current is None:
            return LeaseRecord(self.identity, mine, wall, wall, 0, None)
        self.observe(current, now)
        if self._lost is not None:
            return None
        if current.holder == self.identity:
            return replace(current, duration=mine, renew_time=wall,
                           acquire_time=current.acquire_time or wall)  # fmt: skip
        if current.holder and now < self.observed_at + current.duration:
            return None  # held, and we saw it change less than its duration ago
        return LeaseRecord(
            self.identity, mine, wall, wall, current.transitions + 1, current.resource_version
        )

    def written(self, record: LeaseRecord, sent: float) -> None:
        """Our write of ``record`` (sent at ``sent``) succeeded: we hold the Lease since then."""
        self.observed, self.observed_at = record, sent
        self.renewed_at = sent if record.holder == self.identity else None

    def lost(self, now: float) -> str | None:
        """Why leadership is lost, or None while it is held (or was never held)."""
        if self._lost is None and self.renewed_at is not None:
            late = now - self.renewed_at
            if late > self.timing.renew_deadline:
                self._lost = (
                    f"not renewed for {late:.1f}s (renew deadline {self.timing.renew_deadline:g}s)"
                )
        return self._lost

    def release(self, wall: datetime) -> LeaseRecord | None:
        """The record that hands the Lease over at once, or None if we do not hold it."""
        if not self.leading or self.observed is None or self.observed.holder != self.identity:
            return None
        return replace(self.observed, holder="", duration=RELEASED_DURATION, renew_time=wall)


class LeaseStore:
    """One Lease through the API; blocking calls."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name
        self.collection = LEASES.format(namespace=namespace)
        self._last: dict[str, Any] | None = None
        """The Lease as last read: replace keeps its labels, annotations and other spec fields."""

    def get(self) -> LeaseRecord | None:
        try:
            obj = self.kube.request("GET", f"{self.collection}/{self.name}")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        self._last = obj
        return LeaseRecord.from_lease(obj)

    def write(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create or replace (guarded by the record's resourceVersion); None if another writer won."""
        if record.resource_version is None:
            body: dict[str, Any] = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record.spec(),
            }
            method, url = "POST", self.collection
        else:
            last = self._last or {}
            meta = dict(last.get("metadata") or {})
            if meta.get("resourceVersion") != record.resource_version:
                meta = {"name": self.name, "namespace": self.namespace}
            meta.pop("managedFields", None)
            meta["resourceVersion"] = record.resource_version
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": meta,
                "spec": {**(last.get("spec") or {}), **record.spec()},
            }
            method, url = "PUT", f"{self.collection}/{self.name}"
        try:
            obj = self.kube.request(method, url, body)
        except ApiError as exc:
            if exc.status == CONFLICT:  # 409: updated or created by someone else first
                return None
            raise
        self._last = obj
        return LeaseRecord.from_lease(obj)


class LeaderElector:
    """Acquire, hold and release the Lease; clocks, sleep and the executor are injectable for tests."""

    def __init__(
        self,
        store: LeaseStore,
        election: Election,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        executor: Executor | None = None,
    ) -> None:
        self.store, self.election = store, election
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.timing = election.timing
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="keepvip-lease")
        self._failing = False

    @property
    def where(self) -> str:
        return f"Lease {self.store.namespace}/{self.store.name}"

    def close(self) -> None:
        # A call stuck on a hung API server ends with its own timeout; nobody waits for it.
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, within: float, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the Lease's own thread, for at most ``within`` seconds.

        The future is awaited directly (no task is created: see the module docstring).
        """
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        async with asyncio.timeout(max(within, 0.01)):
            return await future

    async def attempt(self) -> None:
        """One round of client-go's tryAcquireOrRenew; errors are logged once per streak."""
        # Never past the renew deadline: a leader must be able to tell in time that it failed.
        end = self.clock() + self.timing.renew_deadline
        if self.election.renewed_at is not None:
            end = self.election.renewed_at + self.timing.renew_deadline
        try:
            current = await self._call(end - self.clock(), self.store.get)
            record = self.election.plan(current, self.clock(), self.wall())
            if record is None:
                return
            sent = self.clock()
            written = await self._call(end - sent, self.store.write, record)
            if written is not None:
                was = self.election.leading
                self.election.written(written, sent)
                if not was and self.election.leading:
                    logger.info(
                        "%s: acquired as %s (transition %d)",
                        self.where, self.election.identity, written.transitions,
                    )  # fmt: skip
        except (ApiError, TimeoutError) as exc:
            if not self._failing:
                logger.warning("%s: %s", self.where, exc or "the API did not answer in time")
            self._failing = True
            return
        if self._failing:
            logger.info("%s: the API answers again", self.where)
        self._failing = False

    async def acquire(self) -> None:
        """Wait as standby until we hold the Lease; cancel it to stop waiting."""
        logger.info("%s: standby as %s until it is free", self.where, self.election.identity)
        seen = None
        while True:
            started = self.clock()
            await self.attempt()
            if self.election.leading:
                return
            if self.election.holder != seen:
                seen = self.election.holder
                logger.info("%s: held by %s", self.where, seen or "nobody")
            await self.sleep(max(0.0, started + self.timing.retry_period - self.clock()))

    async def hold(self) -> str:
        """Renew every retry period until leadership is lost; why it was lost."""
        while True:
            started = self.clock()
            why = self.election.lost(started)
            if why is None:
                await self.attempt()
                why = self.election.lost(self.clock())
            if why is not None:
                logger.error("%s: leadership lost: %s", self.where, why)
                return why
            await self.sleep(max(0.0, started + self.timing.retry_period - self.clock()))

    async def release(self, within: float = 5.0) -> bool:
        """Hand the Lease over at once (empty holder, duration 1 s); True if it was released.

        One retry after a conflict: a renewal still in flight when we stopped
        may have moved the resourceVersion on.
        """
        for _ in range(2):
            record = self.election.release(self.wall())
            if record is None:
                return False
            try:
                written = await self._call(within, self.store.write, record)
                if written is not None:
                    self.election.written(written, self.clock())
                    logger.info("%s: released", self.where)
                    return True
                current = await self._call(within, self.store.get)
            except (ApiError, TimeoutError) as exc:
                logger.warning("%s: cannot release: %s", self.where, exc or "timed out")
                return False
            if current is None:
                return False
            self.election.observe(current, self.clock())
        return False
