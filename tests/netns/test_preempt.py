"""Sticky (nopreempt) and delayed-preempt ownership when a higher-priority node returns.

A node "returns" by an agent restart or by its link coming back: both make
it rejoin as a backup. A bridge partition is different: the cut-off master
never stops being master, and two masters meeting resolve by priority, with
or without preempt (see test_partition.py).

Two nodes only: with preempt false, a third node of lower priority whose
master-down timer happened to fire first would keep the VIP by the very rule
under test, and blur what these tests look at.
"""

from __future__ import annotations

import time

import pytest

from keepvip_harness.agentlab import INTERVAL, MARGIN, STARTUP, Agents, master_down, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120}


def start_with_n1_master(agents: Agents, doc: dict) -> None:  # type: ignore[type-arg]
    """preempt false: the first master keeps the VIP, so start n1 alone first."""
    agents.start_all(doc, nodes=[1])
    agents.wait_state(1, "Master", STARTUP)
    agents.start_all(doc, nodes=[2])
    agents.settle(master=1, address=VIP4)


def assert_stays_with(agents: Agents, lab: Lab, holder: int, returned: int) -> None:
    """The returned node has joined as Backup and sees ``holder`` as master, and it stays so."""
    inst = agents.wait_state(returned, "Backup", STARTUP)
    lab.wait_for(
        lambda: agents.instance(returned)["master"] == str(lab.node_v4(holder)),
        2 * INTERVAL + MARGIN,
    )
    # Long enough for the returned node's master-down timer to run out several
    # times over if it were discarding the lower-priority master's adverts.
    end = time.monotonic() + 4 * master_down(150)
    while time.monotonic() < end:
        assert lab.holders(VIP4) == [holder]
        time.sleep(0.02)
    assert agents.state(returned) == "Backup"
    assert agents.state(holder) == "Master"
    assert inst["effectivePriority"] == 150


@pytest.mark.nodes(2)
def test_nopreempt_restarted_master_does_not_take_the_vip_back(lab: Lab, agents: Agents) -> None:
    doc = virtualip(priorities=PRIORITIES)
    start_with_n1_master(agents, doc)

    assert agents.terminate(1) == 0
    agents.wait_state(2, "Master", takeover(120))
    agents.wait_holders([2], MARGIN, VIP4)

    agents.start(1, doc)
    assert_stays_with(agents, lab, holder=2, returned=1)


@pytest.mark.nodes(2)
def test_nopreempt_master_whose_link_returns_does_not_take_the_vip_back(
    lab: Lab, agents: Agents
) -> None:
    doc = virtualip(priorities=PRIORITIES)
    start_with_n1_master(agents, doc)

    lab.link_down(1)  # carrier lost: n1 sees it, goes to Fault and releases the VIP
    agents.wait_state(1, "Fault", MARGIN)
    agents.wait_state(2, "Master", takeover(120))
    agents.wait_holders([2], MARGIN, VIP4)

    lab.link_up(1)
    assert_stays_with(agents, lab, holder=2, returned=1)


@pytest.mark.nodes(2)
def test_preempt_delay_takes_the_vip_back_only_after_the_delay(lab: Lab, agents: Agents) -> None:
    delay = 1.5
    doc = virtualip(priorities=PRIORITIES, preempt=True, preemptDelay="1500ms")
    agents.start_all(doc)
    agents.settle(master=1, address=VIP4)

    assert agents.terminate(1) == 0
    agents.wait_state(2, "Master", takeover(120))
    agents.wait_holders([2], MARGIN, VIP4)

    agents.start(1, doc)
    joined = agents.wait_state(1, "Backup", STARTUP)
    joined_at = joined["lastTransition"]["at"]
    # Not before the delay: n2 keeps the VIP until n1 has seen it for 1.5 s.
    while time.time() < joined_at + delay - 0.2:
        assert lab.holders(VIP4) == [2], "n1 preempted before preemptDelay"
        time.sleep(0.02)
    # And yes after it: n1 stops accepting n2's adverts, its master-down timer runs out.
    master = agents.wait_state(1, "Master", delay + takeover(150))
    took = master["lastTransition"]["at"] - joined_at
    assert delay <= took <= delay + master_down(150) + INTERVAL + MARGIN, took
    agents.wait_holders([1], takeover(150), VIP4)
    assert agents.state(2) == "Backup"
