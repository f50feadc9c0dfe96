"""The node agent's own API client: kubeconfig and in-cluster credentials, kept-alive HTTPS, watches.

A small HTTPS server on 127.0.0.1 in this process (ephemeral port, a
throwaway CA from the harness's openssl PKI) plays the API server: it
records each request with its connection and client identity and answers
from a per-test route table, so the tests see what went over the wire
(credentials, reuse of connections, watch resumption). The real API server
is the cluster tier's business (tests/cluster/test_agent_kubernetes.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

from keepvip_agent.kube import config, rest
from keepvip_agent.kube.api import ApiError, Kube, ListWatch
from keepvip_agent.kube.config import ConfigError, from_environment, from_kubeconfig, in_cluster
from keepvip_harness import pki


@dataclass(frozen=True)
class Certs:
    ca: pki.KeyPair
    server: pki.KeyPair
    client: pki.KeyPair


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("pki")
    ca = pki.new_ca(d, "ca", "kube-ca")
    return Certs(
        ca=ca,
        server=pki.issue(
            d, "srv", ca, "/CN=apiserver", usage="serverAuth", alt_names=["IP:127.0.0.1"]
        ),
        client=pki.issue(d, "cli", ca, "/CN=system:node-agent", usage="clientAuth"),
    )


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    connection: int
    client: str | None


Route = Callable[[Seen], tuple[int, Any]]
"""An answer: (status, JSON body), or (status, list of watch events) streamed chunked."""


@dataclass
class FakeServer:
    port: int
    seen: list[Seen] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)


@pytest.fixture
def server(certs: Certs) -> Iterator[FakeServer]:
    state = FakeServer(0)
    connections = iter(range(1, 1000))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.conn_id = next(connections)

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            subject = dict(x[0] for x in peer["subject"]) if peer else {}
            seen = Seen(
                self.command, url.path, dict(parse_qsl(url.query)), dict(self.headers),
                json.loads(raw) if raw else None, self.conn_id, subject.get("commonName"),
            )  # fmt: skip
            state.seen.append(seen)
            status, body = state.routes.pop(0)(seen) if state.routes else (404, {})
            if isinstance(body, list):  # a watch: events, chunked, then the end
                self.send_response(status)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in body:
                    line = json.dumps(event).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.write(b"0\r\n\r\n")
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = _serve  # noqa: N815 (http.server names them)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server.cert, certs.server.key)
    ctx.load_verify_locations(certs.ca.cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def kubeconfig(path: Path, port: int, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    doc = {
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def ok(body: Any) -> Route:
    return lambda _: (200, body)


def test_a_client_certificate_from_files_identifies_the_agent(
    server: FakeServer, certs: Certs, tmp_path: Path
) -> None:
    cfg = kubeconfig(
        tmp_path / "kubeconfig", server.port, {"certificate-authority": str(certs.ca.cert)},
        {"client-certificate": str(certs.client.cert), "client-key": str(certs.client.key)},
    )  # fmt: skip
    kube = Kube(from_kubeconfig([cfg]))
    server.routes.append(ok({"kind": "Node"}))
    assert kube.request("GET", "/api/v1/nodes/n1") == {"kind": "Node"}
    assert server.seen[0].client == "system:node-agent"
    assert "Authorization" not in server.seen[0].headers


def test_inline_data_and_a_token_relative_paths_from_the_kubeconfig(
    server: FakeServer, certs: Certs, tmp_path: Path
) -> None:
    inline = kubeconfig(
        tmp_path / "inline", server.port,
        {"certificate-authority-data": base64.b64encode(certs.ca.cert.read_bytes()).decode()},
        {"token": "t0ken"},
    )  # fmt: skip
    server.routes.append(ok({}))
    Kube(from_kubeconfig([inline])).request("GET", "/version")
    assert server.seen[-1].headers["Authorization"] == "Bearer t0ken"
    (tmp_path / "ca.crt").write_bytes(certs.ca.cert.read_bytes())
    (tmp_path / "token").write_text("from-file\n")
    relative = kubeconfig(
        tmp_path / "relative", server.port, {"certificate-authority": "ca.crt"},
        {"tokenFile": "token"},
    )  # fmt: skip
    server.routes.append(ok({}))
    Kube(from_kubeconfig([relative])).request("GET", "/version")
    assert server.seen[-1].headers["Authorization"] == "Bearer from-file"


def test_in_cluster_reads_the_rotated_token_again(
    server: FakeServer, certs: Certs, tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes(certs.ca.cert.read_bytes())
    (tmp_path / "token").write_text("first")
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
    kube = Kube(in_cluster(env, tmp_path))
    server.routes += [ok({}), ok({})]
    kube.request("GET", "/version")
    (tmp_path / "token.new").write_text("second")
    (tmp_path / "token.new").replace(tmp_path / "token")  # as the kubelet swaps it
    kube.request("GET", "/version")
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer first", "Bearer second"]


def test_kubeconfig_wins_over_in_cluster_and_in_cluster_needs_its_mount(
    certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = kubeconfig(
        tmp_path / "kc", 6443, {"certificate-authority": str(certs.ca.cert)}, {"token": "t"}
    )
    pod = {"KUBERNETES_SERVICE_HOST": "192.0.2.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert from_environment({**pod, "KUBECONFIG": str(cfg)}).port == 6443
    monkeypatch.setattr(config, "SA_DIR", tmp_path / "nothing-mounted")
    with pytest.raises(ConfigError, match="is a service account mounted"):
        from_environment(pod)


@pytest.mark.parametrize(
    ("cluster", "user", "error"),
    [
        ({"server": "http://127.0.0.1:8080"}, {}, "server: an https:// URL needed"),
        ({}, {"exec": {"command": "aws"}}, "user 'u': exec: not supported by the node agent"),
        (
            {"certificate-authority": "/nonexistent/ca.crt"},
            {},
            "certificate-authority: No such file",
        ),
        ({}, {"client-certificate": "c.crt"}, "client-key: needed with a client certificate"),
        ({"certificate-authority-data": "%%%"}, {}, "certificate-authority-data: not base64"),
    ],
)
def test_a_kubeconfig_the_agent_cannot_use_is_one_line_naming_the_field(
    tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], error: str
) -> None:
    cfg = kubeconfig(tmp_path / "kc", 6443, cluster, user)
    if "server" in cluster:
        text = cfg.read_text().replace("https://127.0.0.1:6443", cluster["server"])
        cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        from_kubeconfig([cfg])
    assert error in str(info.value) and "\n" not in str(info.value)


def test_connections_are_kept_alive_and_a_closed_one_is_replaced(
    server: FakeServer, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = kubeconfig(
        tmp_path / "kc", server.port, {"certificate-authority": str(certs.ca.cert)}, {"token": "t"}
    )
    kube = Kube(from_kubeconfig([cfg]))
    server.routes += [ok({"n": i}) for i in range(3)]
    assert [kube.request("GET", "/x")["n"] for _ in range(3)] == [0, 1, 2]
    assert len({s.connection for s in server.seen}) == 1, "one TLS handshake for three calls"
    for conn in kube.http._idle:  # the server closes idle connections after a while
        assert conn.sock is not None
        conn.sock.shutdown(2)
    server.routes.append(ok({"n": 3}))
    assert kube.request("PUT", "/x", {"a": 1}) == {"n": 3}
    assert server.seen[-1].connection != server.seen[0].connection
    assert server.seen[-1].body == {"a": 1}
    # Closed between the idle check and the request: sent once more on a new connection.
    monkeypatch.setattr(rest, "_usable", lambda conn: True)
    for conn in kube.http._idle:
        assert conn.sock is not None
        conn.sock.shutdown(2)
    server.routes.append(ok({"n": 4}))
    assert kube.request("GET", "/x") == {"n": 4}
    assert len({s.connection for s in server.seen}) == 3


def test_an_error_answer_is_an_api_error_with_status_and_reason(
    server: FakeServer, certs: Certs, tmp_path: Path
) -> None:
    cfg = kubeconfig(
        tmp_path / "kc", server.port, {"certificate-authority": str(certs.ca.cert)}, {"token": "t"}
    )
    kube = Kube(from_kubeconfig([cfg]))
    server.routes.append(
        lambda _: (409, {"reason": "Conflict", "message": "the object has been modified"})
    )
    with pytest.raises(ApiError) as info:
        kube.request("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", {})
    assert (info.value.status, info.value.reason) == (409, "Conflict")
    assert str(info.value) == "409 Conflict: the object has been modified"
    server.routes.append(ok({}))
    kube.request("GET", "/x")  # the connection survived the error answer
    assert server.seen[-1].connection == server.seen[0].connection


def test_a_list_watch_resumes_from_its_version_and_relists_only_when_it_expired(
    server: FakeServer, certs: Certs, tmp_path: Path
) -> None:
    cfg = kubeconfig(
        tmp_path / "kc", server.port, {"certificate-authority": str(certs.ca.cert)}, {"token": "t"}
    )
    kube = Kube(from_kubeconfig([cfg]))

    def obj(name: str, rv: str, **extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, **extra}}

    server.routes += [
        ok({"metadata": {"resourceVersion": "10"}, "items": [obj("a", "9", managedFields=[{}])]}),
        ok(
            [
                {"type": "ADDED", "object": obj("b", "11")},
                {"type": "BOOKMARK", "object": obj("", "15")},
            ]
        ),
        ok([{"type": "DELETED", "object": obj("a", "16")}]),
        ok([{"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}]),
        ok({"metadata": {"resourceVersion": "30"}, "items": [obj("c", "29")]}),
    ]

    async def scenario() -> list[list[str]]:
        got: list[list[str]] = []
        done = asyncio.Event()

        def snapshot(items: list[dict[str, Any]]) -> None:
            assert all("managedFields" not in i["metadata"] for i in items)
            got.append(sorted(i["metadata"]["name"] for i in items))
            if got[-1] == ["c"]:
                done.set()

        watch = ListWatch(kube, "things", "/api/v1/namespaces/ns/things", snapshot,
                          asyncio.get_running_loop(), {"labelSelector": "app=x"})  # fmt: skip
        watch.start()
        async with asyncio.timeout(10):
            await done.wait()
        watch.stop()
        return got

    got = asyncio.run(scenario())
    assert got == [["a"], ["a", "b"], ["b"], ["c"]]
    asked = [(s.query.get("watch"), s.query.get("resourceVersion")) for s in server.seen[:5]]
    assert asked == [(None, None), ("true", "10"), ("true", "15"), ("true", "16"), (None, None)]
    assert all(s.query["labelSelector"] == "app=x" for s in server.seen[:5])
    assert server.seen[1].query["allowWatchBookmarks"] == "true"
    assert len({s.connection for s in server.seen[:4]}) == 1, "a watch that ended cleanly is reused"
