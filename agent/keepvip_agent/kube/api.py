"""A thin asyncio face on the official (synchronous) kubernetes client.

Calls run in worker threads; list-and-watch loops run in daemon threads and
hand their results to the event loop with ``call_soon_threadsafe``, so the
protocol loop never waits on the API. A watch that breaks (API server down,
410 Gone) relists after a back-off and says so once, then again when it is
back: the API being away degrades status and discovery, never the election.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch

logger = logging.getLogger(__name__)
REQUEST_TIMEOUT = 10
WATCH_TIMEOUT = 60
BACKOFF = (0.5, 1, 2, 5)


class Kube:
    def __init__(self) -> None:
        # An explicit KUBECONFIG wins (the test harness runs "pods" as host
        # processes with one); otherwise the pod's own service account.
        if os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.last_ok = time.monotonic()
        """Monotonic time of the last successful API call (fencing reads it)."""

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        result = await asyncio.to_thread(fn, *args, **kwargs)
        self.last_ok = time.monotonic()
        return result

    def serialize(self, obj: Any) -> Any:
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


class ListWatch(threading.Thread):
    """List, then watch from that resource version, forever; deliver on the event loop.

    ``on_snapshot(items)`` gets the full current list after every (re)list, and
    after every event, so consumers only ever compute from a complete picture.
    Objects are plain dicts (API field names).
    """

    def __init__(
        self,
        kube: Kube,
        name: str,
        list_fn: Callable[..., Any],
        on_snapshot: Callable[[list[dict[str, Any]]], None],
        loop: asyncio.AbstractEventLoop,
        **kwargs: Any,
    ) -> None:
        super().__init__(daemon=True, name=f"watch-{name}")
        self.kube, self.what = kube, name
        self.list_fn, self.kwargs = list_fn, kwargs
        self.on_snapshot, self.loop = on_snapshot, loop
        self.stopped = threading.Event()
        self.healthy = False

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except Exception as exc:
                if self.healthy or failures == 0:
                    logger.warning("watch %s broke: %s; relisting", self.what, _short(exc))
                self.healthy = False
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                self.stopped.wait(delay)

    def _list_and_watch(self) -> None:
        listed = self.list_fn(_request_timeout=REQUEST_TIMEOUT, **self.kwargs)
        listed = listed if isinstance(listed, dict) else self.kube.serialize(listed)
        items: dict[str, dict[str, Any]] = {_key(o): o for o in listed.get("items", [])}
        if not self.healthy:
            logger.info("watch %s: %d object(s)", self.what, len(items))
        self.healthy = True
        self.kube.last_ok = time.monotonic()
        self._deliver(items)
        rv = listed.get("metadata", {}).get("resourceVersion")
        w = watch.Watch()  # type: ignore[no-untyped-call]
        for event in w.stream(  # type: ignore[no-untyped-call]
            self.list_fn, resource_version=rv, timeout_seconds=WATCH_TIMEOUT, **self.kwargs
        ):
            if self.stopped.is_set():
                w.stop()  # type: ignore[no-untyped-call]
                return
            obj = event["object"]
            obj = obj if isinstance(obj, dict) else self.kube.serialize(obj)
            if event["type"] == "ERROR":
                raise RuntimeError(obj.get("message", "watch error"))
            self.kube.last_ok = time.monotonic()
            if event["type"] == "DELETED":
                items.pop(_key(obj), None)
            else:
                items[_key(obj)] = obj
            self._deliver(items)

    def _deliver(self, items: dict[str, dict[str, Any]]) -> None:
        snapshot = list(items.values())
        self.loop.call_soon_threadsafe(self.on_snapshot, snapshot)


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
