"""authHMAC in front of a runner: refused adverts are counted and dropped, the master stays master.

The runner runs on fake loop time (its election) with its key file on disk;
the adverts it hears are signed by a second :class:`AdvertAuth` holding the
same (or other) keys, the way a peer agent would sign them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

from keepvip_agent.kube.api import ApiError
from keepvip_agent.kube.secretkeys import POLL, SecretKeys
from keepvip_agent.runtime.vrrp_socket import Receiver
from keepvip_agent.vrrp.authstate import AdvertAuth, AuthSettings, Keyring
from keepvip_agent.vrrp.packet import VRRP_GROUP_V4, Advertisement, DropReason, finish, unsummed
from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import HIGHER, OURS, Rig, advert, datagram, run, virtualip

KEY1 = bytes(range(32))
KEY2 = bytes(range(50, 82))


def _keyfile(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return str(path)


def _peer(keys: dict[int, bytes], active: int) -> AdvertAuth:
    return AdvertAuth(3, 51, AuthSettings(), Keyring(keys, active))


def _signed(peer: AdvertAuth, priority: int, source: object = HIGHER) -> Advertisement:
    adv = advert(priority)
    pdu = unsummed(adv, HIGHER)
    trailer = peer.seal(pdu, HIGHER, time.time())
    return Advertisement(3, 51, priority, 100, adv.addresses, trailer=trailer, pdu=pdu)


def _rig(tmp_path: Path, *lines: str) -> Rig:
    path = _keyfile(tmp_path / "web.keys", *lines)
    rig = Rig(virtualip(authHMAC={"keyFile": path}))
    rig.runner.watch_key_file(path)
    return rig


def test_forged_replayed_unsigned_and_wrong_key_adverts_are_dropped_and_the_master_stays(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        rig = _rig(tmp_path, f"key 1 hex:{KEY1.hex()}")
        await rig.elected()
        good = _signed(_peer({1: KEY1}, 1), 200)
        pdu = good.pdu[:2] + bytes([255]) + good.pdu[3:]  # priority 200 -> 255 on the wire
        forged = Advertisement(3, 51, 255, 100, good.addresses, trailer=good.trailer, pdu=pdu)
        wrong_key = _signed(_peer({1: KEY2}, 1), 200)
        unknown_id = _signed(_peer({9: KEY1}, 9), 200)
        for adv in (forged, wrong_key, unknown_id, advert(250)):
            for _ in range(5):
                rig.hear(adv, HIGHER)
                await asyncio.sleep(0.2)
        assert rig.runner.state is State.MASTER
        assert rig.runner.last_heard == {}
        # a genuine advert from a lower priority is heard; the same bytes again are a replay
        low = _signed(_peer({1: KEY1}, 1), 50)
        rig.hear(low, HIGHER)
        rig.hear(low, HIGHER)
        assert set(rig.runner.last_heard) == {HIGHER}
        assert rig.runner.state is State.MASTER
        assert dict(rig.runner.auth_drops) == {
            "auth_bad_hmac": 10,
            "auth_unknown_key": 5,
            "auth_missing": 5,
            "auth_replay": 1,
        }
        assert [r for r, _ in rig.sock.drops].count(DropReason.AUTH_BAD_HMAC) == 10
        snap = rig.runner.snapshot()["authHMAC"]
        assert snap["keyIDs"] == [1] and snap["dropped"]["auth_replay"] == 1
        assert len(rig.records) == 2  # initialize -> backup -> master, nothing since

    run(main)


def test_the_receiver_caches_a_signed_adverts_pdu_and_hands_on_each_trailer(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        rig = _rig(tmp_path, f"key 1 hex:{KEY1.hex()}")
        await rig.elected()
        drops: list[DropReason] = []
        rx = Receiver("eth0", drops.append)  # the port's socket, less the socket
        rx.handlers[51] = rig.runner
        peer = _peer({1: KEY1}, 1)
        pdu = unsummed(advert(50), HIGHER)
        first, second = (
            finish(pdu, HIGHER, VRRP_GROUP_V4, peer.seal(pdu, HIGHER, time.time()))
            for _ in range(2)
        )
        rx.ipv4(datagram(first, HIGHER))
        rx.ipv4(datagram(second, HIGHER))  # the cached PDU, its own trailer: heard too
        rx.ipv4(datagram(second, HIGHER))  # the same bytes again: a replay
        forged = second[:-1] + bytes([second[-1] ^ 1])
        rx.ipv4(datagram(forged, HIGHER))
        assert drops == []  # the trailers are judged by the instance, which counts there
        assert [r for r, _ in rig.sock.drops] == [DropReason.AUTH_REPLAY, DropReason.AUTH_BAD_HMAC]
        assert set(rig.runner.last_heard) == {HIGHER}
        assert len(rx._decoded) == 1  # one PDU, decoded once

    run(main)


def test_what_we_send_is_signed_with_the_active_key(tmp_path: Path) -> None:
    async def main() -> None:
        rig = _rig(tmp_path, f"key 1 hex:{KEY1.hex()}", f"key 2 hex:{KEY2.hex()}", "active_key 2")
        await rig.elected()
        receiver = _peer({2: KEY2}, 2)
        sent = [adv for _, adv, _ in rig.sock.sent]
        assert sent and all(len(adv.trailer) == 28 and adv.trailer[1] == 2 for adv in sent)
        for adv in sent:
            receiver.check(adv.pdu, adv.trailer, OURS, time.time())  # raises if not

    run(main)


def test_without_keys_the_instance_is_faulted_and_never_master(tmp_path: Path) -> None:
    async def main() -> None:
        rig = Rig(virtualip(authHMAC={"keyFile": str(tmp_path / "missing.keys")}))
        rig.runner.watch_key_file(str(tmp_path / "missing.keys"))
        await rig.start()
        await asyncio.sleep(10)
        assert rig.runner.state is State.FAULT
        (fault,) = rig.runner.faults
        assert fault.startswith("authHMAC keys: cannot read key file ")
        assert rig.sock.sent == []

    run(main)


def test_rotation_in_the_file_keeps_the_master_and_retires_the_old_key_after_grace(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        path = _keyfile(tmp_path / "web.keys", f"key 1 hex:{KEY1.hex()}")
        # A grace of 8 s (switch after 4 s): room for a loaded machine's late polls, where
        # 4 s failed about 1 run in 4 under load.
        rig = Rig(virtualip(authHMAC={"keyFile": path, "keyGrace": "8s"}))
        rig.runner.watch_key_file(path)
        await rig.elected()
        before = len(rig.records)
        _keyfile(tmp_path / "web.keys", f"key 2 hex:{KEY2.hex()}")
        for _ in range(30):  # the file is polled every second (loop time)
            await asyncio.sleep(0.1)
            if rig.runner.snapshot()["authHMAC"]["activeKeyID"] == 2:
                break
        assert rig.runner.snapshot()["authHMAC"]["activeKeyID"] == 2
        assert rig.sock.sent[-1][1].trailer[1] == 1  # still key 1: peers may not have key 2 yet
        wall = asyncio.get_running_loop().run_in_executor
        await wall(None, time.sleep, 4.0)  # the switch delay (half the grace) is wall time
        for _ in range(30):
            await asyncio.sleep(0.1)
            if rig.sock.sent[-1][1].trailer[1] == 2:
                break
        assert rig.sock.sent[-1][1].trailer[1] == 2
        old = _peer({1: KEY1}, 1)
        rig.hear(_signed(old, 50), HIGHER)  # inside the grace (wall clock): accepted
        assert set(rig.runner.last_heard) == {HIGHER}
        # Past the grace the old key is refused. Wall time on a loaded machine: look
        # until it is, for at most the grace again (a key never retired fails here).
        for _ in range(32):
            await wall(None, time.sleep, 0.25)
            rig.hear(_signed(old, 50), HIGHER)
            if rig.runner.auth_drops:
                break
        assert rig.runner.auth_drops == {"auth_unknown_key": 1}
        assert len(rig.records) == before and rig.runner.state is State.MASTER

    run(main)


class _FakeKube:
    """The node agent's ``Kube`` as SecretKeys uses it: one GET by path."""

    def __init__(self) -> None:
        self.secret: dict[str, object] | None = None
        self.status = 404
        self.reads = 0

    async def call(self, method: str, path: str) -> object:
        assert (method, path) == ("GET", "/api/v1/namespaces/keepvip-system/secrets/web-keys")
        self.reads += 1
        if self.secret is None:
            raise ApiError(
                self.status, {"reason": "NotFound" if self.status == 404 else "Forbidden"}
            )
        return self.secret


def test_secret_keys_are_read_by_name_and_delivered_on_change_only() -> None:
    async def main() -> None:
        kube = _FakeKube()
        got: list[tuple[Keyring | None, str | None]] = []
        keys = SecretKeys(kube, "keepvip-system")  # type: ignore[arg-type]
        keys.subscribe("web-keys", 1, lambda ring, problem: got.append((ring, problem)))
        await asyncio.sleep(0.1)
        assert got == [
            (None, "Secret keepvip-system/web-keys (authHMAC.secretName) does not exist")
        ]
        await asyncio.sleep(POLL)  # the same answer again: nothing new delivered
        assert len(got) == 1 and kube.reads == 2
        text = f"key 1 hex:{KEY1.hex()}\n".encode()
        kube.secret = {"data": {"keys": base64.b64encode(text).decode()}}
        await asyncio.sleep(POLL)
        assert got[-1] == (Keyring({1: KEY1}, 1), None)
        late: list[object] = []
        keys.subscribe("web-keys", 2, lambda ring, problem: late.append(ring))
        assert late == [Keyring({1: KEY1}, 1)]  # a new subscriber gets the known keys at once
        kube.secret, kube.status = None, 403
        await asyncio.sleep(POLL)
        assert (
            got[-1][1] is not None and "may not read Secret keepvip-system/web-keys" in got[-1][1]
        )
        keys.unsubscribe("web-keys", 1)
        keys.unsubscribe("web-keys", 2)
        reads = kube.reads
        await asyncio.sleep(3 * POLL)
        assert kube.reads == reads  # nobody names it: no more reads
        keys.close()

    run(main)
