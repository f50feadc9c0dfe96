"""The agent's HTTP endpoint: /metrics, /healthz, /readyz and /status (JSON).

/healthz answers as long as the event loop runs (a hung loop cannot answer);
/readyz once every VirtualIP has joined its election; /status is what
``keepvip status`` reads from a standalone agent.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from keepvip_agent.runtime.agent import Agent


def make_app(agent: Agent) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(agent.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if agent.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def status(_: web.Request) -> web.Response:
        return web.json_response(agent.status())

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    return app


async def serve(agent: Agent, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(agent), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
