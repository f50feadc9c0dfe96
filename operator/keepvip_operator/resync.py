"""The resync loop: re-judge VirtualIPs when something they depend on changed, and periodically.

kopf's change handlers fire on a VirtualIP's own spec; but a VirtualIP's
status also depends on things that change without touching it: its agents'
entries growing stale (no event at all), its agent pods going away, another
VirtualIP releasing the address it was blocked on. Handlers "poke" the keys
concerned; a sweep every ``interval`` seconds catches the rest. Work is
in-memory unless something changed, so a sweep over every VirtualIP is cheap.

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


class Resync:
    def __init__(
        self,
        work: Callable[[str], Awaitable[None]],
        keys: Callable[[], Iterable[str]],
        *,
        interval: float,
        concurrency: int = 4,
    ) -> None:
        self.work, self.keys, self.interval = work, keys, interval
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._armed = False
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    def poke(self, *keys: str) -> None:
        """Re-judge these keys soon. Call on the event loop."""
        if keys:
            self._dirty.update(keys)
            self._wake.set()

    def arm(self) -> None:
        """Start the periodic sweeps: the indices are complete (a handler has run)."""
        self._armed = True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keepvip-resync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_sweep - loop.time()))
            self._wake.clear()
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self.interval
                if self._armed:
                    self._dirty.update(self.keys())
            batch, self._dirty = sorted(self._dirty), set()
            if batch:
                await asyncio.gather(*(self._one(key) for key in batch))

    async def _one(self, key: str) -> None:
        async with self._limit:
            try:
                await self.work(key)
            except Exception:  # one object's failure must not stop the loop
                logger.exception("%s: resync failed; retrying on the next sweep", key)
