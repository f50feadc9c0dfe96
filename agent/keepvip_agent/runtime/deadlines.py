"""One event-loop timer for the deadlines of every instance of the agent.

Each instance has at most one deadline at a time (its router's advertisement
or master-down timer). With one asyncio timer per instance, every deadline
costs a timer handle (a context copy, a heap push, a callback through the
loop); 256 masters at 100 ms make 2,560 of them a second. Here the deadlines
sit in one heap and one loop timer is armed at the earliest: a wake-up runs
every instance whose deadline has come, in deadline order.

A deadline is replaced by arming again (the old heap entry is left behind and
skipped when it surfaces), so moving or cancelling costs no heap search.

A deadline may allow being met a little early (``early``): a master's next
advertisement may go out with the batch of a wake-up up to a millisecond or
two before it is due, which folds the adverts of hundreds of masters, due
over a millisecond or so, into one wake-up per interval instead of a dozen.
An exact deadline (a backup's master-down timer) is never run early.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import weakref
from typing import Protocol


class Owner(Protocol):
    def on_deadline(self) -> None:
        """The deadline armed last has come (it is not re-armed: arm again if needed)."""
        ...


class Deadlines:
    """The deadlines of many owners, on one loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Owner, float]] = []
        self._at: dict[Owner, float] = {}
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._early = 0.0
        """The largest ``early`` ever armed: how far past now a wake-up looks."""

    def arm(self, owner: Owner, at: float, early: float = 0.0) -> None:
        """Call ``owner.on_deadline()`` at loop time ``at`` (instead of any earlier arming),
        or up to ``early`` seconds before it when a wake-up for another deadline comes then."""
        self._at[owner] = at
        self._early = max(self._early, early)
        heapq.heappush(self._heap, (at, next(self._order), owner, early))
        if at < self._timer_at:
            self._set_timer(at)

    def cancel(self, owner: Owner) -> None:
        self._at.pop(owner, None)

    def _set_timer(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap, armed = self._heap, self._at
        now = self._loop.time()
        limit = now + self._early
        later = []
        while heap and heap[0][0] <= limit:
            entry = heapq.heappop(heap)
            at, _, owner, early = entry
            if at - early > now:
                later.append(entry)  # not allowed this early: back into the heap below
                continue
            if armed.get(owner) == at:
                del armed[owner]
                try:
                    owner.on_deadline()
                except Exception as exc:  # as asyncio does for a callback: report, go on
                    self._loop.call_exception_handler(
                        {"message": "deadline callback failed", "exception": exc}
                    )
        for entry in later:
            heapq.heappush(heap, entry)
        while heap and armed.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # left behind by a re-arming or a cancel
        if heap and heap[0][0] < self._timer_at:
            self._set_timer(heap[0][0])


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def deadlines() -> Deadlines:
    """The running loop's :class:`Deadlines` (every instance of the agent shares it)."""
    loop = asyncio.get_running_loop()
    found = _PER_LOOP.get(loop)
    if found is None:
        found = _PER_LOOP[loop] = Deadlines(loop)
    return found
