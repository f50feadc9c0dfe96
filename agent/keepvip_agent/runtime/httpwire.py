"""Just enough HTTP/1.1 for the agent: a GET for health checks and a tiny server for /metrics.

Why not aiohttp: the agent must stay under 50 MiB resident (it runs on every
node), and aiohttp alone costs about 9 MiB of it for four GET endpoints and a
status-code probe. Both ends here are deliberately minimal: one request per
connection (``Connection: close``), no bodies on requests, no redirects
followed, and TLS without certificate verification for checks, as the
kubelet's httpGet probes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

MAX_HEAD = 16384
Handler = Callable[[], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HTTPCheckError(Exception):
    """The server could not be reached or did not answer HTTP."""


async def get_status(url: str, user_agent: str = "keepvip-agent") -> int:
    """GET ``url`` and return the response's status code (the caller bounds the time)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
    except OSError as exc:
        raise HTTPCheckError(f"connect {host}:{port}: {exc.strerror or exc}") from None
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = f"[{host}]" if ":" in host else host
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {authority}:{port}\r\nUser-Agent: {user_agent}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
    except (OSError, ssl.SSLError) as exc:
        raise HTTPCheckError(str(exc)) from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
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
