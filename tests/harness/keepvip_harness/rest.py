"""A small JSON client for the Kubernetes API, used by the harness itself.

Why not the ``kubernetes`` package here: its generated models change shape
between releases (v37 renamed ``host_i_ps`` to ``host_ips`` and ``_exec`` to
``var_exec``), and the harness must keep working whichever version the test
extras resolve to. Pods, nodes and tokens as plain JSON objects, in the
API's own camelCase, do not change. Tests themselves are free to use the
``kubernetes`` client (``ControlPlane.admin_client()``).

One connection per request keeps it thread-safe; watches hold their own.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")


class Rest:
    """Requests to one API server with one identity (client cert or bearer token)."""

    def __init__(
        self,
        server: str,
        ca: Path,
        *,
        cert: tuple[Path, Path] | None = None,
        token: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        url = urlsplit(server)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.timeout = timeout
        self._token = token
        self._ctx = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            self._ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self._watches: set[http.client.HTTPSConnection] = set()
        self._lock = threading.Lock()

    def _conn(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ctx)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """Send one request; the decoded JSON answer, or ApiError."""
        if query:
            path = f"{path}?{urlencode(query)}"
        data = None if body is None else json.dumps(body).encode()
        conn = self._conn(self.timeout)
        try:
            conn.request(method, path, body=data, headers=self._headers(content_type))
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        if resp.status >= 300:
            raise ApiError(resp.status, decoded)
        return decoded

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body)

    def watch(self, path: str, **query: Any) -> Iterator[dict[str, Any]]:
        """Events of one watch request until the server ends it or ``close()``."""
        query = {**query, "watch": "true", "allowWatchBookmarks": "true"}
        conn = self._conn(None)
        with self._lock:
            self._watches.add(conn)
        try:
            conn.request("GET", f"{path}?{urlencode(query)}", headers=self._headers(None))
            resp = conn.getresponse()
            if resp.status >= 300:
                raise ApiError(resp.status, resp.read().decode(errors="replace"))
            while line := resp.readline():
                yield json.loads(line)
        except (OSError, http.client.HTTPException, ValueError):
            # A closed watch (close(), server restart) just ends the stream.
            return
        finally:
            with self._lock:
                self._watches.discard(conn)
            conn.close()

    def close(self) -> None:
        """End every open watch of this client (they return from their loops)."""
        with self._lock:
            watches = list(self._watches)
        for conn in watches:
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(2)
