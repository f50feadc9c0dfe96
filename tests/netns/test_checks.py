"""Health checks move the VIP: demote (priority minus weight) and fault (leave the election).

Checks run every 100 ms with a 500 ms timeout, so a flipped check is seen
within CHECK_SEEN and the VIP follows within one takeover on top of that.
Each node gets its own document, so a flag file can fail exactly one node.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.agentlab import INTERVAL, MARGIN, STARTUP, Agents, skew, takeover
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {"n1": 150, "n2": 120}
CHECK_INTERVAL = 0.1
CHECK_TIMEOUT = 0.5
CHECK_SEEN = CHECK_INTERVAL + CHECK_TIMEOUT + MARGIN


def check(name: str, on_failure: dict[str, Any], **probe: Any) -> dict[str, Any]:
    return {
        "name": name,
        **probe,
        "interval": "100ms",
        "timeout": "500ms",
        "onFailure": on_failure,
    }


def flag_check(flag: Path, on_failure: dict[str, Any]) -> dict[str, Any]:
    """An exec check that fails while ``flag`` exists."""
    return check("flag", on_failure, exec={"command": ["test", "!", "-e", str(flag)]})


def start_sticky(agents: Agents, docs: dict[int, dict[str, Any]]) -> None:
    """preempt false: start n1 alone so it is the first (and sticky) master."""
    agents.start(1, docs[1])
    agents.wait_state(1, "Master", STARTUP)
    for i, doc in docs.items():
        if i != 1:
            agents.start(i, doc)
    for i in docs:
        agents.wait_joined(i)
    agents.settle(master=1, address=VIP4)


def test_failing_demote_check_moves_the_vip_even_without_preempt(lab: Lab, agents: Agents) -> None:
    flag = agents.workdir / "n1-broken"
    demote = {"action": "demote", "weight": 50}
    start_sticky(
        agents,
        {
            1: virtualip(priorities=PRIORITIES, checks=[flag_check(flag, demote)]),
            2: virtualip(priorities=PRIORITIES),
            3: virtualip(priorities=PRIORITIES),
        },
    )
    assert agents.metrics(1).get("keepvip_check_healthy", vip="web", check="flag") == 1

    flag.touch()
    # 150 - 50 = 100 < 120: n2 replaces the demoted master although preempt is false.
    agents.wait_state(2, "Master", CHECK_SEEN + takeover(120))
    agents.wait_holders([2], MARGIN, VIP4)
    n1 = agents.wait_state(1, "Backup", MARGIN)
    assert n1["effectivePriority"] == 100 and n1["configuredPriority"] == 150
    assert agents.state(3) == "Backup"
    m1 = agents.metrics(1)
    assert m1.get("keepvip_check_healthy", vip="web", check="flag") == 0
    assert m1.get("keepvip_vrrp_priority_effective", vip="web") == 100


@pytest.mark.nodes(2)
def test_failing_fault_check_leaves_and_rejoins(lab: Lab, agents: Agents) -> None:
    flag = agents.workdir / "n1-broken"
    fault = {"action": "fault"}
    start_sticky(
        agents,
        {
            1: virtualip(priorities=PRIORITIES, checks=[flag_check(flag, fault)]),
            2: virtualip(priorities=PRIORITIES),
        },
    )

    flag.touch()
    n1 = agents.wait_state(1, "Fault", CHECK_SEEN)
    assert any(f.startswith("flag:") for f in n1["faults"]), n1
    assert not lab.has_address(1, VIP4)
    # Leaving a fault sends priority 0: n2 takes over after its skew, not master-down.
    agents.wait_state(2, "Master", skew(120) + INTERVAL + MARGIN)
    agents.wait_holders([2], MARGIN, VIP4)

    flag.unlink()
    n1 = agents.wait_state(1, "Backup", CHECK_SEEN)
    assert n1["faults"] == []
    lab.wait_for(
        lambda: agents.instance(1)["master"] == str(lab.node_v4(2)),
        2 * INTERVAL + MARGIN,
    )
    assert lab.holders(VIP4) == [2]  # preempt false: recovered n1 does not take it back


@pytest.mark.nodes(2)
def test_exec_check_whose_command_does_not_exist_is_failing(lab: Lab, agents: Agents) -> None:
    missing = check(
        "script", {"action": "fault"}, exec={"command": [str(lab.workdir / "no-such-script")]}
    )
    agents.start(1, virtualip(priorities=PRIORITIES, preempt=True, checks=[missing]))
    agents.start(2, virtualip(priorities=PRIORITIES, preempt=True))
    n1 = agents.wait_state(1, "Fault", STARTUP)
    assert any(f.startswith("script:") and "cannot run" in f for f in n1["faults"]), n1
    agents.wait_state(2, "Master", STARTUP)
    agents.wait_holders([2], MARGIN, VIP4)
    assert agents.metrics(1).get("keepvip_check_healthy", vip="web", check="script") == 0
    assert agents.state(1) == "Fault"


@pytest.mark.nodes(2)
def test_tcp_and_http_checks_follow_the_responder(lab: Lab, agents: Agents) -> None:
    fault = {"action": "fault"}
    checks = [
        check("tcp", fault, tcpSocket={"port": 80}),
        check("http", fault, httpGet={"url": "http://127.0.0.1:80/"}),
    ]
    doc1 = virtualip(priorities=PRIORITIES, preempt=True, checks=checks)
    doc2 = virtualip(priorities=PRIORITIES, preempt=True)
    agents.start_responders(nodes=[1])
    agents.start(1, doc1)
    agents.start(2, doc2)
    agents.settle(master=1, address=VIP4)
    m1 = agents.metrics(1)
    assert m1.get("keepvip_check_healthy", vip="web", check="tcp") == 1
    assert m1.get("keepvip_check_healthy", vip="web", check="http") == 1

    agents.responders[1].send_signal(signal.SIGKILL)
    agents.responders[1].wait(timeout=5)
    agents.wait_state(1, "Fault", CHECK_SEEN)
    lab.wait_for(
        lambda: {f.split(":")[0] for f in agents.instance(1)["faults"]} == {"tcp", "http"},
        CHECK_SEEN,
    )
    agents.wait_state(2, "Master", skew(120) + INTERVAL + MARGIN)
    agents.wait_holders([2], MARGIN, VIP4)

    agents.start_responders(nodes=[1])
    # Both checks pass again: n1 rejoins and, with preempt, takes the VIP back.
    agents.wait_state(1, "Master", CHECK_SEEN + takeover(150))
    agents.wait_holders([1], MARGIN, VIP4)
    assert agents.instance(1)["faults"] == []


@pytest.mark.nodes(2)
def test_link_check_demotes_on_carrier_loss(lab: Lab, agents: Agents) -> None:
    # A second link inside n1 (a veth pair): up0 loses carrier when its peer goes down.
    ns = lab.node_ns(1)
    lab.ip(ns, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
    lab.ip(ns, "link", "set", "up1", "up")
    lab.ip(ns, "link", "set", "up0", "up")
    link = check("uplink", {"action": "demote", "weight": 60}, link={"interface": "up0"})
    start_sticky(
        agents,
        {
            1: virtualip(priorities=PRIORITIES, checks=[link]),
            2: virtualip(priorities=PRIORITIES),
        },
    )
    assert agents.metrics(1).get("keepvip_check_healthy", vip="web", check="uplink") == 1

    lab.ip(ns, "link", "set", "up1", "down")
    agents.wait_state(2, "Master", CHECK_SEEN + takeover(120))
    agents.wait_holders([2], MARGIN, VIP4)
    assert agents.instance(1)["effectivePriority"] == 90
    assert agents.metrics(1).get("keepvip_check_healthy", vip="web", check="uplink") == 0

    lab.ip(ns, "link", "set", "up1", "up")
    lab.wait_for(lambda: agents.instance(1)["effectivePriority"] == 150, CHECK_SEEN)
    assert agents.metrics(1).get("keepvip_check_healthy", vip="web", check="uplink") == 1
    assert lab.holders(VIP4) == [2]
