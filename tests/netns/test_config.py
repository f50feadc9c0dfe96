"""Configuration problems: an invalid file stops the agent before it touches anything;
a missing interface faults only the VirtualIPs on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keepvip_harness.agentlab import MARGIN, STARTUP, Agents, master_down
from keepvip_tools.lab.config import dump, virtualip
from keepvip_tools.lab.topology import VIP4, Lab

GHOST_VIP = "198.51.100.50"


@pytest.mark.nodes(1)
def test_invalid_config_exits_2_with_one_line_per_problem(lab: Lab, agents: Agents) -> None:
    bad = virtualip(
        "web",
        addresses=("192.0.2.300/24",),
        vrid=300,
        interval="fast",
        priority=0,
        preempt="yes",
        checks=[
            {"name": "Bad_Name", "exec": {"command": ["x"]}, "onFailure": {"action": "demote"}}
        ],
        unknownField=1,
    )
    also_bad = virtualip("db", addresses=("192.0.2.60/24",), vrid=52, version=2, interval="100ms")
    config = agents.workdir / "bad.yaml"
    config.write_text(dump(bad, also_bad))
    before = lab.ip(lab.node_ns(1), "-o", "addr")

    argv = [sys.executable, "-m", "keepvip_agent.cli", "--config", str(config), "--node", "n1"]
    res = subprocess.run(
        ["ip", "netns", "exec", lab.node_ns(1), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert res.returncode == 2, res
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    fields = [
        "(web): spec.addresses[0]:",
        "(web): spec.virtualRouterID:",
        "(web): spec.advertInterval:",
        "(web): spec.priority:",
        "(web): spec.preempt:",
        "(web): spec.checks[0].name:",
        "(web): spec.checks[0].onFailure.weight:",
        "(web): spec.unknownField:",
        "(db): spec.advertInterval:",
    ]
    assert len(lines) == len(fields), lines
    for line in lines:
        assert line.startswith(f"error: {config}["), line
    for f in fields:
        assert sum(f in line for line in lines) == 1, (f, lines)
    assert lab.ip(lab.node_ns(1), "-o", "addr") == before


@pytest.mark.nodes(1)
def test_missing_interface_faults_only_its_virtualip(lab: Lab, agents: Agents) -> None:
    ghost = virtualip(
        "ghost", addresses=(f"{GHOST_VIP}/24",), vrid=52, interface="nope0", priority=150
    )
    web = virtualip("web", priority=150)
    agents.start(1, web, ghost)
    agents.wait_joined(1)

    inst = agents.wait_state(1, "Fault", STARTUP, name="ghost")
    assert any("interface nope0 does not exist" in f for f in inst["faults"]), inst
    assert "nope0" in inst["lastTransition"]["reason"], inst
    status = agents.status(1)
    assert status is not None
    assert {"name": "nope0", "family": 4, "problem": "interface nope0 does not exist"} in status[
        "interfaces"
    ]
    # The other VirtualIP in the same process is unaffected: alone, it becomes master.
    agents.wait_state(1, "Master", master_down(150) + MARGIN, name="web")
    agents.wait_holders([1], MARGIN, VIP4)
    assert "198.51.100.50" not in lab.ip(lab.node_ns(1), "-o", "addr")

    # The interface appears: the instance leaves Fault by itself (netlink event).
    ns = lab.node_ns(1)
    lab.ip(ns, "link", "add", "nope0", "type", "veth", "peer", "name", "nope1")
    lab.ip(ns, "addr", "add", "198.51.100.1/24", "dev", "nope0")
    lab.ip(ns, "link", "set", "nope1", "up")
    lab.ip(ns, "link", "set", "nope0", "up")
    agents.wait_state(1, "Master", master_down(150) + 2 * MARGIN, name="ghost")
    lab.wait_for(lambda: GHOST_VIP in lab.ip(ns, "-o", "addr", "show", "dev", "nope0"), MARGIN)
    assert agents.state(1, "web") == "Master"
