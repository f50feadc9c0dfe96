"""Sockets inside a node's network namespace, made without leaving ours.

A socket belongs to the network namespace of the thread that created it. So
a short-lived thread enters the node namespace (``setns``), creates the
socket and ends; the socket is then used from any thread of this process.
That gives the pod launcher two things a kubelet has for free:

* readiness and liveness probes (httpGet, tcpSocket) that connect the way a
  kubelet on that node would, inside the node's "host network";
* a relay from 127.0.0.1:<api port> inside the node namespace to the API
  server on the host's loopback, so a pod's process reaches the API at the
  same URL as the tests do (the API server listens on the host's 127.0.0.1
  only, which no other namespace can see).

Python 3.11 has no ``os.setns``; libc's is called through ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

logger = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
NETNS_DIR = Path("/run/netns")
T = TypeVar("T")


def in_netns(netns: str, make: Callable[[], T]) -> T:
    """Run ``make`` in a thread that has entered ``netns``; return its result."""
    box: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box.append(make())
        except BaseException as exc:
            errors.append(exc)
        # The thread ends here, and with it its membership of the namespace.

    t = threading.Thread(target=work, name=f"setns-{netns}")
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return box[0]


def connect(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside ``netns``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = in_netns(netns, lambda: socket.socket(family, socket.SOCK_STREAM))
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _ConnectedHTTP(http.client.HTTPConnection):
    def __init__(self, sock: socket.socket, host: str, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self._pre = sock

    def connect(self) -> None:
        self.sock = self._pre


def http_get(
    netns: str,
    host: str,
    port: int,
    path: str,
    *,
    scheme: str = "HTTP",
    headers: Mapping[str, str] | None = None,
    timeout: float = 1.0,
) -> int:
    """The status code of a GET from inside ``netns``, as a kubelet probe does it.

    HTTPS is not verified, like the kubelet's probes.
    """
    sock: socket.socket = connect(netns, host, port, timeout)
    if scheme.upper() == "HTTPS":
        ctx = ssl._create_unverified_context()  # noqa: S323 - the kubelet does not verify either
        sock = ctx.wrap_socket(sock, server_hostname=host)
    conn = _ConnectedHTTP(sock, host, timeout)
    try:
        conn.request("GET", path or "/", headers=dict(headers or {}))
        return conn.getresponse().status
    finally:
        conn.close()


class ApiRelay:
    """Forwards 127.0.0.1:<port> inside a namespace to the API server on ours.

    Bytes only: TLS runs end to end between the pod's client and the API
    server, whose certificate names 127.0.0.1.
    """

    def __init__(self, netns: str, target_port: int, listen_port: int | None = None) -> None:
        self.netns = netns
        self.target_port = target_port
        self._listener = in_netns(netns, self._bind(listen_port or target_port))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"relay-{netns}", daemon=True).start()

    @staticmethod
    def _bind(port: int) -> Callable[[], socket.socket]:
        def make() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                # Taken in that namespace (or lo is down, which the caller
                # reports): any free port will do, the env says which.
                s.bind(("127.0.0.1", 0))
            s.listen(64)
            return s

        return make

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError as exc:
                logger.warning("relay %s: API server unreachable: %s", self.netns, exc)
                inner.close()
                continue
            outer.settimeout(None)
            pair = _Pair(inner, outer)
            with self._lock:
                if self._closed:
                    pair.close()
                    return
                self._pairs.add(pair)
            for src, dst in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        if pair.one_direction_done():
            with self._lock:
                self._pairs.discard(pair)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pairs = list(self._pairs)
            self._pairs.clear()
        self._listener.close()
        for pair in pairs:
            pair.close()


class _Pair:
    """Both ends of one relayed connection; closed when both directions end."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self._socks = (a, b)
        self._done = 0
        self._lock = threading.Lock()

    def one_direction_done(self) -> bool:
        with self._lock:
            self._done += 1
            last = self._done == 2
        if last:
            self.close()
        return last

    def close(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
