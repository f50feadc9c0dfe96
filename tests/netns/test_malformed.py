"""Malformed VRRP traffic from the client: every packet is counted by reason and dropped.

Each crafted packet carries priority 254, so any packet that got through
would make the master (150) step down. The last step sends a *valid* one
the same way and watches it do exactly that: the positive control that
proves the crafted packets reach the agents at all.
"""

from __future__ import annotations

from collections import Counter

from keepvip_harness.agentlab import INTERVAL, MARGIN, Agents
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

DROPPED = "keepvip_vrrp_packets_dropped_total"
COUNT = 5
KINDS = {
    "short": "malformed",
    "garbage": "malformed",
    "ttl": "ttl",
    "checksum": "checksum",
    "vrid": "unknown_vrid",
    "v2": "version",
    "version": "version",
}
NODES = (1, 2, 3)


def test_malformed_packets_are_counted_and_change_nothing(lab: Lab, agents: Agents) -> None:
    agents.start_all(virtualip(priorities={"n1": 150, "n2": 120, "n3": 50}, preempt=True))
    agents.settle(master=1, address=VIP4)

    def drops(i: int) -> dict[str, float]:
        m = agents.metrics(i)
        return {r: m.get(DROPPED, interface="eth0", reason=r) for r in set(KINDS.values())}

    def transitions(i: int) -> float:
        return agents.metrics(i).get("keepvip_vrrp_transitions_total", vip="web")

    before = {i: drops(i) for i in NODES}
    moves = {i: transitions(i) for i in NODES}
    for kind in KINDS:
        agents.wire(lab.client_ns, "send", kind, "--count", str(COUNT))
    expected = {reason: COUNT * n for reason, n in Counter(KINDS.values()).items()}

    def counted(i: int) -> bool:
        now = drops(i)
        return all(now[r] - before[i][r] == expected[r] for r in expected)

    for i in NODES:
        try:
            lab.wait_for(lambda i=i: counted(i), MARGIN)
        except TimeoutError:
            delta = {r: drops(i)[r] - before[i][r] for r in expected}
            raise AssertionError(f"n{i} counted {delta}, expected {dict(expected)}") from None
    for i in NODES:
        agents.assert_running(i)
        assert transitions(i) == moves[i], f"n{i} changed state"
    assert agents.state(1) == "Master" and agents.state(2) == agents.state(3) == "Backup"
    assert lab.holders(VIP4) == [1]

    # Positive control: the same path with a valid advert does move n1.
    agents.wire(lab.client_ns, "send", "valid", "--count", "1")
    n1 = agents.wait_state(1, "Backup", MARGIN)
    assert n1["master"] == str(lab.client_v4)
    assert not lab.has_address(1, VIP4)
    # The fake master falls silent: the real nodes elect n1 again after master-down.
    agents.wait_state(1, "Master", 4 * INTERVAL + MARGIN)
