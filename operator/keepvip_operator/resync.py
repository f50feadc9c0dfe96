"""The resync loop: re-judge VirtualIPs when something they depend on changed, and periodically.

kopf's change handlers fire on a VirtualIP's own spec; but a VirtualIP's
status also depends on things that change without touching it: its agents'
entries growing stale (no event at all), its agent pods going away, another
VirtualIP releasing the address it was blocked on. Handlers "poke" the keys
concerned; a sweep every ``interval`` seconds ages out heartbeats (over the keys
the caller names: handlers.py sweeps only those the clock can change). A poke
says whether the object's decision (conflicts, VRID) may have changed or only
its status; the sweep re-judges status only, so it costs O(objects), not
O(objects^2). Work is in-memory unless something changed.

One loop for the whole operator (not a kopf daemon or timer per object) so
that no finalizer is needed on VirtualIPs: they can be deleted even when
the operator is not running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

logger = logging.getLogger(__name__)


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Stop a loop's task and wait until it has ended (the loops here and in services)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Resync:
    def __init__(
        self,
        work: Callable[[str, bool], Awaitable[None]],
        keys: Callable[[], Iterable[str]],
        *,
        interval: float,
        concurrency: int = 4,
    ) -> None:
        self.work, self.keys, self.interval = work, keys, interval
        self._dirty: dict[str, bool] = {}
        """Key -> whether its decision (conflicts, VRID) must be re-judged, not just its status."""
        self._wake = asyncio.Event()
        self._armed = False
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    def poke(self, *keys: str, rejudge: bool = True) -> None:
        """Look at these keys soon; ``rejudge=False``: only their status can have changed.

        Call on the event loop.
        """
        for key in keys:
            self._dirty[key] = self._dirty.get(key, False) or rejudge
        if keys:
            self._wake.set()

    def arm(self) -> None:
        """Start the periodic sweeps: the indices are complete (a handler has run)."""
        self._armed = True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keepvip-resync")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_sweep - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self.interval
                if self._armed:
                    # Ages out heartbeats; decisions change only with events.
                    self.poke(*self.keys(), rejudge=False)
                    self._wake.clear()
            batch, self._dirty = sorted(self._dirty.items()), {}
            if batch:
                await asyncio.gather(*(self._one(key, rejudge) for key, rejudge in batch))

    async def _one(self, key: str, rejudge: bool) -> None:
        async with self._limit:
            try:
                await self.work(key, rejudge)
            except Exception:  # one object's failure must not stop the loop
                logger.exception("%s: resync failed; retrying on the next sweep", key)


class Coalesce:
    """Run ``work(key)`` for poked keys: one run per key at a time, pokes merged meanwhile.

    A poke while the key's run is under way asks for exactly one more run after
    it, however many pokes came: every poke is followed by a run that *starts*
    after it (so it sees what the poke announced), and a burst of N pokes costs
    at most two runs, not N. Publishing a shared router's addresses is why: its
    own writes on its N Services come back as N Service events, and a run per
    event (each reading all N Services) made the work quadratic.
    """

    def __init__(self, work: Callable[[str], Awaitable[None]]) -> None:
        self.work = work
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def poke(self, key: str) -> None:
        """Call on the event loop."""
        if key in self._tasks:
            self._again.add(key)
        else:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def _run(self, key: str) -> None:
        try:
            while True:
                self._again.discard(key)
                try:
                    await self.work(key)
                except Exception:  # one key's failure must not stop the others
                    logger.exception("%s: failed; retrying on its next event", key)
                if key not in self._again:
                    return
        finally:
            self._tasks.pop(key, None)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            await cancel(task)
        self._again.clear()
