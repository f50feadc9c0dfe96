"""Just enough HTTP/1.1 for the agent: a GET for health checks and a tiny server for /metrics.

Why not aiohttp: the agent must stay under 50 MiB resident (it runs on every
node), and aiohttp alone costs about 9 MiB of it for four GET endpoints and a
status-code probe. Both ends here are deliberately minimal: one request per
connection (``Connection: close``), no bodies on requests, no redirects
followed. TLS is the caller's: a GET to an https URL takes the client
context (verification and all) that the check built (``tlscontext``).

A probe is cut off by its caller's timeout at any point (connect, handshake,
or waiting for an answer from a hung server). The connection is then
aborted, not closed: a TLS close waits for the peer's close_notify, which a
hung server never sends, and would hold the probe for asyncio's 30 s
shutdown timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

MAX_HEAD = 16384
Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HTTPCheckError(Exception):
    """The server could not be reached or did not answer HTTP."""


class CertificateError(HTTPCheckError):
    """The server's certificate is not trusted or does not carry the expected name."""


async def get_status(
    url: str,
    *,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
    user_agent: str = "keepvip-agent",
) -> int:
    """GET ``url`` and return the response's status code (the caller bounds the time).

    An https URL needs ``tls``; ``server_name`` is the name its certificate is
    checked against (and sent as SNI) instead of the URL's host.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    if https and tls is None:
        raise HTTPCheckError("an https URL needs a TLS context")
    try:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=tls if https else None,
            server_hostname=(server_name or host) if https else None,
        )
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"TLS: certificate not trusted: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise HTTPCheckError(f"TLS: {exc.reason or exc}") from None
    except OSError as exc:
        raise HTTPCheckError(f"connect {host}:{port}: {exc.strerror or exc}") from None
    answered = False
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = f"[{host}]" if ":" in host else host
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {authority}:{port}\r\nUser-Agent: {user_agent}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
        answered = True
    except ssl.SSLError as exc:
        raise HTTPCheckError(f"TLS: {exc.reason or exc}") from None
    except OSError as exc:
        raise HTTPCheckError(str(exc)) from None
    finally:
        if answered:
            writer.close()
        else:  # cancelled by the timeout, or failed: do not wait for a hung peer
            writer.transport.abort()
    fields = line.decode("latin-1").split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise HTTPCheckError(f"not an HTTP response: {line[:80]!r}")
    return int(fields[1])


async def serve(routes: dict[str, Handler], host: str, port: int) -> asyncio.Server:
    """Serve GET requests for ``routes``; anything else gets 404 or 405."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = [*head[:MAX_HEAD].decode("latin-1").split(" ", 2), "", ""]
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            elif path in routes:
                status, ctype, body = await routes[path]()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = _REASONS.get(status, "")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)
