"""A backup hearing its master's same bytes every interval: the short path, seen from outside.

The datagrams go through a :class:`Receiver` (the port's socket, less the
socket), so the decode cache hands the runner the same advertisement object
each time and the short path is taken; every assertion is about what the
runner shows (state, timer, last_heard, metrics), which must be what the full
rules give.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv6Address

import pytest
from prometheus_client import generate_latest

from keepvip_agent.runtime.vrrp_socket import IPV6_HOPLIMIT, IPV6_PKTINFO, Receiver
from keepvip_agent.vrrp.packet import (
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    Advertisement,
    DropReason,
    encode,
)
from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import (
    EPS,
    HIGHER,
    LOWER,
    MDI_100,
    OURS,
    Rig,
    advert,
    datagram,
    now,
    run,
    virtualip,
)


def receiver(rig: Rig) -> tuple[Receiver, list[DropReason]]:
    drops: list[DropReason] = []
    rx = Receiver("eth0", drops.append)
    rx.handlers[51] = rig.runner
    rx.local = {OURS}
    return rx, drops


def sample(rig: Rig, name: str) -> float:
    text = generate_latest(rig.runner._metrics._m.registry).decode()
    line = next(x for x in text.splitlines() if x.startswith(f'{name}{{vip="web"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_the_same_bytes_every_interval_keep_a_backup_and_count() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        rx, drops = receiver(rig)
        packet = datagram(encode(advert(150), HIGHER, VRRP_GROUP_V4), HIGHER)
        for _ in range(20):
            rx.ipv4(packet)
            heard = now()
            await asyncio.sleep(1.0)
        assert rig.runner.state is State.BACKUP and not drops
        assert dict(rig.runner.last_heard) == pytest.approx({HIGHER: heard}, abs=EPS)
        # Counted when collected (a scrape), every one of them.
        assert sample(rig, "keepvip_vrrp_adverts_received_total") == 20
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER
        assert rig.master_at() == pytest.approx(heard + MDI_100, abs=EPS)
        await asyncio.sleep(2.0)
        assert sample(rig, "keepvip_vrrp_adverts_sent_total") == len(rig.sock.sent) == 4

    run(main)


def test_a_higher_own_priority_with_preempt_ends_the_short_path() -> None:
    async def main() -> None:
        rig = Rig(virtualip(preempt=True, priority=100))
        await rig.start()
        rx, _ = receiver(rig)
        packet = datagram(encode(advert(150), HIGHER, VRRP_GROUP_V4), HIGHER)
        for _ in range(3):
            rx.ipv4(packet)
            await asyncio.sleep(1.0)
        rig.runner.health.set_configured(200)  # above the master now: its adverts are discarded
        changed = now()
        for _ in range(6):
            rx.ipv4(packet)
            await asyncio.sleep(1.0)
        assert rig.runner.state is State.MASTER
        # The timer was last reset by the advert before the change (or at the change).
        assert rig.master_at() <= changed + 3 + 56 / 256 + EPS

    run(main)


def test_peers_that_no_longer_include_the_master_end_the_short_path() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        rx, _ = receiver(rig)
        packet = datagram(encode(advert(150), HIGHER, VRRP_GROUP_V4), HIGHER)
        for _ in range(3):
            rx.ipv4(packet)
            await asyncio.sleep(1.0)
        rig.runner.set_peers(frozenset({LOWER}))
        for _ in range(6):
            rx.ipv4(packet)
            await asyncio.sleep(1.0)
        assert [r for r, _ in rig.sock.drops] == [DropReason.PEER] * 6
        assert rig.runner.state is State.MASTER

    run(main)


def test_our_own_address_is_never_served_from_the_cache() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        rx, _ = receiver(rig)
        rx.local = set()
        packet = datagram(encode(advert(150), HIGHER, VRRP_GROUP_V4), HIGHER)
        rx.ipv4(packet)
        assert set(rig.runner.last_heard) == {HIGHER}
        rig.runner._last_heard.clear()
        rx.local = {HIGHER}  # the port found it is ours (a renumbered node)
        rx.ipv4(packet)
        assert dict(rig.runner.last_heard) == {}

    run(main)


class Recorder:
    def __init__(self) -> None:
        self.heard: list[tuple[object, object]] = []

    def on_advertisement(self, adv: object, source: object) -> None:
        self.heard.append((adv, source))


def test_ipv6_repeats_are_served_from_the_cache_and_checked_like_the_first() -> None:
    src = IPv6Address("fe80::9")
    adv = Advertisement(3, 51, 150, 100, (IPv6Address("2001:db8::50"),), 0, b"")
    payload = encode(adv, src, VRRP_GROUP_V6)

    def anc(hops: int) -> list[tuple[int, int, bytes]]:
        return [
            (socket.IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("@i", hops)),
            (socket.IPPROTO_IPV6, IPV6_PKTINFO, VRRP_GROUP_V6.packed + struct.pack("@I", 2)),
        ]

    drops: list[DropReason] = []
    rx = Receiver("eth0", drops.append)
    handler = Recorder()
    rx.handlers[51] = handler  # type: ignore[assignment]
    for _ in range(3):
        rx.ipv6(payload, anc(255), ("fe80::9%eth0", 0, 0, 2))
    assert [(a.priority, s) for a, s in handler.heard] == [(150, src)] * 3  # type: ignore[attr-defined]
    assert handler.heard[1][0] is handler.heard[2][0]  # the cached object
    rx.ipv6(payload, anc(64), ("fe80::9%eth0", 0, 0, 2))
    assert drops == [DropReason.TTL] and len(handler.heard) == 3
    rx.local = {src}
    rx.ipv6(payload, anc(255), ("fe80::9%eth0", 0, 0, 2))
    assert len(handler.heard) == 3  # our own advertisement now
