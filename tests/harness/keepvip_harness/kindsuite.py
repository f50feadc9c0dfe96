"""The e2e session on kind: its workload, its handle, and the client's probe read.

``tests/e2e/conftest.py`` builds the session on the cluster of
:mod:`keepvip_harness.kindctl` (the image loaded, the chart installed, the
app below and a VirtualIP tracking it) and yields an :class:`E2E`; the test
modules act through it and time outages from the client's probe output with
:func:`outage`. ``benchmarks/kind_failover.py`` uses the same workload. Here
so that test modules and benchmarks import no conftest.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .dockerctl import Docker
from .kindctl import CHART_NAMESPACE, Cluster

NAMESPACE = "keepvip-e2e"
APP_PORT = 8080
ADVERT_INTERVAL = 0.1


class Probe:
    """A client probe that is already probing when the constructor returns.

    ``docker exec`` and Python's start take a while on a loaded machine; an
    event timed from before the first attempt would count that as outage.
    """

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first = self.proc.stdout.readline()

    def communicate(self, timeout: float) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.first + (out or ""), err or ""


@dataclass
class E2E:
    cluster: Cluster
    docker: Docker
    image: str
    vip: str
    client: str

    def virtualip(self, name: str = "web") -> dict[str, Any]:
        return self.cluster.get("virtualip", name, "-n", NAMESPACE)

    def master(self, name: str = "web") -> str | None:
        return ready_master(self.virtualip(name))

    def app_pod_on(self, node: str) -> str:
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", "app=web")["items"]
        (pod,) = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node]
        return str(pod)

    def probe(self, duration: float, address: str | None = None, port: int = APP_PORT) -> Probe:
        """The client's probe, running: a GET to the VIP every 20 ms, one line per attempt."""
        return Probe(
            [*self.docker.argv("exec", self.client), "python", "-m", "keepvip_tools.lab.probe",
             address or self.vip, "--port", str(port), "--every", "0.02", "--timeout", "0.1",
             "--duration", str(duration)]
        )  # fmt: skip

    def answers(self, addresses: Sequence[str], port: int = APP_PORT) -> dict[str, str | None]:
        """Who answers a GET on each address (None: nobody), asked in one ``docker exec``,
        32 at a time (an address nobody holds costs the 1 s timeout)."""
        script = (
            "import sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
            "from keepvip_tools.lab.probe import get\n"
            "port, addresses = int(sys.argv[1]), sys.argv[2:]\n"
            "with ThreadPoolExecutor(32) as pool:\n"
            "    for a, who in zip(addresses, pool.map(lambda a: get(a, port, 1.0), addresses)):\n"
            "        print(a, who or '-')\n"
        )
        out = self.docker(
            "exec", self.client, "python", "-c", script, str(port), *addresses, timeout=600
        )
        found = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
        return {a: None if found.get(a, "-") == "-" else found[a] for a in addresses}

    def answer(self, address: str | None = None, port: int = APP_PORT) -> str | None:
        out = self.docker(
            "exec", self.client, "python", "-m", "keepvip_tools.lab.probe", address or self.vip,
            "--port", str(port), "--duration", "0.01", "--timeout", "0.5", check=False,
        )  # fmt: skip
        who = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]
        return who[-1] if who and who[-1] != "-" else None


def ready_master(vip: dict[str, Any]) -> str | None:
    """The master in a VirtualIP's status while its Ready condition is True, else None."""
    status = vip.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    master = status.get("master")
    return str(master) if master and ready and ready[0]["status"] == "True" else None


def app(image: str) -> dict[str, Any]:
    """One pod per worker (the host port keeps two off one node), Ready while /tmp/ready exists."""
    labels = {"app": "web"}
    serve = (
        f'touch /tmp/ready && exec python -m keepvip_tools.lab.responder "$NODE_NAME" {APP_PORT}'
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", serve],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "ports": [{"containerPort": APP_PORT, "hostPort": APP_PORT}],
                            # What docs/install.md asks of a tracked app: keep answering
                            # for a moment after the pod is deleted (drain), while the
                            # VIP moves.
                            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}},
                            "readinessProbe": {
                                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def virtualip(vip: str, prefix: int) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "addresses": [f"{vip}/{prefix}"],
            "advertInterval": f"{round(ADVERT_INTERVAL * 1000)}ms",
            "trackPods": {
                "selector": {"matchLabels": {"app": "web"}},
                "onFailure": {"action": "fault"},
                "roleLabel": True,
            },
        },
    }


def deployed_image(cluster: Cluster) -> str:
    """The keepvip image the operator Deployment runs (the one up() loaded)."""
    dep = cluster.get("deployment", "-n", CHART_NAMESPACE, "-l", "app.kubernetes.io/name=keepvip")
    return str(dep["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"])


def timeline(lines: str, since: float) -> str:
    """Who answered from ``since`` on, as changes: "+0.00 w1, +0.41 -, +0.78 w2" ("-": nobody)."""
    changes, last = [], None
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) != 2 or float(parts[0]) < since:
            continue
        if parts[1] != last:
            changes.append(f"+{float(parts[0]) - since:.2f} {parts[1]}")
            last = parts[1]
    return ", ".join(changes)


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
