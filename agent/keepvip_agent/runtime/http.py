"""The agent's HTTP endpoint: /metrics, /healthz, /readyz and /status (JSON).

/healthz answers as long as the event loop runs (a hung loop cannot answer);
/readyz once every VirtualIP has joined its election; /status is what
``keepvip status`` reads from a standalone agent.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keepvip_agent.runtime.agent import Agent
from keepvip_agent.runtime.httpwire import Handler
from keepvip_agent.runtime.httpwire import serve as serve_routes


def routes(agent: Agent) -> dict[str, Handler]:
    async def metrics() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(agent.metrics.registry)

    async def healthz() -> tuple[int, str, bytes]:
        return 200, "text/plain", b"ok\n"

    async def readyz() -> tuple[int, str, bytes]:
        if agent.ready:
            return 200, "text/plain", b"ready\n"
        return 503, "text/plain", b"not ready\n"

    async def status() -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(agent.status(), indent=1).encode() + b"\n"

    return {"/metrics": metrics, "/healthz": healthz, "/readyz": readyz, "/status": status}


class WebEndpoint:
    def __init__(self, server: asyncio.Server) -> None:
        self.server = server

    async def cleanup(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def serve(agent: Agent, host: str, port: int) -> WebEndpoint:
    return WebEndpoint(await serve_routes(routes(agent), host, port))
