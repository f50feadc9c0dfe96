"""The node agent's ``status.nodes[]`` entry of one VirtualIP, written on change only.

Unlike :class:`~keepvip_agent.kube.status.StatusWriter` (the per-VirtualIP
agent's, with a heartbeat), nothing is written while nothing changes: the
entry is recomputed locally every :data:`POLL` seconds and on every
transition, and applied only when it differs from the last one applied
(``heartbeatTime`` aside, which now says when the entry was written). The
node's liveness is its node Lease. Failed writes are retried with a back-off;
the latest entry wins.

Written on change only, an entry that someone else removed would stay away:
the operator prunes the entries of a node whose Lease lapsed, and an agent
whose renewals were only late (250 VirtualIPs turning master at once on a
busy node) kept serving with no entry, so its VirtualIPs showed no master
for good. The watched object tells (:meth:`EntryWriter.observed`): an entry
found missing is written again, at most every :data:`REWRITE_PAUSE` seconds,
so a node still judged dead does not race the operator's pruning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.rest import APPLY_PATCH
from keepvip_api.crd import GROUP, KIND, VERSION
from keepvip_api.names import agent_field_manager
from keepvip_api.status import NodeStatus
from keepvip_api.times import micro_time

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube

logger = logging.getLogger(__name__)
POLL = 1.0
REWRITE_PAUSE = 10.0
RETRY = (0.5, 1.0, 2.0, 5.0)
EntryFn = Callable[[float], NodeStatus | None]


def fault_entry(node: str, fault: str, reason: str, now: float) -> NodeStatus:
    """The entry of a VirtualIP this node cannot run at all (no instance to describe)."""
    return NodeStatus(
        name=node,
        state="Fault",
        faults=(fault,),
        reason=reason[:1024],
        heartbeat_time=micro_time(now),
        last_transition_time=micro_time(now),
    )


def _comparable(entry: NodeStatus | None) -> Any:
    if entry is None:
        return None
    data = entry.to_api()
    data.pop("heartbeatTime", None)
    if entry.state == "Fault" and not entry.configured_priority:
        data.pop("lastTransitionTime", None)  # a fault entry's time is when it was computed
    return data


class EntryWriter:
    def __init__(self, kube: Kube, namespace: str, name: str, node: str, entry: EntryFn) -> None:
        self.kube, self.namespace, self.name, self.node = kube, namespace, name, node
        self.entry = entry
        self.writes = 0
        self._last: Any = None
        self._missing = False
        self._rewrite_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def changed(self) -> None:
        self._wake.set()

    def observed(self, present: bool) -> None:
        """Whether the VirtualIP as last seen in the API holds this node's entry.

        Missing after a write: removed by someone else (pruned), so write it again. An
        event older than the write says missing too; that costs one write, no more.
        """
        self._missing = not present and self._last is not None
        if self._missing:
            self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await self._wake.wait()
            self._wake.clear()
            now = asyncio.get_running_loop().time()
            if self._missing and now >= self._rewrite_at:
                self._missing, self._last = False, None
                self._rewrite_at = now + REWRITE_PAUSE
                logger.info("%s/%s: this node's entry was removed; writing it again",
                            self.namespace, self.name)  # fmt: skip
            entry = self.entry(time.time())
            if entry is None or _comparable(entry) == self._last:
                continue
            try:
                await self._apply([entry.to_api()])
                self._last = _comparable(entry)
                failures = 0
            except Exception as exc:
                if failures == 0:
                    logger.warning(
                        "cannot write status of %s/%s: %s", self.namespace, self.name, exc
                    )
                failures += 1
                await asyncio.sleep(RETRY[min(failures - 1, len(RETRY) - 1)])
                self._wake.set()

    async def _apply(self, nodes: list[dict[str, Any]]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "status": {"nodes": nodes},
        }
        await self.kube.call(
            "PATCH",
            paths.virtualip_status(self.namespace, self.name),
            body,
            query={"fieldManager": agent_field_manager(self.node), "force": True},
            content_type=APPLY_PATCH,
        )
        self.writes += 1

    async def stop(self, *, withdraw: bool = False) -> None:
        """Stop; with ``withdraw`` remove this node's entry (the VirtualIP left this node)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if withdraw:
                async with asyncio.timeout(3.0):
                    await self._apply([])
            else:
                entry = self.entry(time.time())
                if entry is not None and _comparable(entry) != self._last:
                    async with asyncio.timeout(3.0):
                        await self._apply([entry.to_api()])
        except Exception as exc:  # best effort on the way out (the VirtualIP may be gone)
            logger.info("final status write of %s/%s skipped: %s", self.namespace, self.name, exc)
