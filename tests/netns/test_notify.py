"""Notify hooks run on entering Master, Backup and Fault, with the documented environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.agentlab import INTERVAL, MARGIN, Agents, skew
from keepvip_tools.lab.config import virtualip
from keepvip_tools.lab.topology import VIP4, Lab

# Appends the hook's KEEPVIP_* environment and argv as one JSON line to argv[1].
RECORD = (
    "import json, os, sys\n"
    "env = {k: v for k, v in os.environ.items() if k.startswith('KEEPVIP_')}\n"
    "with open(sys.argv[1], 'a') as f:\n"
    "    f.write(json.dumps({'argv': sys.argv[2:], 'env': env}) + '\\n')\n"
)
HOOK_RUN = 5.0
"""A hook is a Python start-up away (about 0.1 s, more on a loaded machine)."""


def hooks(log: Path) -> dict[str, list[str]]:
    return {
        state: [sys.executable, "-c", RECORD, str(log), state]
        for state in ("master", "backup", "fault")
    }


def records(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


DOCUMENTED = {
    "KEEPVIP_NAME",
    "KEEPVIP_STATE",
    "KEEPVIP_OLD_STATE",
    "KEEPVIP_PRIORITY",
    "KEEPVIP_REASON",
}


def env_of(log: Path) -> list[dict[str, str]]:
    """The documented variables each hook saw (hooks also inherit the agent's environment)."""
    return [{k: v for k, v in r["env"].items() if k in DOCUMENTED} for r in records(log)]


@pytest.mark.nodes(2)
def test_notify_hooks_run_with_the_documented_environment(lab: Lab, agents: Agents) -> None:
    logs = {i: agents.workdir / f"hooks-n{i}.jsonl" for i in (1, 2)}
    flag = agents.workdir / "n1-broken"
    fault_check = {
        "name": "flag",
        "exec": {"command": ["test", "!", "-e", str(flag)]},
        "interval": "100ms",
        "timeout": "500ms",
        "onFailure": {"action": "fault"},
    }
    common: dict[str, Any] = {"priorities": {"n1": 150, "n2": 120}, "preempt": True}
    agents.start(1, virtualip(notify=hooks(logs[1]), checks=[fault_check], **common))
    agents.start(2, virtualip(notify=hooks(logs[2]), **common))
    agents.settle(master=1, address=VIP4)

    def caught_up(i: int) -> bool:
        """Every transition so far (all into Master, Backup or Fault) has run its hook."""
        moves = agents.metrics(i).get("keepvip_vrrp_transitions_total", vip="web")
        return len(records(logs[i])) == moves

    lab.wait_for(lambda: caught_up(1) and caught_up(2), HOOK_RUN)
    first = env_of(logs[1])
    assert [e["KEEPVIP_STATE"] for e in first] == ["BACKUP", "MASTER"], first
    assert [e["KEEPVIP_OLD_STATE"] for e in first] == ["INITIALIZE", "BACKUP"], first
    assert all(e["KEEPVIP_NAME"] == "web" and e["KEEPVIP_PRIORITY"] == "150" for e in first)
    assert first[0]["KEEPVIP_REASON"] == "startup"
    assert "master down timer" in first[1]["KEEPVIP_REASON"]
    # Each state runs its own command.
    assert [r["argv"] for r in records(logs[1])] == [["backup"], ["master"]]
    # n2 may have been master for a moment in the start-up race; it ends as backup.
    second = env_of(logs[2])
    assert second[0]["KEEPVIP_STATE"] == "BACKUP" and second[-1]["KEEPVIP_STATE"] == "BACKUP"
    seen2 = len(second)

    flag.touch()
    agents.wait_state(1, "Fault", 0.1 + 0.5 + MARGIN)
    agents.wait_state(2, "Master", skew(120) + INTERVAL + MARGIN)
    lab.wait_for(lambda: caught_up(1) and caught_up(2), HOOK_RUN)
    assert len(records(logs[1])) == 3
    fault = env_of(logs[1])[2]
    assert fault["KEEPVIP_STATE"] == "FAULT" and fault["KEEPVIP_OLD_STATE"] == "MASTER", fault
    assert "flag" in fault["KEEPVIP_REASON"], fault
    assert records(logs[1])[2]["argv"] == ["fault"]
    assert len(records(logs[2])) == seen2 + 1
    taken = env_of(logs[2])[seen2]
    assert taken == {
        "KEEPVIP_NAME": "web",
        "KEEPVIP_STATE": "MASTER",
        "KEEPVIP_OLD_STATE": "BACKUP",
        "KEEPVIP_PRIORITY": "120",
        "KEEPVIP_REASON": taken["KEEPVIP_REASON"],
    }
    assert taken["KEEPVIP_REASON"]
