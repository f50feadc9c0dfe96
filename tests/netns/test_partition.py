"""A partition and its heal: one master afterwards, and the client's ARP cache follows it.

While n1 is cut off, n2 takes over and the client talks to the VIP on n2,
so the client's neighbour entry for the VIP holds n2's MAC. On heal, two
masters hear each other: the lower priority one steps down, and the
survivor must announce again (gratuitous ARP) or the client keeps sending
to a node that no longer holds the VIP (the stale ARP cache that keepalived
users report after a split brain).
"""

from __future__ import annotations

import time

from keepvip_harness.agentlab import INTERVAL, MARGIN, Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

ANNOUNCED = "keepvip_announcements_total"


def test_partition_heal_leaves_one_master_and_a_fresh_arp_entry(lab: Lab, agents: Agents) -> None:
    agents.start_responders()
    # A long take-over burst (10 frames over 0.9 s): the heal below falls inside
    # n2's burst, so the survivor has to out-announce a loser still announcing.
    announce = {"count": 10, "interval": "100ms"}
    doc = virtualip(priorities={"n1": 150, "n2": 120, "n3": 50}, preempt=True, announce=announce)
    agents.start_all(doc)
    agents.settle(master=1, address=VIP4)
    # n1's own take-over burst is over: whatever it announces from here on is a reaction.
    lab.wait_for(lambda: agents.metrics(1).get(ANNOUNCED, vip="web") >= 10, 1.0 + MARGIN)
    probe = agents.probe(VIP4)
    probe.wait_answer("n1", MARGIN)

    lab.cut(1)
    cut_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    probe.wait_answer("n2", takeover(120), since=cut_at)
    assert lab.client_neighbour(VIP4) == lab.mac(2)
    assert agents.state(1) == "Master"  # split brain while cut: each side has a master
    assert sorted(lab.holders(VIP4)) == [1, 2]
    # The client goes on talking to n2 until the heal: its entry for the VIP, n2's MAC,
    # is in use (the kernel would only re-probe it after delay_first_probe_time, 5 s).
    assert probe.answers(time.monotonic() - 0.2)[-1][1] == "n2"

    announced = agents.metrics(1).get(ANNOUNCED, vip="web")
    lab.heal(1)
    healed_at = time.monotonic()
    # Priority decides between the two masters: n2 (120) steps down within an interval or two.
    agents.wait_state(2, "Backup", 2 * INTERVAL + MARGIN)
    agents.wait_holders([1], MARGIN, VIP4)
    masters = [i for i in (1, 2, 3) if agents.state(i) == "Master"]
    assert masters == [1]
    # The survivor announced itself: the client's entry points at n1 without waiting
    # for the kernel's own re-probe (seconds), and the client is answered by n1.
    lab.wait_for(lambda: lab.client_neighbour(VIP4) == lab.mac(1), 2 * INTERVAL + MARGIN)
    probe.wait_answer("n1", 2 * INTERVAL + MARGIN, since=healed_at)
    assert agents.metrics(1).get(ANNOUNCED, vip="web") > announced
