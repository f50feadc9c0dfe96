"""Fixtures of the e2e tier: keepvip on a real kind cluster (a control plane, three workers).

The cluster is the one of `make kind-up` (tests/e2e/kindctl.py): created by
pytest-kind's ``KindCluster`` from the node image hack/kind/build.sh
assembles here (no registry is needed), on the kind tier's own Docker daemon
and a Docker network on 198.51.100.0/25. If `make kind-up` left one running,
the session reuses it (and leaves it running, its dead nodes restarted);
otherwise the session creates it and removes it at the end, with the network
and the daemon it started, also after a failure.

On it, with the real kubelet, containerd, runc and kube-proxy: the image
built the CI way and loaded into the nodes, charts/keepvip installed with the
pinned helm, and the workload the tests act on: an app of one hostNetwork
pod per worker (it answers with its node's name on port 8080, Ready while
/tmp/ready exists) and a VirtualIP that tracks the app's Ready pods. The
client is a container on the cluster's network that asks the VIP who answers.

The tier runs when ``KEEPVIP_REQUIRE_TIERS`` names ``e2e`` (``make e2e``) or
``KEEPVIP_E2E=1``; otherwise it is skipped (until it is required in CI), since
the first build of the node image takes about 7 minutes after the control
plane's (see docs/testing.md). Where it cannot run
(not root, no Docker engine to install), it is skipped with the reason, or
fails when required.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from image.dockerctl import REPO, Docker, DockerError, unavailable_reason

from . import kindctl
from .kindctl import Cluster, wait_until

NAMESPACE = "keepvip-e2e"
APP_PORT = 8080
ADVERT_INTERVAL = 0.1


def _skip_or_fail(config: pytest.Config, reason: str) -> None:
    plugin = config.pluginmanager.get_plugin(str(REPO / "tests" / "conftest.py"))
    assert isinstance(plugin, ModuleType)
    plugin.skip_or_fail("e2e", reason)


def _wanted(config: pytest.Config) -> bool:
    plugin = config.pluginmanager.get_plugin(str(REPO / "tests" / "conftest.py"))
    assert isinstance(plugin, ModuleType)
    return "e2e" in plugin.required_tiers() or os.environ.get("KEEPVIP_E2E") == "1"


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
        status = self.virtualip(name).get("status") or {}
        ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
        master = status.get("master")
        return str(master) if master and ready and ready[0]["status"] == "True" else None

    def app_pod_on(self, node: str) -> str:
        pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", "app=web")["items"]
        (pod,) = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == node]
        return str(pod)

    def probe(self, duration: float, address: str | None = None, port: int = APP_PORT) -> Probe:
        """The client's probe, running: a GET to the VIP every 20 ms, one line per attempt."""
        return Probe(
            [*self.docker.argv("exec", self.client), "python", "-m", "keepvip_agent.lab.probe",
             address or self.vip, "--port", str(port), "--every", "0.02", "--timeout", "0.1",
             "--duration", str(duration)]
        )  # fmt: skip

    def answer(self, address: str | None = None, port: int = APP_PORT) -> str | None:
        out = self.docker(
            "exec", self.client, "python", "-m", "keepvip_agent.lab.probe", address or self.vip,
            "--port", str(port), "--duration", "0.01", "--timeout", "0.5", check=False,
        )  # fmt: skip
        who = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]
        return who[-1] if who and who[-1] != "-" else None


def app(image: str) -> dict[str, Any]:
    """One pod per worker (the host port keeps two off one node), Ready while /tmp/ready exists."""
    labels = {"app": "web"}
    serve = (
        f'touch /tmp/ready && exec python -m keepvip_agent.lab.responder "$NODE_NAME" {APP_PORT}'
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


# Package scope: the cluster is gone before pytest goes on to the other tiers,
# whose timing-sensitive tests should not share the CPU with four kubelets.
@pytest.fixture(scope="package")
def e2e(request: pytest.FixtureRequest) -> Iterator[E2E]:
    if not _wanted(request.config):
        pytest.skip(
            "the e2e tier runs with `make e2e` (KEEPVIP_REQUIRE_TIERS=e2e) or KEEPVIP_E2E=1: "
            "on a new machine its node image takes about 7 minutes to build (docs/testing.md)"
        )
    reason = unavailable_reason()
    if reason:
        _skip_or_fail(request.config, reason)
    host, started_daemon = kindctl.docker_daemon()
    docker = Docker("/usr/bin/docker", host)
    cluster: Cluster | None = None
    try:
        cluster = kindctl.up(docker)
        ref = _deployed_image(cluster)
        cluster.kubectl(
            "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180
        )
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.apply(app(ref))
        wait_until(
            "3 Ready app pods",
            lambda: (
                cluster.get("deployment", "web", "-n", NAMESPACE)["status"].get("readyReplicas")
                == 3
            ),
            180,
        )
        vip = str(cluster.subnet.broadcast_address - 10)
        cluster.apply(virtualip(vip, cluster.subnet.prefixlen))
        client = docker.run("--network", cluster.network, ref, "sleep", "infinity")
        found = E2E(cluster, docker, ref, vip, client)
        wait_until("the VirtualIP Ready with a master", found.master, 120)
        yield found
    except (DockerError, RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.fail(f"e2e setup failed: {exc}\n{detail[-4000:]}")
    finally:
        docker.cleanup()
        if cluster is not None and cluster.created and os.environ.get("KEEPVIP_KEEP_KIND") != "1":
            kindctl.down(docker)
        elif cluster is not None:
            # A cluster of `make kind-up`: left as found, less what the tests made and
            # broke. Nodes first: pods on a dead node never finish terminating.
            cluster.revive()
            cluster.kubectl(
                "delete", "namespace", NAMESPACE, "--ignore-not-found", check=False, timeout=180
            )
        if started_daemon and (cluster is None or cluster.created):
            subprocess.run([str(kindctl.KIND_HACK / "dockerd.sh"), "stop"], check=False)


def _deployed_image(cluster: Cluster) -> str:
    """The keepvip image the operator Deployment runs (the one up() loaded)."""
    dep = cluster.get(
        "deployment", "-n", kindctl.CHART_NAMESPACE, "-l", "app.kubernetes.io/name=keepvip"
    )
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
