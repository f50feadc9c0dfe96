"""The receive thread (runtime/_rxwatch.c) on real sockets, without privileges.

UDP sockets on loopback stand in for the raw VRRP sockets: the thread reads
any datagram socket the same way (recvmmsg), and for IPv4 it looks only at
the bytes, so a payload shaped like an IPv4 header with TTL 255 is what a raw
socket would return. The IPv6 case gets its sender, hop limit and destination
from the kernel, as on a raw socket. The extension must be built: CI builds it
with `make deps`, so a missing module fails here rather than skipping.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from keepvip_agent.runtime import _rxwatch, rxwatch

IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)


def v4_datagram(vrid: int, priority: int, ttl: int = 255) -> bytes:
    """An IPv4 header (20 bytes, TTL ``ttl``) and an 8-byte VRRP-shaped payload."""
    header = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, ttl, 112, 0, 0, 192, 0, 2, 9, 224, 0, 0, 18])
    return header + bytes([0x31, vrid, priority, 1, 0, 100, 0, 0])


@contextmanager
def udp_pair(family: int = socket.AF_INET) -> Iterator[tuple[socket.socket, socket.socket]]:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    rx, tx = socket.socket(family, socket.SOCK_DGRAM), socket.socket(family, socket.SOCK_DGRAM)
    try:
        rx.bind((host, 0))
        rx.setblocking(False)
        if family == socket.AF_INET6:
            rx.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            rx.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        tx.connect(rx.getsockname())
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def events(engine: Any, want: int = 1, timeout: float = 2.0) -> list[tuple[Any, ...]]:
    """Wait until the engine signals, then take what it has (at least ``want`` events)."""
    got: list[tuple[Any, ...]] = []
    end = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < end:
        select.select([engine.fileno()], [], [], max(0.0, end - time.monotonic()))
        got += engine.take()
    return got


def quiet(engine: Any, wait: float = 0.05) -> list[tuple[Any, ...]]:
    time.sleep(wait)
    return list(engine.take())


def test_other_datagrams_reach_python_and_expected_repeats_do_not() -> None:
    engine = _rxwatch.Engine()
    with udp_pair() as (rx, tx):
        try:
            engine.add_socket(rx.fileno(), 4)
            first = v4_datagram(51, 120)
            tx.send(first)
            (ev,) = events(engine)
            assert ev[0] == _rxwatch.PACKET and ev[1] == rx.fileno() and ev[2] == first
            assert ev[3] == first[12:]  # the key: source, destination and payload
            since = time.monotonic()
            assert engine.expect(0, rx.fileno(), 51, ev[3], since, 5.0)
            for _ in range(5):
                tx.send(first)
            other = v4_datagram(51, 130)  # the same VRID, another priority: not a repeat
            tx.send(other)
            tx.send(v4_datagram(52, 120))
            tx.send(v4_datagram(51, 120, ttl=64))  # no key: never a repeat
            got = events(engine, want=3)
            assert [e[2] for e in got] == [other, v4_datagram(52, 120), v4_datagram(51, 120, 64)]
            assert got[2][3] is None
            peeked = engine.peek(0)
            assert peeked is not None
            count, last = peeked
            assert count == 5 and last is not None and since < last <= time.monotonic()
            assert engine.peek(0) == (0, last)  # counts since the last look
            assert engine.stats()["matched"] == 5
            tx.send(first)
            assert quiet(engine) == []
            withdrawn = engine.withdraw(0)
            assert withdrawn is not None and withdrawn[0] == 1
            tx.send(first)  # withdrawn: Python hears it again
            assert [e[2] for e in events(engine)] == [first]
            assert engine.withdraw(0) is None
        finally:
            engine.close()


def test_an_expectation_ends_when_its_repeats_stop_and_not_before() -> None:
    engine = _rxwatch.Engine()
    with udp_pair() as (rx, tx):
        try:
            engine.add_socket(rx.fileno(), 4)
            data = v4_datagram(7, 100)
            start = time.monotonic()
            engine.expect(3, rx.fileno(), 7, data[12:], start, 0.15)
            # Each repeat moves the deadline: 0.3 s of repeats every 50 ms, no end.
            for _ in range(6):
                tx.send(data)
                time.sleep(0.05)
            assert quiet(engine, 0.0) == []
            (ev,) = events(engine)
            ended = time.monotonic()
            kind, slot, count, last = ev
            assert (kind, slot, count) == (_rxwatch.EXPIRED, 3, 6)
            assert last is not None and 0.14 <= ended - last <= 0.15 + 0.1
            assert engine.withdraw(3) is None  # already ended and taken
        finally:
            engine.close()


def test_withdraw_takes_back_an_end_not_yet_taken_and_release_ends_them_all() -> None:
    engine = _rxwatch.Engine()
    with udp_pair() as (rx, tx):
        try:
            engine.add_socket(rx.fileno(), 4)
            data = v4_datagram(9, 100)
            engine.expect(1, rx.fileno(), 9, data[12:], time.monotonic(), 0.02)
            time.sleep(0.1)  # ended in the thread, waiting in its queue
            assert engine.withdraw(1) == (0, None)
            assert quiet(engine) == []  # the end was taken back with it
            engine.expect(2, rx.fileno(), 9, data[12:], time.monotonic(), 5.0)
            engine.expect(4, rx.fileno(), 10, v4_datagram(10, 1)[12:], time.monotonic(), 5.0)
            tx.send(data)
            time.sleep(0.05)
            engine.release(rx.fileno())
            got = sorted(events(engine, want=2))
            assert [(e[0], e[1], e[2]) for e in got] == [
                (_rxwatch.RELEASED, 2, 1),
                (_rxwatch.RELEASED, 4, 0),
            ]
            assert not engine.expect(5, 999, 9, data[12:], time.monotonic(), 1.0)  # unknown fd
        finally:
            engine.close()


def test_ipv6_datagrams_carry_sender_hop_limit_and_destination() -> None:
    engine = _rxwatch.Engine()
    with udp_pair(socket.AF_INET6) as (rx, tx):
        try:
            engine.add_socket(rx.fileno(), 6)
            payload = bytes([0x31, 51, 120, 1, 0, 100, 0, 0])
            tx.send(payload)
            (ev,) = events(engine)
            kind, fd, data, key, src, hops, dst = ev
            loopback = socket.inet_pton(socket.AF_INET6, "::1")
            assert (kind, fd, data, src, hops, dst) == (
                0,
                rx.fileno(),
                payload,
                loopback,
                255,
                loopback,
            )
            assert key == loopback + loopback + b"\xff" + payload
            engine.expect(0, rx.fileno(), 51, key, time.monotonic(), 5.0)
            tx.send(payload)
            assert quiet(engine) == []
            assert (engine.peek(0) or (0, None))[0] == 1
        finally:
            engine.close()


def test_the_wrapper_gives_each_end_to_its_owner_once_even_when_withdrawn_in_the_batch() -> None:
    class Owner:
        def __init__(self) -> None:
            self.ended: list[tuple[bool, rxwatch.Counts]] = []

        def expectation_ended(self, expired: bool, counts: rxwatch.Counts) -> None:
            self.ended.append((expired, counts))

    class Sink:
        def __init__(self) -> None:
            self.got: list[bytes] = []

        def deliver(
            self, data: bytes, key: bytes | None, src: bytes | None, hops: int, dst: bytes | None
        ) -> None:
            self.got.append(data)
            if data == v4_datagram(1, 50):  # handled before the end that follows it
                watch.withdraw(slots["b"])

    async def main() -> None:
        with udp_pair() as (rx, tx):
            sink.got.clear()
            watch.add_socket(rx.fileno(), 4, sink)
            now = time.monotonic()
            slot_a = watch.expect(a, rx.fileno(), 7, v4_datagram(7, 9)[12:], now, 0.05)
            slot_b_found = watch.expect(b, rx.fileno(), 8, v4_datagram(8, 9)[12:], now, 0.05)
            assert slot_a is not None and slot_b_found is not None and slot_a != slot_b_found
            slots["b"] = slot_b_found
            tx.send(v4_datagram(7, 9))
            time.sleep(0.02)  # noqa: ASYNC251 (the loop must not run: one batch)
            tx.send(v4_datagram(1, 50))
            time.sleep(0.1)  # noqa: ASYNC251 (both end in the thread, after the datagram)
            await asyncio.sleep(0.05)
            assert sink.got == [v4_datagram(1, 50)]
            assert len(a.ended) == 1 and a.ended[0][0] is True and a.ended[0][1][0] == 1
            assert b.ended == []  # withdrawn by the datagram's handler first
            watch.remove_socket(rx.fileno())

    a, b, sink = Owner(), Owner(), Sink()
    slots = {"b": -1}
    loop = asyncio.new_event_loop()
    try:
        watch = rxwatch.RxWatch(loop)
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_a_schedule_of_sends_keeps_its_cadence_and_counts_what_failed() -> None:
    """UDP to port 0 fails (the raw socket's port): the sends are counted as errors, which
    is what this test can see without privileges; the netns tier sees them arrive."""
    engine = _rxwatch.Engine()
    with udp_pair() as (rx, _tx):
        try:
            engine.add_socket(rx.fileno(), 4)
            first = time.monotonic() + 0.05
            src, dst = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")
            assert engine.send_every(9, rx.fileno(), 4, 1, src, [(b"x" * 8, dst)], 0.05, first)
            time.sleep(0.33)
            errors = engine.send_errors(9)
            assert errors is not None and errors[0] >= 5 and errors[1] != 0
            count, last = engine.withdraw(9) or (0, None)
            assert 5 <= count <= 7 and last is not None
            steps = (last - first) / 0.05
            assert abs(steps - round(steps)) < 1e-6 and round(steps) == count - 1
            assert engine.send_errors(9) is None and quiet(engine) == []
            assert not engine.send_every(9, 999, 4, 1, src, [(b"x", dst)], 1.0, first)
        finally:
            engine.close()


def test_closing_the_last_socket_hands_every_timer_back_at_once() -> None:
    """A link that goes away closes its socket; if it was the last, the thread stops, and
    every instance it kept a timer for must have that timer back before it does."""

    class Owner:
        def __init__(self) -> None:
            self.ended: list[tuple[bool, rxwatch.Counts]] = []

        def expectation_ended(self, expired: bool, counts: rxwatch.Counts) -> None:
            self.ended.append((expired, counts))

    class Sink:
        def deliver(
            self, data: bytes, key: bytes | None, src: bytes | None, hops: int, dst: bytes | None
        ) -> None:
            pass

    owner = Owner()
    loop = asyncio.new_event_loop()
    try:
        watch = rxwatch.RxWatch(loop)
        with udp_pair() as (rx, tx):
            watch.add_socket(rx.fileno(), 4, Sink())
            data = v4_datagram(5, 100)
            assert (
                watch.expect(owner, rx.fileno(), 5, data[12:], time.monotonic(), 60.0) is not None
            )
            tx.send(data)
            time.sleep(0.05)
            watch.remove_socket(rx.fileno())
            assert len(owner.ended) == 1 and owner.ended[0][0] is False
            assert owner.ended[0][1][0] == 1  # the repeat it absorbed comes back with it
    finally:
        loop.close()


def test_a_flood_python_cannot_keep_up_with_is_bounded_and_counted() -> None:
    engine = _rxwatch.Engine()
    with udp_pair() as (rx, tx):
        try:
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            engine.add_socket(rx.fileno(), 4)
            engine.expect(0, rx.fileno(), 1, v4_datagram(1, 1)[12:], time.monotonic(), 0.05)
            for k in range(8000):  # in chunks: the kernel's socket buffer must not be what drops
                tx.send(v4_datagram(2, k % 250))
                if k % 200 == 199:
                    time.sleep(0.002)
            time.sleep(0.3)  # the expectation's deadline passes meanwhile: its end is kept
            got = engine.take()
            packets = [e for e in got if e[0] == _rxwatch.PACKET]
            # 4096 events at most wait for Python, and an end is never dropped: it took a
            # place if it came before the queue filled, or went past the bound after.
            assert len(packets) in (4095, 4096) and len(got) in (4096, 4097)
            assert [e[:3] for e in got if e[0] != _rxwatch.PACKET] == [(_rxwatch.EXPIRED, 0, 0)]
            dropped = engine.stats()["dropped"]
            assert 8000 - 4096 - 200 <= dropped <= 8000 - len(packets)
        finally:
            engine.close()
