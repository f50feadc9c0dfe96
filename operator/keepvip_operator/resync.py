"""The resync loop: re-judge VirtualIPs when something they depend on changed, and periodically.

kopf's change handlers fire on a VirtualIP's own spec; but a VirtualIP's
status also depends on things that change without touching it: its agents'
entries growing stale (no event at all), its agent pods going away, another
VirtualIP releasing the address it was blocked on. Handlers "poke" the keys
concerned; a sweep every ``interval`` seconds ages out heartbeats (over the keys
the caller names: handlers.py sweeps only those the clock can change). A poke
says whether the object's decision (conflicts, VRID) may have changed or only
its status; the sweep re-judges status only, so it costs O(objects), not
O(objects^2). Work is in-memory unless something changed. Up to ``concurrency``
keys run at once, never one key twice at once; poked keys go before a sweep's
and never wait for a sweep to end.

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
        self.concurrency = concurrency
        self._dirty: dict[str, bool] = {}
        """Key -> whether its decision (conflicts, VRID) must be re-judged, not just its status."""
        self._urgent: set[str] = set()
        """The dirty keys an event poked: they run before a sweep's."""
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._armed = False
        self._task: asyncio.Task[None] | None = None

    def poke(self, *keys: str, rejudge: bool = True) -> None:
        """Look at these keys soon; ``rejudge=False``: only their status can have changed.

        Call on the event loop. A poked key waits for a free worker, never for a
        sweep to finish: a new master's entry reached status.master only after
        the sweep that happened to run (all VirtualIPs when a node's liveness
        changed) was through.
        """
        self._add(keys, rejudge, urgent=True)

    def arm(self) -> None:
        """Start the periodic sweeps: the indices are complete (a handler has run)."""
        self._armed = True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keepvip-resync")

    async def stop(self) -> None:
        await cancel(self._task)
        for task in list(self._tasks):
            await cancel(task)

    def _add(self, keys: Iterable[str], rejudge: bool, *, urgent: bool) -> None:
        added = False
        for key in keys:
            self._dirty[key] = self._dirty.get(key, False) or rejudge
            if urgent:
                self._urgent.add(key)
            added = True
        if added:
            self._wake.set()

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
                    self._add(self.keys(), False, urgent=False)
                    self._wake.clear()
            self._dispatch()

    def _dispatch(self) -> None:
        """Start dirty keys on free workers: poked ones first, none twice at a time."""
        while len(self._running) < self.concurrency:
            picked = self._next()
            if picked is None:
                return
            key, rejudge = picked
            self._running.add(key)
            task = asyncio.get_running_loop().create_task(self._one(key, rejudge))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _next(self) -> tuple[str, bool] | None:
        for pool in (self._urgent, self._dirty):
            for key in pool:
                if key not in self._running:
                    self._urgent.discard(key)
                    return key, self._dirty.pop(key)
        return None

    async def _one(self, key: str, rejudge: bool) -> None:
        try:
            await self.work(key, rejudge)
        except Exception:  # one object's failure must not stop the loop
            logger.exception("%s: resync failed; retrying on the next sweep", key)
        finally:
            self._running.discard(key)
            self._wake.set()  # a free worker: the next key (this one again if poked meanwhile)


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
