"""Election and failover between keepvip agents on a real bridge.

n1 150, n2 120, n3 50 everywhere, so the expected master and its successor
are known: n1 first, n2 after it. n3 sits well below n2 so that their
master-down timers (353 ms and 380 ms at 100 ms) never race on a busy host.
"""

from __future__ import annotations

import json
import time

import pytest

from keepvip_harness.agentlab import (
    INTERVAL,
    MARGIN,
    STARTUP,
    Agents,
    http_get,
    master_down,
    skew,
    takeover,
)
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120, "n3": 50}


def test_highest_priority_wins_and_answers_through_the_vip(lab: Lab, agents: Agents) -> None:
    agents.start_responders()
    agents.start_all(virtualip(priorities=PRIORITIES, preempt=True))

    agents.settle(master=1, address=VIP4)
    assert agents.state(2) == agents.state(3) == "Backup"
    # The backups know who the master is (its primary address) from its next advert;
    # a competitor's last advert of the start-up race may be the latest they heard so far.
    lab.wait_for(lambda: agents.instance(2)["master"] == str(lab.node_v4(1)), 2 * INTERVAL + MARGIN)
    answers = agents.probe_once(VIP4)
    assert len(answers) >= 5 and set(answers) == {"n1"}, answers
    assert lab.client_neighbour(VIP4) == lab.mac(1)
    for i in (1, 2, 3):
        assert http_get(lab.node_ns(i), "/healthz") is not None
        assert http_get(lab.node_ns(i), "/readyz") is not None
    m1, m2 = agents.metrics(1), agents.metrics(2)
    assert m1.get("keepvip_vip_bound", vip="web") == 1
    assert m1.get("keepvip_vrrp_state", vip="web", state="Master") == 1
    assert m2.get("keepvip_vip_bound", vip="web") == 0
    assert m2.get("keepvip_vrrp_state", vip="web", state="Backup") == 1
    assert m1.get("keepvip_vrrp_priority_effective", vip="web") == 150
    assert m2.get("keepvip_vrrp_adverts_received_total", vip="web") > 0
    # A backup's repeats are absorbed by the receive thread (runtime/rxwatch.py), and still
    # counted as received: one a 100 ms interval, less the one that brought the news.
    before = m2.get("keepvip_vrrp_adverts_received_total", vip="web")
    absorbed = m2.get("keepvip_rx_thread_absorbed_total")
    time.sleep(1.0)
    m2 = agents.metrics(2)
    assert m2.get("keepvip_rx_thread_absorbed_total") - absorbed >= 7
    assert m2.get("keepvip_vrrp_adverts_received_total", vip="web") - before >= 7
    assert m2.get("keepvip_rx_thread_overflow_total") == 0
    # ... and the master's periodic adverts are sent by that thread.
    sent = m1.get("keepvip_rx_thread_sent_total")
    time.sleep(1.0)
    assert agents.metrics(1).get("keepvip_rx_thread_sent_total") - sent >= 8


def test_link_cut_moves_the_vip_to_the_next_highest(lab: Lab, agents: Agents) -> None:
    agents.start_responders()
    agents.start_all(virtualip(priorities=PRIORITIES, preempt=True))
    agents.settle(master=1, address=VIP4)
    probe = agents.probe(VIP4)
    probe.wait_answer("n1", MARGIN)

    lab.cut(1)  # bridge port state 0: n1 keeps carrier and never notices
    cut_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    assert 2 in lab.holders(VIP4) and 3 not in lab.holders(VIP4)
    assert agents.state(3) == "Backup"
    probe.wait_answer("n2", takeover(120), since=cut_at)
    assert lab.client_neighbour(VIP4) == lab.mac(2)
    # n1 saw nothing: it is still master on its side of the partition.
    assert agents.state(1) == "Master"


def test_sigkill_of_the_master_agent_moves_the_vip(lab: Lab, agents: Agents) -> None:
    agents.start_responders()
    agents.start_all(virtualip(priorities=PRIORITIES, preempt=True))
    agents.settle(master=1, address=VIP4)
    probe = agents.probe(VIP4)
    probe.wait_answer("n1", MARGIN)

    agents.kill(1)
    killed_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    assert agents.state(3) == "Backup"
    assert 2 in lab.holders(VIP4)
    probe.wait_answer("n2", takeover(120), since=killed_at)
    assert lab.client_neighbour(VIP4) == lab.mac(2)


def test_sigterm_hands_over_within_skew_time(lab: Lab, agents: Agents) -> None:
    doc = virtualip(priorities=PRIORITIES, preempt=True)
    agents.start_all(doc)
    agents.settle(master=1, address=VIP4)

    sent_at = time.time()
    assert agents.terminate(1) == 0
    assert not lab.has_address(1, VIP4), "a stopping master must remove its VIP"
    n2 = agents.wait_state(2, "Master", takeover(120))
    took = n2["lastTransition"]["at"] - sent_at
    # Priority 0 makes n2 wait only its skew; without it n2 would wait at least
    # the master-down interval after the last advert (>= 2 * interval + skew).
    assert took < skew(120) + INTERVAL / 2 + 0.05, (
        f"handover took {took * 1000:.0f} ms; skew is {skew(120) * 1000:.0f} ms, "
        f"master down {master_down(120) * 1000:.0f} ms"
    )
    agents.wait_holders([2], MARGIN, VIP4)
    assert agents.state(3) == "Backup"


@pytest.mark.nodes(2)
def test_vrrpv2_elects_and_fails_over(lab: Lab, agents: Agents) -> None:
    interval = 1.0
    agents.start_all(virtualip(priorities=PRIORITIES, preempt=True, version=2, interval="1s"))
    agents.settle(master=1, address=VIP4, timeout=STARTUP + master_down(120, interval))

    # What is on the wire really is version 2, from n1, at 1 s.
    seen = [json.loads(x) for x in agents.wire(lab.client_ns, "sniff", "1.5").splitlines()]
    from_n1 = [p for p in seen if p["src"] == str(lab.node_v4(1))]
    assert from_n1, seen
    assert all(p["version"] == 2 and p["vrid"] == 51 for p in seen), seen
    assert all(p["priority"] == 150 and p["interval"] == 1 for p in from_n1), from_n1

    lab.cut(1)
    cut_at = time.time()
    n2 = agents.wait_state(2, "Master", takeover(120, interval))
    took = n2["lastTransition"]["at"] - cut_at
    # Master-down counts from the last advert heard, which came at most one interval before the cut.
    assert master_down(120, interval) - interval - 0.1 <= took, took
    assert 2 in lab.holders(VIP4)
