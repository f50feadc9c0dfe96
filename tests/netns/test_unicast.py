"""Unicast mode: adverts go to the listed peers only, and adverts from anyone else are dropped."""

from __future__ import annotations

import json
from typing import Any

from keepvip_harness.agentlab import MARGIN, Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120, "n3": 50}
DROPPED = "keepvip_vrrp_packets_dropped_total"


def unicast_doc(lab: Lab, i: int) -> dict[str, Any]:
    peers = [str(lab.node_v4(j)) for j in range(1, lab.nodes + 1) if j != i]
    return virtualip(priorities=PRIORITIES, preempt=True, unicastPeers=peers)


def test_unicast_elects_fails_over_and_drops_non_peers(lab: Lab, agents: Agents) -> None:
    for i in (1, 2, 3):
        agents.start(i, unicast_doc(lab, i))
    for i in (1, 2, 3):
        agents.wait_joined(i)
    agents.settle(master=1, address=VIP4)

    # Nothing goes to the multicast group: the client (no peer) sees no VRRP
    # at all, where multicast mode floods it 10 adverts in this second.
    seen = [json.loads(x) for x in agents.wire(lab.client_ns, "sniff", "1").splitlines()]
    assert seen == []
    assert agents.metrics(2).get("keepvip_vrrp_adverts_received_total", vip="web") > 0

    # A valid advert that would win the election (priority 254), from the
    # client, which is not a peer: to the group and straight to n1.
    before = {i: agents.metrics(i).get(DROPPED, reason="peer") for i in (1, 2, 3)}
    agents.wire(lab.client_ns, "send", "valid", "--count", "5")
    agents.wire(lab.client_ns, "send", "valid", "--count", "5", "--dst", str(lab.node_v4(1)))
    expected = {1: 10, 2: 5, 3: 5}
    lab.wait_for(
        lambda: all(
            agents.metrics(i).get(DROPPED, reason="peer") - before[i] == expected[i]
            for i in (1, 2, 3)
        ),
        MARGIN,
    )
    assert agents.state(1) == "Master" and lab.holders(VIP4) == [1]
    assert agents.instance(2)["master"] == str(lab.node_v4(1))

    lab.cut(1)
    agents.wait_state(2, "Master", takeover(120))
    assert 2 in lab.holders(VIP4) and 3 not in lab.holders(VIP4)
    assert agents.state(3) == "Backup"
    lab.wait_for(
        lambda: agents.instance(3)["master"] == str(lab.node_v4(2)),
        MARGIN,
    )
