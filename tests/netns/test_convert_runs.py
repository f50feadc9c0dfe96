"""A converted configuration runs: keepvip elects the master keepalived elects from the original.

Three hosts' keepalived files (one per node, as users have them) with
priorities 160, 150 and 115 and three tracked scripts whose results differ
per node, so that each of keepalived's weight rules decides the outcome:

==========  ========  ==========================  ==========================  ===========
node        priority  chk_a (weight -30)          chk_b (weight +20)          chk_c (0)
==========  ========  ==========================  ==========================  ===========
n1          160       passes                      fails                       **fails**
n2          150       **fails**: 120              fails                       passes
n3          115       passes                      **passes**: 135             passes
==========  ========  ==========================  ==========================  ===========

keepalived: n1 stays out of the election (weight 0), n2 advertises 120, n3
advertises 135 and is master. Drop any one rule and someone else wins: n1 without the
fault, n2 without the demotion, n2 again without the bonus. Each script
checks for a marker interface (``ip link show dev kvX``) that exists only
in some node namespaces, so the same files give different results per node.

The test runs real keepalived 2.2.7 from the original files, stops it,
converts the files with ``keepvip convert --standalone`` (the command line,
as a user would), runs keepvip agents from the result in the same topology,
and checks that both elect n3 and that keepvip's priorities equal the
effective priorities keepalived logged.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_harness.agentlab import Agents
from keepvip_harness.tiers import skip_or_fail
from keepvip_tools.lab.topology import VIP4, Lab

KEEPALIVED = shutil.which("keepalived")
IP = shutil.which("ip") or "/usr/sbin/ip"
PRIORITY = {1: 160, 2: 150, 3: 115}
MARKERS = {"kva": (1, 3), "kvb": (3,), "kvc": (2, 3)}
"""Marker interface -> nodes that have it (the script checking for it passes there)."""
EXPECTED_MASTER = 3
SETTLE = 25.0
STABLE = 3.0

CONF = """\
global_defs {{
    router_id n{i}
    vrrp_version 3
}}

vrrp_script chk_a {{
    script "{ip} link show dev kva"
    interval 1
    weight -30
}}

vrrp_script chk_b {{
    script "{ip} link show dev kvb"
    interval 1
    weight 20
}}

vrrp_script chk_c {{
    script "{ip} link show dev kvc"
    interval 1
}}

vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 0.2
    virtual_ipaddress {{
        {vip}/24
    }}
    track_script {{
        chk_a
        chk_b
        chk_c
    }}
}}
"""


@pytest.fixture
def confs(lab: Lab, request: pytest.FixtureRequest) -> Path:
    """The three hosts' keepalived.conf files in the lab's workdir, and the marker interfaces."""
    if KEEPALIVED is None:
        skip_or_fail(
            "netns",
            "keepalived is not installed (apt-get install --no-install-recommends keepalived)",
        )
    assert lab.workdir is not None
    directory = lab.workdir / "keepalived"
    directory.mkdir()
    for i in range(1, lab.nodes + 1):
        text = CONF.format(i=i, ip=IP, priority=PRIORITY[i], vip=VIP4)
        (directory / f"n{i}.conf").write_text(text)
    for name, nodes in MARKERS.items():
        for i in nodes:  # a veth pair left down: it exists, which is all the scripts ask
            lab.ip(lab.node_ns(i), "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    return directory


class Keepalived:
    """keepalived -n -l -D -P in one node namespace, its VRRP child found through its pid file."""

    def __init__(self, lab: Lab, i: int, conf: Path) -> None:
        assert lab.workdir is not None and KEEPALIVED is not None
        self.lab, self.i = lab, i
        base = lab.workdir / f"keepalived-n{i}"
        self.child_pidfile = base.with_suffix(".vrrp.pid")
        self.log = f"keepalived-n{i}.log"
        argv = [
            KEEPALIVED, "-n", "-l", "-D", "-G", "-P", "-f", str(conf),
            "-p", str(base.with_suffix(".pid")), "-r", str(self.child_pidfile),
        ]  # fmt: skip
        self.proc = lab.spawn(lab.node_ns(i), argv, log=self.log)

    def child(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.child_pidfile.read_text().split()[0])
        return None

    def stop(self) -> None:
        """SIGTERM (keepalived removes its VIPs), then make sure the VRRP child is gone too."""
        child = self.child()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        for pid in (self.proc.pid, child):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def text(self) -> str:
        return self.lab.log_text(self.log)


def stable_holder(lab: Lab, timeout: float) -> int:
    """The single node holding the VIP, once it has held it alone for STABLE seconds."""
    state: dict[str, Any] = {"holder": None, "since": 0.0}

    def settled() -> int | None:
        holders = lab.holders(VIP4)
        now = time.monotonic()
        if len(holders) != 1 or holders[0] != state["holder"]:
            state["holder"] = holders[0] if len(holders) == 1 else None
            state["since"] = now
            return None
        return holders[0] if now - state["since"] >= STABLE else None

    return lab.wait_for(settled, timeout, 0.1)  # type: ignore[no-any-return]


def effective_priority(log: str) -> int | None:
    """The last effective priority keepalived logged for VI_1 (None if it never changed)."""
    found = re.findall(r"\(VI_1\) Changing effective priority from \d+ to (\d+)", log)
    return int(found[-1]) if found else None


def test_keepvip_elects_the_master_keepalived_elects(lab: Lab, agents: Agents, confs: Path) -> None:
    # 1. keepalived from the original files.
    daemons = {i: Keepalived(lab, i, confs / f"n{i}.conf") for i in range(1, lab.nodes + 1)}
    try:
        keepalived_master = stable_holder(lab, SETTLE)
        logs = {i: d.text() for i, d in daemons.items()}
    finally:
        for d in daemons.values():
            d.stop()
    lab.wait_for(lambda: lab.holders(VIP4) == [], 10)
    assert keepalived_master == EXPECTED_MASTER, logs
    # n1's weight-0 script failed before it ever joined: keepalived keeps it out of the
    # election (it never enters BACKUP or MASTER), which keepvip reports as Fault.
    assert "VRRP_Script(chk_c) failed" in logs[1], logs[1]
    assert "Entering BACKUP STATE" not in logs[1], logs[1]
    assert "Entering MASTER STATE" not in logs[1], logs[1]
    assert effective_priority(logs[2]) == 120, logs[2]
    assert effective_priority(logs[3]) == 135, logs[3]

    # 2. The conversion, through the command line.
    out = confs / "converted"
    result = subprocess.run(
        [sys.executable, "-m", "keepvip_tools.cli", "convert", "n1.conf", "n2.conf", "n3.conf",
         "--standalone", "-o", str(out)],
        cwd=confs, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (doc,) = yaml.safe_load_all((out / "keepvip.yaml").read_text())
    spec = doc["spec"]
    assert {n["name"]: n["priority"] for n in spec["nodes"]} == {"n1": 180, "n2": 170, "n3": 135}
    assert spec["preempt"] is True

    # 3. keepvip agents from the converted VirtualIP, in the same namespaces.
    for i in range(1, lab.nodes + 1):
        agents.start(i, doc)
    name = doc["metadata"]["name"]
    agents.wait_state(EXPECTED_MASTER, "Master", SETTLE, name=name)
    assert stable_holder(lab, SETTLE) == keepalived_master
    agents.wait_state(1, "Fault", SETTLE, name=name)
    agents.wait_state(2, "Backup", SETTLE, name=name)
    effective = {i: agents.instance(i, name) for i in (2, 3)}
    assert effective[2] is not None and effective[3] is not None
    assert effective[2]["effectivePriority"] == effective_priority(logs[2])
    assert effective[3]["effectivePriority"] == effective_priority(logs[3])
