"""A busy VRRP socket pauses for a millisecond after a large drain; a quiet one never does.

The socket is a Unix datagram pair standing in for the raw socket (same
reads, no privileges); the loop runs on fake time.
"""

from __future__ import annotations

import asyncio
import socket

from keepvip_agent.runtime.vrrp_socket import HOLDOFF, HOLDOFF_BURST, VrrpSocket
from keepvip_harness.runtime_rig import now, run


async def settle() -> None:
    """Let the loop poll its sockets (a few iterations, no time)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_burst_is_read_at_once_and_what_follows_a_millisecond_later() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        vs = VrrpSocket("eth0", 2, 4, lambda r: None, asyncio.get_running_loop(), sock=ours)
        got: list[tuple[bytes, float]] = []
        vs._ipv4 = lambda data: got.append((data, now()))  # type: ignore[method-assign]
        try:
            for k in range(HOLDOFF_BURST + 2):
                theirs.send(bytes([k]))
            await settle()
            t0 = got[0][1]
            assert len(got) == HOLDOFF_BURST + 2  # one drain
            theirs.send(b"late")  # arrives while the port holds off
            await asyncio.sleep(HOLDOFF / 4)
            assert len(got) == HOLDOFF_BURST + 2
            await asyncio.sleep(HOLDOFF)
            assert got[-1][0] == b"late" and got[-1][1] - t0 <= HOLDOFF + 1e-4
            # A quiet port (fewer than HOLDOFF_BURST at a time) answers each datagram at once.
            for _ in range(3):
                await asyncio.sleep(0.01)
                theirs.send(b"one")
                sent = now()
                await settle()
                assert got[-1] == (b"one", got[-1][1]) and got[-1][1] - sent < 1e-4
        finally:
            vs.close()
            theirs.close()

    run(main)
