"""httpGet checks over TLS: verified by default, caFile, serverName, client certificates, hangs.

The servers are asyncio TLS servers on 127.0.0.1 in this process (loopback
only, ephemeral ports) with certificates from a throwaway CA made by the
harness's openssl PKI; each probe runs through the agent's own ``probe``.
The hung servers are the point of the last tests: a kube-apiserver that is
stopped (SIGSTOP) or deadlocked still completes TCP handshakes in the
kernel, and a check must fail within its timeout, not 30 s later while a
TLS close waits for a close_notify that never comes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keepvip_agent.runtime.checks import probe
from keepvip_agent.runtime.tlscontext import TLSContexts
from keepvip_api.model import Check
from keepvip_harness import pki


@dataclass(frozen=True)
class Certs:
    ca: pki.KeyPair
    other_ca: pki.KeyPair
    server: pki.KeyPair
    """SANs: DNS:kubernetes only, so https://127.0.0.1 needs serverName."""
    server_ip: pki.KeyPair
    """SANs: IP:127.0.0.1."""
    client: pki.KeyPair


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("tls")
    ca = pki.new_ca(d, "ca", "check-ca")
    return Certs(
        ca=ca,
        other_ca=pki.new_ca(d, "other-ca", "someone-else"),
        server=pki.issue(
            d, "server", ca, "/CN=kube-apiserver", usage="serverAuth", alt_names=["DNS:kubernetes"]
        ),
        server_ip=pki.issue(
            d, "server-ip", ca, "/CN=ip", usage="serverAuth", alt_names=["IP:127.0.0.1"]
        ),
        client=pki.issue(d, "client", ca, "/CN=keepvip-check", usage="clientAuth"),
    )


Responder = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def answer_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def tls_server(
    pair: pki.KeyPair, respond: Responder = answer_200, client_ca: Path | None = None
) -> AsyncIterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert, pair.key)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    server = await asyncio.start_server(respond, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def check(url: str, timeout: str = "1s", **http: Any) -> Check:
    return Check.model_validate(
        {
            "name": "apiserver",
            "httpGet": {"url": url, **http},
            "timeout": timeout,
            "onFailure": {"action": "fault"},
        }
    )


@dataclass(frozen=True)
class Outcome:
    healthy: bool
    detail: str
    seconds: float


def probe_served(
    pair: pki.KeyPair,
    *,
    respond: Responder = answer_200,
    client_ca: Path | None = None,
    timeout: str = "1s",
    **http: Any,
) -> Outcome:
    """Serve ``pair`` on a loopback port and probe https://127.0.0.1:PORT/readyz once."""

    async def go() -> Outcome:
        async with tls_server(pair, respond, client_ca) as port:
            c = check(f"https://127.0.0.1:{port}/readyz", timeout, **http)
            t0 = time.monotonic()
            ok, detail = await probe(c)
            return Outcome(ok, detail.replace(str(port), "PORT"), time.monotonic() - t0)

    return asyncio.run(go())


def test_a_certificate_from_the_ca_file_for_the_server_name_is_healthy(certs: Certs) -> None:
    out = probe_served(certs.server, caFile=str(certs.ca.cert), serverName="kubernetes")
    assert (out.healthy, out.detail) == (True, "GET https://127.0.0.1:PORT/readyz: 200")


def test_the_url_host_is_checked_when_no_server_name_is_given(certs: Certs) -> None:
    assert probe_served(certs.server_ip, caFile=str(certs.ca.cert)).healthy
    out = probe_served(certs.server, caFile=str(certs.ca.cert))
    assert not out.healthy
    assert out.detail == (
        "GET https://127.0.0.1:PORT/readyz: TLS: certificate not trusted: IP address mismatch, "
        f"certificate is not valid for '127.0.0.1'. (checked against caFile {certs.ca.cert})"
    )


def test_without_a_ca_file_the_system_trust_store_decides(certs: Certs) -> None:
    out = probe_served(certs.server, serverName="kubernetes")
    assert not out.healthy
    assert out.detail.startswith("GET https://127.0.0.1:PORT/readyz: TLS: certificate not trusted")
    assert out.detail.endswith("(checked against the system's trust store)")


def test_a_certificate_of_another_ca_is_refused(certs: Certs) -> None:
    out = probe_served(certs.server, caFile=str(certs.other_ca.cert), serverName="kubernetes")
    assert not out.healthy and "certificate not trusted" in out.detail


def test_insecure_skip_verify_accepts_any_certificate_when_written_out(certs: Certs) -> None:
    out = probe_served(certs.server, insecureSkipVerify=True)
    assert (out.healthy, out.detail) == (True, "GET https://127.0.0.1:PORT/readyz: 200")


def test_a_client_certificate_is_presented_when_configured(certs: Certs) -> None:
    trust = {"caFile": str(certs.ca.cert), "serverName": "kubernetes"}
    refused = probe_served(certs.server, client_ca=certs.ca.cert, **trust)
    assert not refused.healthy
    ok = probe_served(
        certs.server,
        client_ca=certs.ca.cert,
        clientCertFile=str(certs.client.cert),
        clientKeyFile=str(certs.client.key),
        **trust,
    )
    assert ok.healthy, ok.detail


def test_an_unreadable_ca_file_fails_the_check_and_names_the_file(
    certs: Certs, tmp_path: Path
) -> None:
    missing = tmp_path / "ca.crt"
    out = probe_served(certs.server, caFile=str(missing), serverName="kubernetes")
    assert (out.healthy, out.detail) == (
        False,
        f"GET https://127.0.0.1:PORT/readyz: {missing}: No such file or directory",
    )
    missing.write_text("not a certificate\n")
    out = probe_served(certs.server, caFile=str(missing), serverName="kubernetes")
    assert not out.healthy and out.detail.startswith(
        f"GET https://127.0.0.1:PORT/readyz: caFile {missing}: "
    )


def test_the_context_is_kept_and_rebuilt_when_a_file_changes(certs: Certs, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(certs.other_ca.cert.read_bytes())
    c = check("https://127.0.0.1:1/readyz", caFile=str(ca))
    assert c.http_get is not None
    contexts = TLSContexts(c.http_get)
    first = contexts.get()
    assert contexts.get() is first
    ca.write_bytes(certs.ca.cert.read_bytes() + b"\n")  # a rotated CA: another size
    second = contexts.get()
    assert second is not first
    assert [x["subject"] for x in second.get_ca_certs()] == [((("commonName", "check-ca"),),)]


@pytest.fixture
def frozen_server(certs: Certs) -> Iterator[int]:
    """A TLS server that completes the handshake and then freezes: it reads nothing more, so it
    neither answers the request nor a TLS close (a deadlocked or SIGSTOPped API server whose
    connection was already open). A thread with blocking sockets, apart from the probe's loop."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.server.cert, certs.server.key)
    release = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True):
            release.wait(30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        release.set()
        thread.join(5)
        listener.close()


def test_a_server_frozen_after_the_handshake_fails_within_the_timeout(
    certs: Certs, frozen_server: int
) -> None:
    c = check(
        f"https://127.0.0.1:{frozen_server}/readyz", "300ms", caFile=str(certs.ca.cert),
        serverName="kubernetes",
    )  # fmt: skip
    t0 = time.monotonic()
    assert asyncio.run(probe(c)) == (False, "timed out after 0.3s")
    assert time.monotonic() - t0 < 1.0


@pytest.fixture
def stopped_server() -> Iterator[int]:
    """A port whose listener never accepts: what a SIGSTOPped server looks like to a client
    (the kernel completes the TCP handshake into the backlog; no TLS handshake follows)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_a_stopped_server_fails_within_the_timeout(certs: Certs, stopped_server: int) -> None:
    c = check(f"https://127.0.0.1:{stopped_server}/readyz", "300ms", caFile=str(certs.ca.cert))
    t0 = time.monotonic()
    assert asyncio.run(probe(c)) == (False, "timed out after 0.3s")
    assert time.monotonic() - t0 < 1.0


def test_plain_http_needs_no_tls_and_a_503_is_unhealthy() -> None:
    async def unready(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def go() -> tuple[bool, str]:
        server = await asyncio.start_server(unready, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            ok, detail = await probe(check(f"http://127.0.0.1:{port}/readyz"))
            return ok, detail.replace(str(port), "PORT")
        finally:
            server.close()

    assert asyncio.run(go()) == (False, "GET http://127.0.0.1:PORT/readyz: 503")
