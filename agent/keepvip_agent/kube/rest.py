"""HTTP/1.1 to the API server on the standard library: JSON requests and watch streams.

Why not the ``kubernetes`` client or urllib3: the node agent reads and writes
plain JSON by API path anyway, and those imports cost about 10 MiB of its
memory per node (see :mod:`keepvip_agent.kube.config`). What they gave that
matters is here: kept-alive connections (a status write should not pay a TLS
handshake), thread safety (calls run in worker threads), and a retry when a
kept-alive connection turns out closed by the server before it answered.

A connection is borrowed for one request (or one watch) and put back only
after its answer was read to the end; anything that breaks it closes it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

from keepvip_agent.kube.config import Endpoint

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
IDLE_KEPT = 8
"""Idle connections kept for reuse; about the number of worker threads."""


class ApiError(Exception):
    """A non-2xx answer: ``status`` (HTTP), ``reason`` (the Status reason, e.g. ``NotFound``)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        status_body = body if isinstance(body, dict) else {}
        self.reason = str(status_body.get("reason") or "")
        message = status_body.get("message") or (body if isinstance(body, str) else "")
        super().__init__(f"{status} {self.reason or 'error'}: {str(message)[:200]}".rstrip(": "))


class Connections:
    """Kept-alive HTTPS connections to one endpoint, safe to use from many threads."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: float,
    ) -> Any:
        """One request; its decoded JSON answer (None if empty), or :class:`ApiError`."""
        url = _url(path, query)
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers(content_type if data is not None else None)
        for attempt in (1, 2):
            conn, reused = self._borrow(timeout)
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if reused and attempt == 1:
                    continue  # closed by the server while idle: once more on a new one
                raise
            except BaseException:
                conn.close()
                raise
            self._give_back(conn, resp)
            return _answer(resp.status, raw)
        raise AssertionError("unreachable")

    def stream(
        self, path: str, query: Mapping[str, Any], *, timeout: float
    ) -> Iterator[dict[str, Any]]:
        """The events of one watch request, until the server ends it.

        ``timeout`` bounds the silence between two lines: a server that went away
        without closing the connection raises instead of hanging forever.
        """
        conn, _ = self._borrow(timeout)
        try:
            conn.request("GET", _url(path, {**query, "watch": "true"}), headers=self._headers(None))
            resp = conn.getresponse()
            if resp.status >= 300:
                _answer(resp.status, resp.read())
            while line := resp.readline():
                if line.strip():
                    yield json.loads(line)
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, resp)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": JSON, "User-Agent": "keepvip-agent"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self.endpoint.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _borrow(self, timeout: float) -> tuple[http.client.HTTPSConnection, bool]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if _usable(conn):
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                return conn, True
            conn.close()
        ep = self.endpoint
        return http.client.HTTPSConnection(
            ep.host, ep.port, timeout=timeout, context=ep.context
        ), False

    def _give_back(self, conn: http.client.HTTPSConnection, resp: http.client.HTTPResponse) -> None:
        if resp.will_close or not resp.isclosed():
            conn.close()
            return
        with self._lock:
            if len(self._idle) < IDLE_KEPT:
                self._idle.append(conn)
                return
        conn.close()


def _usable(conn: http.client.HTTPSConnection) -> bool:
    """An idle connection the server has not closed (nothing to read on it, not even EOF)."""
    sock = conn.sock
    if sock is None:
        return False
    with contextlib.suppress(OSError, ValueError):
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable
    return False


def _url(path: str, query: Mapping[str, Any] | None) -> str:
    if not query:
        return path
    return f"{path}?{urlencode({k: _query_value(v) for k, v in query.items()})}"


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _answer(status: int, raw: bytes) -> Any:
    try:
        decoded: Any = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    if status >= 300:
        raise ApiError(status, decoded)
    return decoded
