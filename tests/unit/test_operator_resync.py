"""The resync loop: pokes are handled soon, sweeps only once armed, failures do not stop it."""

from __future__ import annotations

import asyncio

from keepvip_operator.resync import Coalesce, Resync


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


def test_coalesce_merges_pokes_into_one_more_run_that_starts_after_them() -> None:
    async def scenario() -> list[tuple[str, int]]:
        runs: list[tuple[str, int]] = []
        gate = asyncio.Event()
        pokes = {"a": 0, "b": 0}

        async def work(key: str) -> None:
            runs.append((key, pokes[key]))  # how many pokes this run can see
            if key == "a" and len(runs) == 1:
                await gate.wait()
            if key == "b":
                raise RuntimeError("boom")

        c = Coalesce(work)

        def poke(key: str) -> None:
            pokes[key] += 1
            c.poke(key)

        poke("a")
        await asyncio.sleep(0)
        for _ in range(5):  # while the first run of "a" is under way
            poke("a")
        poke("b")
        await asyncio.sleep(0.01)
        assert runs == [("a", 1), ("b", 1)], "b runs beside a, and its failure is contained"
        gate.set()
        await asyncio.sleep(0.01)
        poke("b")
        await asyncio.sleep(0.01)
        await c.stop()
        return runs

    runs = asyncio.run(scenario())
    # One more run of "a" for the five pokes, and it saw all of them; "b" ran again.
    assert runs == [("a", 1), ("b", 1), ("a", 6), ("b", 2)]


def test_a_poke_does_not_wait_for_a_sweep_and_a_key_never_runs_twice_at_once() -> None:
    """A new master's entry (a poke) while a sweep of every VirtualIP runs (a node's liveness
    changed): it takes the next free worker, not the end of the sweep."""

    async def scenario() -> tuple[list[str], list[str]]:
        done: list[str] = []
        running: set[str] = set()
        overlap: list[str] = []

        async def work(key: str, rejudge: bool) -> None:
            if key in running:
                overlap.append(key)
            running.add(key)
            await asyncio.sleep(0.05)
            running.discard(key)
            done.append(key)

        resync = Resync(work, lambda: [f"s{i}" for i in range(40)], interval=0.01, concurrency=4)
        resync.arm()
        resync.start()
        await asyncio.sleep(0.02)  # the sweep of 40 keys is under way: 10 rounds of 50 ms
        resync.poke("new", rejudge=False)
        await asyncio.sleep(0.15)
        assert "new" in done and done.index("new") < 12, done
        resync.poke("s39")
        resync.poke("s39")
        await asyncio.sleep(0.6)
        await resync.stop()
        return done, overlap

    _, overlap = asyncio.run(scenario())
    assert overlap == []
