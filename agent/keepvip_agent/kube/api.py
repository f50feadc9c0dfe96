"""The node agent's API client: plain JSON by path, calls in worker threads, shared watches.

Calls run in worker threads; list-and-watch loops run in daemon threads and
hand their results to the event loop with ``call_soon_threadsafe``, so the
protocol loop never waits on the API. A watch that breaks (API server down,
410 Gone) relists after a back-off and says so once, then again when it is
back: the API being away degrades status and discovery, never the election.

The HTTP is :mod:`keepvip_agent.kube.rest` (standard library only: the
``kubernetes`` package is not imported by the agent, which saves about 10 MiB
per node); paths are :mod:`keepvip_agent.kube.paths`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from keepvip_agent.kube.config import Endpoint, from_environment
from keepvip_agent.kube.rest import JSON, ApiError, Connections

__all__ = ["ApiError", "Kube", "ListWatch"]
logger = logging.getLogger(__name__)
REQUEST_TIMEOUT = 10
WATCH_TIMEOUT = 60
WATCH_SILENCE = WATCH_TIMEOUT + 30
"""A watch that says nothing for this long (not even its end) is taken for broken."""
BACKOFF = (0.5, 1, 2, 5)


class Kube:
    def __init__(self, endpoint: Endpoint | None = None) -> None:
        # An explicit KUBECONFIG wins (the test harness runs "pods" as host
        # processes with one); otherwise the pod's own service account.
        self.http = Connections(endpoint or from_environment())
        self.last_ok = time.monotonic()
        """Monotonic time of the last successful API call (fencing reads it)."""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """One call in this thread; the JSON answer as plain dicts, or :class:`ApiError`."""
        answer = self.http.request(
            method, path, body, query=query, content_type=content_type, timeout=REQUEST_TIMEOUT
        )
        self.last_ok = time.monotonic()
        return answer

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """:meth:`request` in a worker thread."""
        return await asyncio.to_thread(
            self.request, method, path, body, query=query, content_type=content_type
        )

    def watch(self, path: str, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The events of one watch request (in this thread) until the server ends it."""
        return self.http.stream(path, query, timeout=WATCH_SILENCE)

    def close(self) -> None:
        self.http.close()


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
        path: str,
        on_snapshot: Callable[[list[dict[str, Any]]], None],
        loop: asyncio.AbstractEventLoop,
        query: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(daemon=True, name=f"watch-{name}")
        self.kube, self.what = kube, name
        self.path, self.query = path, dict(query or {})
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
        listed = self.kube.request("GET", self.path, query=self.query)
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
        query = {**self.query, "timeoutSeconds": WATCH_TIMEOUT, "allowWatchBookmarks": True}
        if rv:
            query["resourceVersion"] = rv
        for event in self.kube.watch(self.path, query):
            if self.stopped.is_set():
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
