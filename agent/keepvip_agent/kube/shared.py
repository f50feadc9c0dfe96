"""Watches shared by every VirtualIP on a node: one per (kind, namespace), not one per VirtualIP.

A VirtualIP that tracks pods subscribes to the pod watch of its namespace
(narrowed by the API to this node: field selector ``spec.nodeName``) and
filters by its own selector client-side; one that fronts Services subscribes
to the Service and EndpointSlice watches of its namespace. A watch starts
with its first subscriber and stops with its last; a late subscriber gets the
last snapshot at once. The RBAC the operator grants per namespace matches
exactly these list/watch calls.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import ListWatch

if TYPE_CHECKING:
    from keepvip_agent.kube.api import Kube

Snapshot = list[dict[str, Any]]
Subscriber = Callable[[Snapshot], None]
PODS, SERVICES, SLICES = "pods", "services", "endpointslices"


class _Shared:
    def __init__(self, watch: ListWatch) -> None:
        self.watch = watch
        self.subscribers: dict[int, Subscriber] = {}
        self.last: Snapshot | None = None


class SharedWatches:
    def __init__(self, kube: Kube, node: str) -> None:
        self.kube, self.node = kube, node
        self._shared: dict[tuple[str, str], _Shared] = {}
        self._ids = itertools.count(1)
        self._owner: dict[int, tuple[str, str]] = {}

    def subscribe(self, kind: str, namespace: str, fn: Subscriber) -> int:
        """Deliver every snapshot of ``kind`` in ``namespace`` to ``fn``; returns a token."""
        key = (kind, namespace)
        shared = self._shared.get(key)
        if shared is None:
            shared = self._shared[key] = _Shared(self._watch(kind, namespace, key))
            shared.watch.start()
        token = next(self._ids)
        shared.subscribers[token] = fn
        self._owner[token] = key
        if shared.last is not None:
            asyncio.get_running_loop().call_soon(fn, shared.last)
        return token

    def unsubscribe(self, token: int) -> None:
        key = self._owner.pop(token, None)
        shared = self._shared.get(key) if key is not None else None
        if shared is None:
            return
        shared.subscribers.pop(token, None)
        if not shared.subscribers:
            shared.watch.stop()
            del self._shared[key]  # type: ignore[arg-type]

    def watching(self) -> list[tuple[str, str]]:
        """The (kind, namespace) pairs watched now (tests and /status read it)."""
        return sorted(self._shared)

    def stop(self) -> None:
        for shared in self._shared.values():
            shared.watch.stop()
        self._shared.clear()

    def _watch(self, kind: str, namespace: str, key: tuple[str, str]) -> ListWatch:
        loop = asyncio.get_running_loop()

        def deliver(items: Snapshot) -> None:
            shared = self._shared.get(key)
            if shared is None or shared.watch is not watch:
                return  # a stopped watch's last delivery
            shared.last = items
            for fn in list(shared.subscribers.values()):
                fn(items)

        if kind == PODS:
            watch = ListWatch(
                self.kube,
                f"pods-{namespace}",
                paths.pods(namespace),
                deliver,
                loop,
                {"fieldSelector": f"spec.nodeName={self.node}"},
            )
        elif kind == SERVICES:
            watch = ListWatch(
                self.kube,
                f"services-{namespace}",
                paths.services(namespace),
                deliver,
                loop,
            )
        else:
            watch = ListWatch(
                self.kube,
                f"endpointslices-{namespace}",
                paths.endpointslices(namespace),
                deliver,
                loop,
            )
        return watch
