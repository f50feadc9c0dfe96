"""The VRRP sockets' receive thread (C, ``_rxwatch.c``) as sockets and instances use it.

Why: a backup in steady state hears its master's advertisement, the same
bytes every interval, and only restarts its master-down timer. Handled in
Python, each costs an event-loop wake-up; with hundreds of instances that
made a backup agent cost two to five times keepalived (issue 14). The C
thread reads every socket and absorbs those repeats itself; Python hears only
of what needs a decision, in arrival order:

* any other datagram, handed to its :class:`PacketSink` (the socket), with the
  key an instance may later *expect* (the bytes that make it the same advert);
* an expectation (or a schedule of sends, below) that *ended* in C: its deadline passed with no repeat
  (``expired``: the master-down timer ran out), or its socket was released or
  closed (``released``). Either way with the repeats counted and the last one's
  arrival time, so the router learns what it missed before it decides.

The thread also sends a master's periodic advertisements (:meth:`RxWatch.send_every`),
so a master in steady state costs a send and no Python either.

An instance expects only what its router would take on the short path
(:meth:`~keepvip_agent.vrrp.router.VirtualRouter.advertisement_repeated`), and
it *withdraws* (getting the same counts) before anything else reaches its
router. What counts as a repeat stays in Python; the thread compares bytes.

Where the extension was not built (no compiler), or ``KEEPVIP_RX_THREAD=0`` is
set, :func:`shared` returns None and the sockets are read in Python as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

try:
    from keepvip_agent.runtime import _rxwatch
except ImportError as exc:  # built by `pip install` where a C compiler is present
    _rxwatch = None  # type: ignore[assignment]
    _IMPORT_ERROR: str | None = str(exc)
else:
    _IMPORT_ERROR = None

Counts = tuple[int, float | None]
"""Repeats absorbed since the last look, and the loop time of the last one (None: none yet)."""


class PacketSink(Protocol):
    def deliver(
        self, data: bytes, key: bytes | None, src: bytes | None, hops: int, dst: bytes | None
    ) -> None:
        """A datagram the thread read (IPv6: sender, hop limit and destination beside it)."""
        ...


class Expecting(Protocol):
    def expectation_ended(self, expired: bool, counts: Counts) -> None:
        """The thread ended the expectation (see the module docstring)."""
        ...


class RxWatch:
    """One receive thread for every VRRP socket of an event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _rxwatch is not None
        self._loop = loop
        self._engine = _rxwatch.Engine()
        self._sinks: dict[int, PacketSink] = {}
        self._owners: dict[int, Expecting] = {}
        self._free: list[int] = []
        self._next_slot = 0
        self._ended: dict[int, tuple[bool, Counts]] = {}
        """Ends taken from the thread and not yet delivered (see :meth:`withdraw`)."""
        loop.add_reader(self._engine.fileno(), self._on_events)

    # -- sockets ---------------------------------------------------------------------

    def add_socket(self, fd: int, family: int, sink: PacketSink) -> None:
        self._engine.add_socket(fd, family)
        self._sinks[fd] = sink

    def remove_socket(self, fd: int) -> None:
        """Before the socket closes. Its expectations end (released); its queued datagrams
        are still delivered (to nobody, if it is gone)."""
        self._engine.remove_socket(fd)
        self._sinks.pop(fd, None)
        # The ends it caused are news now: an owner must not wait for a thread that is
        # about to stop (the last socket) for the timer it handed over.
        self._on_events()
        if not self._sinks:
            self.close()

    def release(self, fd: int) -> None:
        """Every expectation on this socket ends (released): what they assumed changed."""
        self._engine.release(fd)

    # -- expectations ----------------------------------------------------------------

    def expect(
        self, owner: Expecting, fd: int, vrid: int, key: bytes, since: float, delta: float
    ) -> int | None:
        """Absorb datagrams equal to ``key`` on ``fd`` (for VRID ``vrid``); end the
        expectation ``delta`` s after the last (or ``since``). Its slot, or None if the
        socket is not watched."""
        return self._register(
            owner, lambda slot: self._engine.expect(slot, fd, vrid, key, since, delta)
        )

    def send_every(
        self,
        owner: Expecting,
        fd: int,
        family: int,
        ifindex: int,
        src: bytes,
        packets: list[tuple[bytes, bytes]],
        interval: float,
        first_due: float,
    ) -> int | None:
        """Send each (payload, destination) from ``src`` every ``interval`` s from
        ``first_due`` on (up to a 50th of the interval early, at most 20 ms, to share a
        wake-up; the schedule is kept). Its slot, or None if the socket is not watched. :meth:`withdraw`
        gives how many went out and when the last was due; a released socket ends it."""
        return self._register(
            owner,
            lambda slot: self._engine.send_every(
                slot, fd, family, ifindex, src, packets, interval, first_due
            ),
        )

    def send_errors(self, slot: int) -> tuple[int, int] | None:
        """Failed sends of a sending slot (and the last errno), or None."""
        return self._engine.send_errors(slot)

    def _register(self, owner: Expecting, start: Callable[[int], bool]) -> int | None:
        """A free slot for ``owner`` if ``start(slot)`` takes it (the socket is watched)."""
        if self._free:
            slot = self._free.pop()
        else:
            slot, self._next_slot = self._next_slot, self._next_slot + 1
        if not start(slot):
            self._free.append(slot)
            return None
        self._owners[slot] = owner
        return slot

    def withdraw(self, slot: int) -> Counts:
        """End it from Python: the counts since the last :meth:`peek`, as an end would give."""
        got = self._engine.withdraw(slot)
        ended = self._ended.pop(slot, None)
        if got is None and ended is not None:
            got = ended[1]
        self._release_slot(slot)
        return got if got is not None else (0, None)

    def peek(self, slot: int) -> Counts:
        """The counts since the last look, the expectation going on."""
        return self._engine.peek(slot) or (0, None)

    def _release_slot(self, slot: int) -> None:
        if self._owners.pop(slot, None) is not None:
            self._free.append(slot)

    # -- events ----------------------------------------------------------------------

    def _on_events(self) -> None:
        assert _rxwatch is not None
        events = self._engine.take()
        packet = _rxwatch.PACKET
        ended = self._ended
        for ev in events:
            if ev[0] != packet:
                ended[ev[1]] = (ev[0] == _rxwatch.EXPIRED, (ev[2], ev[3]))
        sinks, owners = self._sinks, self._owners
        for ev in events:
            try:
                if ev[0] == packet:
                    sink = sinks.get(ev[1])
                    if sink is not None:
                        sink.deliver(ev[2], ev[3], ev[4], ev[5], ev[6])
                    continue
                slot = ev[1]
                end = ended.pop(slot, None)
                owner = owners.get(slot)
                if end is None or owner is None:
                    continue  # withdrawn while this batch was being handled
                self._release_slot(slot)
                owner.expectation_ended(*end)
            except Exception as exc:  # as asyncio does for a callback: report, go on
                self._loop.call_exception_handler(
                    {"message": "receive event handling failed", "exception": exc}
                )

    def stats(self) -> dict[str, int]:
        """Datagrams absorbed as repeats, and dropped because Python fell behind."""
        return self._engine.stats()

    def close(self) -> None:
        self._loop.remove_reader(self._engine.fileno())
        for name, value in self._engine.stats().items():
            _CLOSED[name] = _CLOSED.get(name, 0) + value
        self._engine.close()
        if _PER_LOOP.get(self._loop) is self:
            del _PER_LOOP[self._loop]


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RxWatch] = (
    weakref.WeakKeyDictionary()
)
_said = False
_CLOSED: dict[str, int] = {}
"""The counts of receive threads closed before (their sockets all went away)."""


def totals() -> dict[str, int]:
    """This process's receive threads: datagrams absorbed as repeats (``matched``) and
    dropped because Python fell behind (``dropped``)."""
    found = dict(_CLOSED)
    for rx in list(_PER_LOOP.values()):
        for name, value in rx.stats().items():
            found[name] = found.get(name, 0) + value
    return found


def enabled() -> bool:
    """Whether sockets opened now get the receive thread."""
    return _rxwatch is not None and os.environ.get("KEEPVIP_RX_THREAD", "1") != "0"


def shared(loop: asyncio.AbstractEventLoop) -> RxWatch | None:
    """The loop's receive thread (started with its first socket), or None: read in Python."""
    global _said  # noqa: PLW0603 (one log line per process)
    if not enabled():
        if not _said:
            _said = True
            why = _IMPORT_ERROR or "KEEPVIP_RX_THREAD=0"
            logger.info("VRRP sockets are read in Python (no receive thread: %s)", why)
        return None
    found = _PER_LOOP.get(loop)
    if found is None:
        found = _PER_LOOP[loop] = RxWatch(loop)
    return found
