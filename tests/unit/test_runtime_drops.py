"""Malformed or unwanted packets in front of a runner: counted by reason, dropped, the loop goes on."""

from __future__ import annotations

import asyncio

import pytest

from keepvip_agent.runtime.vrrp_socket import Receiver
from keepvip_agent.vrrp.packet import (
    VRRP_GROUP_V4,
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
    VIP,
    Rig,
    advert,
    datagram,
    run,
    virtualip,
)


def test_an_advertisement_of_the_wrong_version_is_counted_and_dropped() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        t0 = await rig.start()
        for _ in range(6):
            rig.hear(advert(200, version=2), HIGHER)
            await asyncio.sleep(1.0)
        assert [r for r, _ in rig.sock.drops] == [DropReason.VERSION] * 6
        # Dropped, not heard: the master-down timer from startup ran out regardless.
        assert rig.runner.state is State.MASTER
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=EPS)

    run(main)


def test_malformed_datagrams_are_counted_and_dropped_and_the_runner_goes_on() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        drops: list[DropReason] = []
        rx = Receiver("eth0", drops.append)  # the port's socket, less the socket
        rx.handlers[51] = rig.runner
        rx.local = {OURS}
        good = encode(advert(150), HIGHER, VRRP_GROUP_V4)
        other_vrid = encode(
            Advertisement(3, 52, 150, 100, (VIP.ip,), 0, b""), HIGHER, VRRP_GROUP_V4
        )
        rx.ipv4(b"\x45\x00\x00")
        rx.ipv4(datagram(good[:6] + bytes([good[6] ^ 0xFF]) + good[7:], HIGHER))
        rx.ipv4(datagram(good, HIGHER, ttl=64))
        rx.ipv4(datagram(good[:5], HIGHER))
        rx.ipv4(datagram(other_vrid, HIGHER))
        rx.ipv4(datagram(encode(advert(150), OURS, VRRP_GROUP_V4), OURS))  # our own: not a drop
        assert drops == [
            DropReason.MALFORMED,
            DropReason.CHECKSUM,
            DropReason.TTL,
            DropReason.MALFORMED,
            DropReason.UNKNOWN_VRID,
        ]
        assert rig.runner.last_heard == {} and rig.runner.state is State.BACKUP
        rx.ipv4(datagram(good, HIGHER))
        rx.ipv4(datagram(good, HIGHER))  # the same bytes again (the decoded cache): heard too
        assert set(rig.runner.last_heard) == {HIGHER}
        assert len(drops) == 5

    run(main)


def test_an_advertisement_from_a_stranger_is_dropped_when_peers_are_known() -> None:
    async def main() -> None:
        rig = Rig(virtualip(unicastPeers=[str(LOWER)]))
        t0 = await rig.start()
        for _ in range(6):
            rig.hear(advert(200), HIGHER)
            await asyncio.sleep(1.0)
        assert [r for r, _ in rig.sock.drops] == [DropReason.PEER] * 6
        assert rig.runner.last_heard == {}
        assert rig.master_at() == pytest.approx(t0 + MDI_100, abs=EPS)
        # Peers found by other means (Kubernetes) do not widen a static list.
        rig.runner.set_peers(frozenset({HIGHER}))
        rig.hear(advert(200), HIGHER)
        assert len(rig.sock.drops) == 7 and rig.runner.state is State.MASTER
        rig.hear(advert(200), LOWER)
        assert set(rig.runner.last_heard) == {LOWER}
        assert rig.runner.state is State.BACKUP

    run(main)
