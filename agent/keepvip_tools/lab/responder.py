"""A tiny HTTP server that answers with the node's name: what the lab's client probes.

Run inside a node namespace: ``python -m keepvip_tools.lab.responder NAME [PORT]``.
It answers on every address of the namespace, so it answers on the VIP
exactly while this node holds it.
"""

from __future__ import annotations

import asyncio
import sys


async def serve(name: str, port: int) -> None:
    body = f"{name}\n".encode()
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(2.0):
                await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host=None, port=port, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    name = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    asyncio.run(serve(name, port))


if __name__ == "__main__":
    main()
