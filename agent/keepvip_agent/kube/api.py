"""A thin asyncio face on the official (synchronous) kubernetes client.

Calls run in worker threads; list-and-watch loops run in daemon threads and
hand their results to the event loop with ``call_soon_threadsafe``, so the
protocol loop never waits on the API. A watch that breaks (API server down,
410 Gone) relists after a back-off and says so once, then again when it is
back: the API being away degrades status and discovery, never the election.
"""

from __future__ import annotations

import asyncio
import json
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

    def raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` in this thread; its JSON answer as plain dicts, no client models.

        The client's models cost a validation per field on every call, and the
        agent reads API field names anyway.
        """
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        resp = fn(*args, _preload_content=False, **kwargs)
        try:
            data = resp.data
        finally:
            resp.release_conn()
        self.last_ok = time.monotonic()
        return json.loads(data) if data else None

    async def call_raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """:meth:`raw` in a worker thread."""
        return await asyncio.to_thread(self.raw, fn, *args, **kwargs)


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
        items, rv = self._list()
        while not self.stopped.is_set():
            rv = self._watch(items, rv)

    def _list(self) -> tuple[dict[str, dict[str, Any]], str | None]:
        listed = self.kube.raw(self.list_fn, **self.kwargs)
        items: dict[str, dict[str, Any]] = {_key(o): _lean(o) for o in listed.get("items", [])}
        if not self.healthy:
            logger.info("watch %s: %d object(s)", self.what, len(items))
        self.healthy = True
        self.kube.last_ok = time.monotonic()
        self._deliver(items)
        return items, listed.get("metadata", {}).get("resourceVersion")

    def _watch(self, items: dict[str, dict[str, Any]], rv: str | None) -> str | None:
        """Follow changes from ``rv`` until the server ends the watch; the version reached.

        A watch that simply ran its time resumes from where it was, with no relist
        (a relist of hundreds of VirtualIPs costs more than an hour of events);
        bookmarks keep that version fresh while nothing changes. An expired
        version (410 Gone) or a broken stream raises: the caller relists.
        """
        w = watch.Watch()  # type: ignore[no-untyped-call]
        for event in w.stream(  # type: ignore[no-untyped-call]
            self.list_fn,
            resource_version=rv,
            timeout_seconds=WATCH_TIMEOUT,
            allow_watch_bookmarks=True,
            deserialize=False,
            **self.kwargs,
        ):
            if self.stopped.is_set():
                w.stop()  # type: ignore[no-untyped-call]
                break
            obj, kind = event.get("object") or {}, event.get("type")
            if kind == "ERROR":
                raise RuntimeError(obj.get("message", "watch error"))
            self.kube.last_ok = time.monotonic()
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                items.pop(_key(obj), None)
            else:
                items[_key(obj)] = _lean(obj)
            self._deliver(items)
        return rv

    def _deliver(self, items: dict[str, dict[str, Any]]) -> None:
        snapshot = list(items.values())
        self.loop.call_soon_threadsafe(self.on_snapshot, snapshot)


def _lean(obj: dict[str, Any]) -> dict[str, Any]:
    """Without ``metadata.managedFields``: nobody here reads it, and with an agent field
    manager per node it is most of a VirtualIP's size in every watch cache."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
