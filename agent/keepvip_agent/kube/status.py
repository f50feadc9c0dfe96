"""Writes this node's entry of ``status.nodes`` with server-side apply.

The entry is keyed by node name and applied under the field manager
``keepvip-agent-<node>``, so agents never overwrite each other and the
operator's fields stay the operator's. Writes are coalesced (the latest state
wins), sent on every transition and at a slow heartbeat, and retried with a
back-off while the API is away: a write never blocks the protocol loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from keepvip_api.crd import GROUP, KIND, PLURAL, VERSION
from keepvip_api.names import agent_field_manager
from keepvip_api.status import HEARTBEAT, NodeStatus
from keepvip_api.times import micro_time

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube
    from keepvip_agent.runtime.instance import InstanceRunner

logger = logging.getLogger(__name__)
RETRY = (0.5, 1.0, 2.0, 5.0)


def node_entry(inst: InstanceRunner, now: float) -> NodeStatus:
    last = inst.transitions[-1] if inst.transitions else None
    return NodeStatus(
        name=inst.node,
        state=inst.state.value,
        configured_priority=inst.health.configured,
        effective_priority=inst.priority,
        faults=tuple(sorted(inst.faults)),
        heartbeat_time=micro_time(now),
        address=str(inst.source) if inst.source is not None else None,
        last_transition_time=micro_time(last.at) if last is not None else None,
        reason=last.reason[:1024] if last is not None else None,
    )


class StatusWriter:
    def __init__(self, kube: Kube, namespace: str, name: str, node: str) -> None:
        self.kube, self.namespace, self.name, self.node = kube, namespace, name, node
        self.inst: InstanceRunner | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def changed(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), HEARTBEAT)
            self._wake.clear()
            try:
                await self.write()
                failures = 0
            except Exception as exc:
                if failures == 0:
                    logger.warning(
                        "cannot write status of %s/%s: %s", self.namespace, self.name, exc
                    )
                failures += 1
                await asyncio.sleep(RETRY[min(failures - 1, len(RETRY) - 1)])
                self._wake.set()

    async def write(self) -> None:
        inst = self.inst
        if inst is None:
            return
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "status": {"nodes": [node_entry(inst, time.time()).to_api()]},
        }
        await self.kube.call(
            self.kube.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            self.name,
            body,
            field_manager=agent_field_manager(self.node),
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        self.writes += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.write(), 3.0)
        except Exception as exc:  # best effort on the way out
            logger.info("final status write skipped: %s", exc)
