"""The image, built from the Dockerfile by the CI build path, does what the chart and users expect.

Both entry points start; the operator's default user is not root and the
final stage carries no build tools; and two agent containers on a private
Docker network, each with only NET_ADMIN and NET_RAW (the capabilities the
operator's DaemonSet grants, no --privileged), elect a master, bind the VIP
and fail over when the master's container is killed. The VIP is checked
from both sides: inside the containers (their addresses, through
``docker exec``) and from the host, which reaches the VIP over the bridge
and asks whoever answers for its name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_api import __version__
from keepvip_harness.dockerctl import Docker, Image, http_json, wait_for

REPO = Path(__file__).resolve().parents[2]
SIZE_TARGET = 150_000_000
# Documentation addresses only (RFC 5737): a /27 per test network, so parallel
# sessions on one daemon pick different ones.
SUBNETS = [f"192.0.2.{base}/27" for base in (128, 160, 192, 224)]
METRICS_PORT = 9650
INTERVAL = 0.1
# docs/tuning.md: a hard failover at 100 ms takes about 0.35 s (3 intervals plus
# skew); the rest is room for a loaded 2-core CI machine and the host's ARP update.
FAILOVER_BOUND = 3.0
AGENT_SECURITY = (
    "--user", "0",
    "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
    "--security-opt", "no-new-privileges",
    "--read-only", "--tmpfs", "/tmp",
)  # fmt: skip
ADDRESSES = (
    "from pyroute2 import IPRoute\n"
    "with IPRoute() as ip:\n"
    "    print(' '.join(a.get_attr('IFA_ADDRESS') for a in ip.get_addr(family=2)))\n"
)


def test_agent_starts_and_checks_a_config(keepvip_image: Image, docker: Docker) -> None:
    rc, out = docker.run_once(keepvip_image.ref, "keepvip-agent", "--version")
    assert (rc, out.strip()) == (0, __version__)

    example = REPO / "examples" / "standalone-web.yaml"
    rc, out = docker.run_once(
        "-v", f"{example}:/etc/keepvip/vip.yaml:ro", keepvip_image.ref,
        "keepvip-agent", "--check", "--config", "/etc/keepvip/vip.yaml",
    )  # fmt: skip
    assert rc == 0, out
    assert "1 VirtualIP(s) valid" in out


def test_agent_rejects_a_bad_config_before_touching_anything(
    keepvip_image: Image, docker: Docker, tmp_path: Path
) -> None:
    bad = yaml.safe_load((REPO / "examples" / "standalone-web.yaml").read_text())
    bad["spec"]["virtualRouterID"] = 300
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    rc, out = docker.run_once(
        "-v", f"{tmp_path / 'bad.yaml'}:/bad.yaml:ro", keepvip_image.ref,
        "keepvip-agent", "--config", "/bad.yaml",
    )  # fmt: skip
    assert rc == 2, out
    assert "spec.virtualRouterID" in out


def test_operator_starts_as_non_root(keepvip_image: Image, docker: Docker) -> None:
    rc, out = docker.run_once(keepvip_image.ref, "keepvip-operator", "--help")
    assert rc == 0, out
    assert "--agent-image" in out and "KEEPVIP_" in out
    rc, out = docker.run_once(keepvip_image.ref, "keepvip-operator", "--version")
    assert (rc, out.strip()) == (0, __version__)
    config = docker.inspect(keepvip_image.ref)["Config"]
    assert config["User"] == "65532:65532"
    rc, out = docker.run_once(keepvip_image.ref, "id", "-u")
    assert (rc, out.strip()) == (0, "65532")


def test_final_stage_is_small_labelled_and_has_no_build_tools(
    keepvip_image: Image, docker: Docker
) -> None:
    info = docker.inspect(keepvip_image.ref)
    labels = info["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == "keepvip"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    probe = (
        "import importlib.util as u, shutil\n"
        "print([m for m in ('pip', 'setuptools', 'wheel') if u.find_spec(m)],"
        " [t for t in ('gcc', 'cc', 'strip', 'ld', 'make') if shutil.which(t)])\n"
    )
    rc, out = docker.run_once(keepvip_image.ref, "python", "-c", probe)
    assert (rc, out.strip()) == (0, "[] []")
    size = int(info["Size"])
    built = "" if keepvip_image.built_in is None else f", built in {keepvip_image.built_in:.0f} s"
    print(f"image {keepvip_image.ref}: {size / 1e6:.1f} MB{built}")
    assert size <= SIZE_TARGET, f"the image is {size / 1e6:.1f} MB, over the 150 MB target"


# -- two agents on a private network -----------------------------------------------------------


def vip_config(vip: str, prefix: int) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web"},
        "spec": {
            "addresses": [f"{vip}/{prefix}"],
            "virtualRouterID": 51,
            "advertInterval": f"{round(INTERVAL * 1000)}ms",
            "nodes": [{"name": "n1", "priority": 150}, {"name": "n2", "priority": 100}],
            # n1 must end up master whichever container starts first (the default,
            # preempt: false, would leave the VIP with n2 if n2 came up first).
            "preempt": True,
        },
    }


def addresses_inside(docker: Docker, container: str) -> set[str]:
    return set(docker("exec", container, "python", "-c", ADDRESSES).split())


def who_answers(vip: str) -> str | None:
    """The node name of the agent that answers on the VIP (its /status), or None."""
    status = http_json(f"http://{vip}:{METRICS_PORT}/status", timeout=0.2)
    return str(status["node"]) if status and status.get("node") else None


@dataclass
class Pair:
    """Two agents, n1 (priority 150) and n2 (100), on a private network."""

    vip: str
    containers: dict[str, str]
    ips: dict[str, str]

    def instance(self, node: str) -> dict[str, Any] | None:
        status = http_json(f"http://{self.ips[node]}:{METRICS_PORT}/status")
        if not status or not status.get("instances"):
            return None
        found: dict[str, Any] = status["instances"][0]
        return found

    def state(self, node: str) -> tuple[str, bool] | None:
        found = self.instance(node)
        return (found["state"], found["bound"]) if found else None

    def dump(self, docker: Docker) -> None:
        """Logs and /status of both agents; pytest shows them when the test fails."""
        for name, cid in self.containers.items():
            print(f"----- {name} ({cid[:12]})\n{docker.logs(cid)[-4000:]}")
            print(json.dumps(self.instance(name), indent=1))


@pytest.fixture
def pair(keepvip_image: Image, docker: Docker, tmp_path: Path) -> Iterator[Pair]:
    network, net = docker.network("kvimg", candidates=SUBNETS)
    vip = str(net.network_address + 20)
    ips = {"n1": str(net.network_address + 11), "n2": str(net.network_address + 12)}
    config = tmp_path / "vip.yaml"
    config.write_text(yaml.safe_dump(vip_config(vip, net.prefixlen)))
    containers = {}
    for name, ip in ips.items():
        containers[name] = docker.run(
            "--network", network, "--ip", ip, *AGENT_SECURITY,
            "-v", f"{config}:/etc/keepvip/vip.yaml:ro", keepvip_image.ref,
            "keepvip-agent", "--config", "/etc/keepvip/vip.yaml", "--node", name,
            "--metrics-port", str(METRICS_PORT),
        )  # fmt: skip
    found = Pair(vip, containers, ips)
    try:
        wait_for("n1 master with the VIP bound", lambda: found.state("n1") == ("Master", True), 30)
        wait_for("n2 backup", lambda: found.state("n2") == ("Backup", False), 10)
        yield found
    except BaseException:
        found.dump(docker)
        raise


def test_two_agent_containers_elect_bind_and_fail_over(pair: Pair, docker: Docker) -> None:
    # Elected: the higher priority is master and holds the VIP; the other does not.
    assert pair.vip in addresses_inside(docker, pair.containers["n1"])
    assert pair.vip not in addresses_inside(docker, pair.containers["n2"])
    assert wait_for("the VIP to answer", lambda: who_answers(pair.vip), 10) == "n1"

    # The master's container dies outright: no priority-0 advertisement, no cleanup.
    # Timed from before the call: `docker kill` returns only once the container is gone.
    killed = time.monotonic()
    docker("kill", pair.containers["n1"])
    wait_for("n2 to answer on the VIP", lambda: who_answers(pair.vip) == "n2", 15, every=0.01)
    outage = time.monotonic() - killed
    print(f"VIP answered by n2 {outage:.2f} s after `docker kill` of the master")
    assert pair.state("n2") == ("Master", True)
    assert pair.vip in addresses_inside(docker, pair.containers["n2"])
    assert outage <= FAILOVER_BOUND, f"failover took {outage:.2f} s"


def test_sigterm_hands_over_and_exits_0(pair: Pair, docker: Docker) -> None:
    """`docker stop` sends SIGTERM, as Kubernetes does on pod deletion: a graceful handover."""
    docker("kill", "--signal", "TERM", pair.containers["n1"])
    wait_for("n2 master", lambda: pair.state("n2") == ("Master", True), 10)
    state = wait_for(
        "n1 to exit",
        lambda: (s := docker.inspect(pair.containers["n1"])["State"])["Running"] is False and s,
        30,
    )
    assert state["ExitCode"] == 0, docker.logs(pair.containers["n1"])
    last = (pair.instance("n2") or {}).get("lastTransition") or {}
    print(f"n2 took over: {last.get('reason')}")
