"""``keepvip status --agent ...`` shows a live lab of standalone agents as it is.

Three agents hold one VirtualIP; the command runs in the lab's client
namespace (where the agents' metrics endpoints are reachable, as they
would be from an operator's workstation) and must show the master, every
node's state and effective priority, and what the last transition was.
Then the master is stopped: the table follows the handover, and the agent
that no longer answers is reported on stderr with exit status 1 while the
others are still shown.
"""

from __future__ import annotations

import json
import subprocess
import sys

from keepvip_harness.agentlab import INTERVAL, METRICS_PORT, Agents, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120, "n3": 100}


def keepvip_status(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", lab.client_ns, sys.executable, "-m", "keepvip_tools.cli"]
    return subprocess.run(
        [*argv, "status", *args], capture_output=True, text=True, check=False, timeout=60
    )


def agent_urls(lab: Lab, nodes: range) -> list[str]:
    return [a for i in nodes for a in ("--agent", f"http://{lab.node_v4(i)}:{METRICS_PORT}")]


def rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("   ") if c.strip()] for line in table.splitlines()]


def test_status_of_a_live_lab(lab: Lab, agents: Agents) -> None:
    agents.start_all(virtualip("web", priorities=PRIORITIES, preempt=True))
    agents.settle(1, VIP4)

    result = keepvip_status(lab, *agent_urls(lab, range(1, 4)))
    assert result.returncode == 0, result.stderr
    header, n1, n2, n3 = rows(result.stdout)
    assert header[:7] == ["NAME", "ADDRESSES", "VRID", "MASTER", "NODE", "STATE", "PRIORITY"]
    assert n1[:7] == ["web", "192.0.2.50/24", "51", "n1", "n1", "Master", "150"]
    assert n1[8].startswith("Backup -> Master: "), n1
    assert n2[:3] == ["n2", "Backup", "120"]
    assert n3[:3] == ["n3", "Backup", "100"]
    assert n2[3].endswith("s")  # seconds since its last transition

    data = json.loads(keepvip_status(lab, "-o", "json", *agent_urls(lab, range(1, 4))).stdout)
    (web,) = data
    assert (web["name"], web["vrid"], web["master"]) == ("web", 51, "n1")
    assert [(n["name"], n["state"], n["effective_priority"]) for n in web["nodes"]] == [
        ("n1", "Master", 150),
        ("n2", "Backup", 120),
        ("n3", "Backup", 100),
    ]

    # The master leaves: n2 takes over, n1 no longer answers.
    assert agents.terminate(1) == 0
    agents.wait_state(2, "Master", takeover(120, INTERVAL))
    result = keepvip_status(lab, *agent_urls(lab, range(1, 4)))
    assert result.returncode == 1
    assert f"http://{lab.node_v4(1)}:{METRICS_PORT}/status" in result.stderr
    _header, n2, n3 = rows(result.stdout)
    assert n2[:7] == ["web", "192.0.2.50/24", "51", "n2", "n2", "Master", "120"]
    assert n2[8].startswith("Backup -> Master: "), n2
    assert n3[:2] == ["n3", "Backup"]
