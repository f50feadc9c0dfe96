"""IPv6: election over link-local addresses, a VIP that never goes dadfailed, dual stack.

The lab turns DAD off in its namespaces; these tests turn it back on for the
nodes' eth0, so a VIP added without IFA_F_NODAD would go through DAD (and
fail it whenever another node still holds the address).
"""

from __future__ import annotations

import time

import pytest

from keepvip_harness.agentlab import INTERVAL, MARGIN, Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, VIP6, Lab

PRIORITIES = {"n1": 150, "n2": 120, "n3": 50}


def enable_dad(lab: Lab) -> None:
    for i in range(1, lab.nodes + 1):
        lab.sysctl(lab.node_ns(i), "net.ipv6.conf.eth0.accept_dad", "1")
        lab.sysctl(lab.node_ns(i), "net.ipv6.conf.eth0.dad_transmits", "1")


def link_local(lab: Lab, i: int) -> str:
    out = lab.ip(lab.node_ns(i), "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
    return out.split("inet6", 1)[1].split()[0].split("/")[0]


def assert_usable_vip6(agents: Agents, i: int) -> None:
    line = agents.address_line(i, VIP6)
    assert line is not None, f"{VIP6} not on n{i}"
    assert "nodad" in line.split(), line
    assert "tentative" not in line and "dadfailed" not in line, line


def test_ipv6_vip_elects_over_link_local_and_fails_over(lab: Lab, agents: Agents) -> None:
    enable_dad(lab)
    agents.start_responders()
    agents.start_all(virtualip(addresses=(f"{VIP6}/64",), priorities=PRIORITIES, preempt=True))
    agents.settle(master=1, address=VIP6)
    assert_usable_vip6(agents, 1)
    lab.wait_for(
        lambda: agents.instance(2)["master"] == link_local(lab, 1),
        2 * INTERVAL + MARGIN,
    )
    answers = agents.probe_once(VIP6)
    assert len(answers) >= 5 and set(answers) == {"n1"}, answers

    # SIGKILL: n1's copy stays for its lifetime, so n2 adds an address that is
    # in use on the link: with DAD it would be dadfailed at once.
    probe = agents.probe(VIP6)
    agents.kill(1)
    killed_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    assert lab.has_address(1, VIP6) and lab.has_address(2, VIP6)
    assert_usable_vip6(agents, 2)
    probe.wait_answer("n2", takeover(120), since=killed_at)
    assert lab.client_neighbour(VIP6) == lab.mac(2)
    assert_usable_vip6(agents, 2)
    assert agents.state(3) == "Backup"


@pytest.mark.nodes(2)
def test_dual_stack_addresses_move_together(lab: Lab, agents: Agents) -> None:
    enable_dad(lab)
    agents.start_responders()
    doc = virtualip(addresses=(f"{VIP4}/24", f"{VIP6}/64"), priorities=PRIORITIES, preempt=True)
    agents.start_all(doc)
    agents.settle(master=1, address=VIP4)
    agents.wait_holders([1], MARGIN, VIP6)
    assert_usable_vip6(agents, 1)
    # The election runs on addresses[0]'s family: IPv4 primary addresses.
    assert agents.instance(2)["master"] == str(lab.node_v4(1))
    probe4, probe6 = agents.probe(VIP4), agents.probe(VIP6)
    probe4.wait_answer("n1", MARGIN)
    probe6.wait_answer("n1", MARGIN)

    lab.cut(1)
    cut_at = time.monotonic()
    agents.wait_state(2, "Master", takeover(120))
    assert lab.has_address(2, VIP4) and lab.has_address(2, VIP6)
    assert_usable_vip6(agents, 2)
    probe4.wait_answer("n2", takeover(120), since=cut_at)
    probe6.wait_answer("n2", takeover(120), since=cut_at)
    assert lab.client_neighbour(VIP4) == lab.mac(2)
    assert lab.client_neighbour(VIP6) == lab.mac(2)
