"""Authenticated adverts (authHMAC) on a real bridge: only adverts signed with a current key count.

n1 150, n2 120, n3 50 with ``preempt``, so any advert at priority 254 that got
through would take the VIP from n1. The client crafts every advert with
``vrrpwire.py`` (its own HMAC, apart from ``keepvip_agent.vrrp``); a correct
signed one is the positive control that shows the path reaches the agents.
The agents read one key file; a rotation rewrites it, as an admin would.
"""

from __future__ import annotations

import json
import time
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.agentlab import INTERVAL, MARGIN, STARTUP, Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, VIP6, Lab

Address = IPv4Address | IPv6Address
PRIORITIES = {"n1": 150, "n2": 120, "n3": 50}
KEY1 = bytes(range(32)).hex()
KEY2 = bytes(range(64, 112)).hex()
DROPPED = "keepvip_vrrp_auth_dropped_total"
REASONS = ("auth_missing", "auth_bad_hmac", "auth_replay", "auth_unknown_key", "auth_stale")
COUNT = 5
GRACE = 3.0


def _keys(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic, as an admin's tooling should


def _start(lab: Lab, agents: Agents, nodes: int = 3, address: Address = VIP4, **spec: Any) -> Path:
    keyfile = agents.workdir / "web.keys"
    _keys(keyfile, f"key 1 hex:{KEY1}\n")
    auth = {"keyFile": str(keyfile), "timeWindow": "30s", "keyGrace": f"{GRACE:g}s"}
    if address.version == 6:
        spec["addresses"] = (f"{address}/64",)
    agents.start_all(
        virtualip(priorities=PRIORITIES, preempt=True, authHMAC=auth, **spec),
        nodes=range(1, nodes + 1),
    )
    agents.settle(master=1, address=address, timeout=STARTUP + 5)
    return keyfile


def _drops(agents: Agents, i: int) -> dict[str, float]:
    m = agents.metrics(i)
    return {r: m.get(DROPPED, vip="web", reason=r) for r in REASONS}


def _transitions(agents: Agents, i: int) -> float:
    return agents.metrics(i).get("keepvip_vrrp_transitions_total", vip="web")


def _send(agents: Agents, lab: Lab, kind: str, *args: str, count: int = COUNT) -> None:
    agents.wire(lab.client_ns, "send", kind, "--count", str(count), *args)


def _wait_counted(
    agents: Agents, lab: Lab, before: dict[int, dict[str, float]], want: dict[str, int]
) -> None:
    for i, base in before.items():

        def counted(i: int = i, base: dict[str, float] = base) -> bool:
            now = _drops(agents, i)
            return all(now[r] - base[r] == want.get(r, 0) for r in REASONS)

        try:
            lab.wait_for(counted, MARGIN)
        except TimeoutError:
            got = {r: _drops(agents, i)[r] - base[r] for r in REASONS}
            raise AssertionError(f"n{i} counted {got}, expected {want}") from None


def _unchanged(agents: Agents, lab: Lab, moves: dict[int, float]) -> None:
    for i, n in moves.items():
        agents.assert_running(i)
        assert _transitions(agents, i) == n, f"n{i} changed state"
    assert agents.state(1) == "Master"
    assert lab.holders(VIP4) == [1]


def test_forged_unsigned_wrong_key_and_replayed_adverts_are_dropped_and_counted(
    lab: Lab, agents: Agents
) -> None:
    _start(lab, agents)
    nodes = (1, 2, 3)
    before = {i: _drops(agents, i) for i in nodes}
    moves = {i: _transitions(agents, i) for i in nodes}
    _send(agents, lab, "valid")  # unsigned
    _send(agents, lab, "forged", "--key", KEY1)
    _send(agents, lab, "signed", "--key", KEY2[:64])  # another key under id 1
    _send(agents, lab, "signed", "--key", KEY1, "--key-id", "7")
    _wait_counted(
        agents,
        lab,
        before,
        {"auth_missing": COUNT, "auth_bad_hmac": 2 * COUNT, "auth_unknown_key": COUNT},
    )
    _unchanged(agents, lab, moves)
    status = agents.instance(2)
    assert status is not None and status["authHMAC"]["dropped"]["auth_bad_hmac"] >= 2 * COUNT

    # Positive control: a correctly signed advert at 254 does move n1 ...
    stamp = f"{time.time():.3f}"
    _send(agents, lab, "signed", "--key", KEY1, "--seq", stamp, count=1)
    assert agents.wait_state(1, "Backup", MARGIN)["master"] == str(lab.client_v4)
    agents.wait_state(1, "Master", 4 * INTERVAL + MARGIN)  # the fake master fell silent
    agents.wait_holders([1], MARGIN, VIP4)

    # ... and the very same bytes again are a replay: dropped everywhere, nothing moves.
    before = {i: _drops(agents, i) for i in nodes}
    moves = {i: _transitions(agents, i) for i in nodes}
    _send(agents, lab, "signed", "--key", KEY1, "--seq", stamp)
    _wait_counted(agents, lab, before, {"auth_replay": COUNT})
    _unchanged(agents, lab, moves)


def test_key_rotation_moves_nothing_and_the_old_key_is_refused_after_the_grace(
    lab: Lab, agents: Agents
) -> None:
    keyfile = _start(lab, agents)
    nodes = (1, 2, 3)
    before = {i: _drops(agents, i) for i in nodes}
    moves = {i: _transitions(agents, i) for i in nodes}

    # One step: key 1 out, key 2 in (every node reads it within a second).
    _keys(keyfile, f"key 2 hex:{KEY2}\n")
    for i in nodes:
        lab.wait_for(
            lambda i=i: agents.instance(i)["authHMAC"]["activeKeyID"] == 2,  # type: ignore[index]
            2 * MARGIN,
        )
    time.sleep(GRACE + 0.3)  # past every node's switch delay and grace
    _unchanged(agents, lab, moves)
    assert all(_drops(agents, i) == before[i] for i in nodes), "a node refused a peer's advert"

    # The old key, past the grace: refused and counted, n1 stays master.
    _send(agents, lab, "signed", "--key", KEY1, "--key-id", "1")
    _wait_counted(agents, lab, before, {"auth_unknown_key": COUNT})
    _unchanged(agents, lab, moves)
    # The new key is what counts now (positive control).
    _send(agents, lab, "signed", "--key", KEY2, "--key-id", "2", count=1)
    agents.wait_state(1, "Backup", MARGIN)


@pytest.mark.nodes(2)
@pytest.mark.parametrize(
    ("address", "spec", "interval"),
    [(VIP4, {}, INTERVAL), (VIP6, {}, INTERVAL), (VIP4, {"version": 2, "interval": "1s"}, 1.0)],
    ids=["v3-ipv4", "v3-ipv6", "v2-ipv4"],
)
def test_two_agents_with_hmac_elect_and_fail_over(
    lab: Lab, agents: Agents, address: Address, spec: dict[str, Any], interval: float
) -> None:
    _start(lab, agents, nodes=2, address=address, **spec)
    # On the wire: n1's adverts carry the 28-byte trailer after the PDU (header, one
    # address, v2's 8 bytes of authentication data).
    seen = [json.loads(x) for x in agents.wire(lab.client_ns, "sniff", "1.5").splitlines()]
    pdu = 8 + (16 if address.version == 6 else 4) + (8 if spec.get("version") == 2 else 0)
    assert seen and {p["length"] for p in seen} == {pdu + 28}, seen
    assert _drops(agents, 2) == dict.fromkeys(REASONS, 0.0)
    received = agents.metrics(2).get("keepvip_vrrp_adverts_received_total", vip="web")
    assert received > 0
    agents.kill(1)
    agents.wait_state(2, "Master", takeover(120, interval))
    assert 2 in lab.holders(address)  # n1's copy expires with its lifetime (it was SIGKILLed)
    assert _drops(agents, 2) == dict.fromkeys(REASONS, 0.0)
