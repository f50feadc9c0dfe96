"""The resync loop: pokes are handled soon, sweeps only once armed, failures do not stop it."""

from __future__ import annotations

import asyncio

from keepvip_operator.resync import Resync


def test_pokes_sweeps_and_failures() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []

        async def work(key: str, rejudge: bool) -> None:
            seen.append(key)
            if key == "ns/bad":
                raise RuntimeError("boom")

        resync = Resync(work, lambda: ["ns/a", "ns/b"], interval=0.05)
        resync.start()
        resync.poke("ns/bad", "ns/x", "ns/x")
        await asyncio.sleep(0.12)  # a sweep passed, but the loop is not armed
        assert sorted(seen) == ["ns/bad", "ns/x"]
        resync.arm()
        await asyncio.sleep(0.12)
        await resync.stop()
        return seen

    seen = asyncio.run(scenario())
    assert {"ns/a", "ns/b"} <= set(seen[2:])
