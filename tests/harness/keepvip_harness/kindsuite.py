"""The e2e session on kind: its workload's names and ports, its handle, and the client's probe read.

``tests/e2e/conftest.py`` builds the session (the image in a 3-worker kind
cluster, the chart, an app and a VirtualIP) and yields an :class:`E2E`; the
test modules act through it and time outages from the client's probe output
with :func:`outage`. Here so that test modules import no conftest.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from .dockerctl import Docker
from .kindctl import KindCluster

NAMESPACE = "keepvip-e2e"
APP_PORT = 8080
ADVERT_INTERVAL = 0.1


@dataclass
class E2E:
    cluster: KindCluster
    docker: Docker
    image: str
    vip: str
    client: str

    def virtualip(self) -> dict[str, Any]:
        return self.cluster.get("virtualip", "web", "-n", NAMESPACE)

    def master(self) -> str | None:
        status = self.virtualip().get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        master = status.get("master")
        return str(master) if master and ready and ready[0]["status"] == "True" else None

    def app_pod_on(self, node: str) -> str:
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", "app=web")["items"]
        (pod,) = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node]
        return str(pod)

    def probe(self, duration: float) -> subprocess.Popen[str]:
        """The client's probe, started: a GET to the VIP every 20 ms, one line per attempt."""
        return subprocess.Popen(
            [self.docker.cli, "exec", self.client, "python", "-m", "keepvip_tools.lab.probe",
             self.vip, "--port", str(APP_PORT), "--every", "0.02", "--timeout", "0.1",
             "--duration", str(duration)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def answer(self) -> str | None:
        out = self.docker(
            "exec", self.client, "python", "-m", "keepvip_tools.lab.probe", self.vip,
            "--port", str(APP_PORT), "--duration", "0.01", "--timeout", "0.5", check=False,
        )  # fmt: skip
        who = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]
        return who[-1] if who and who[-1] != "-" else None


def outage(lines: str, since: float, old: str) -> tuple[float, float]:
    """From the probe's output: seconds from ``since`` to the first answer by another node,
    and the longest stretch without any answer after ``since``."""
    takeover, gap, last_ok = None, 0.0, since
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        at, who = float(parts[0]), parts[1]
        if at < since:
            continue
        if who != "-":
            gap = max(gap, at - last_ok)
            last_ok = at
            if takeover is None and who != old:
                takeover = at - since
    if takeover is None:
        raise AssertionError(f"no other node answered on the VIP after the event (was {old})")
    return takeover, gap
