"""No stale VIP: not after SIGKILL (kernel address lifetime), not from a previous run."""

from __future__ import annotations

import re
import time

import pytest

from keepvip_harness.agentlab import Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120}
KERNEL_SLACK = 1.5
"""The kernel's address-lifetime worker runs about once a second."""


@pytest.mark.nodes(2)
def test_sigkilled_master_loses_its_vip_within_the_address_lifetime(
    lab: Lab, agents: Agents
) -> None:
    lifetime = 2.0
    agents.start_all(virtualip(priorities=PRIORITIES, preempt=True, addressLifetime="2s"))
    agents.settle(master=1, address=VIP4)
    line = agents.address_line(1, VIP4)
    assert line is not None
    valid = re.search(r"valid_lft (\S+)", line)
    assert valid and valid.group(1) != "forever", line
    assert int(valid.group(1).removesuffix("sec")) <= lifetime, line

    agents.kill(1)
    killed_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    took_over_at = time.monotonic()
    # Nobody renews n1's copy any more: the kernel removes it by itself.
    lab.wait_for(lambda: not lab.has_address(1, VIP4), lifetime + KERNEL_SLACK, 0.02)
    assert time.monotonic() - killed_at <= lifetime + KERNEL_SLACK
    # The live master renews its own copy: it outlives its first lifetime.
    while time.monotonic() < took_over_at + lifetime + KERNEL_SLACK:
        assert lab.holders(VIP4) == [2]
        time.sleep(0.05)


@pytest.mark.nodes(2)
def test_startup_removes_a_leftover_vip_before_joining(lab: Lab, agents: Agents) -> None:
    # A copy without lifetime, as a crashed keepalived (or an operator) leaves it.
    lab.ip(lab.node_ns(2), "addr", "add", f"{VIP4}/24", "dev", "eth0")
    assert lab.holders(VIP4) == [2]

    doc = virtualip(priorities=PRIORITIES, preempt=True)
    agents.start(1, doc)
    agents.start(2, doc)
    joined = agents.wait_joined(2)
    # Joined as a backup (n1 outranks it) and the leftover is already gone.
    assert not lab.has_address(2, VIP4), joined
    agents.settle(master=1, address=VIP4)
    assert "removed leftover VIP copies" in lab.log_text("n2.log")
    assert agents.instance(2)["bound"] is False
    assert lab.holders(VIP4) == [1]
