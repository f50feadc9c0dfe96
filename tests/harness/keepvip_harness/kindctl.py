"""A kind cluster for the e2e tier: what it needs, made and removed by this session.

Why it cannot run, found by really trying (never guessed from the
environment): kind's node image is looked for locally and then pulled, and
a ``--privileged`` container (kind's nodes are privileged) is started. Each
failure becomes part of the skip reason with Docker's own words.

The cluster runs on a Docker network this session creates, on a
documentation subnet (``KIND_EXPERIMENTAL_DOCKER_NETWORK``), so the VIP is
an address the session owns and the network is removed by id at the end,
with the cluster (``kind delete cluster`` by its unique name), the client
container and the image.

kubectl runs inside the control-plane node (the node image ships it), so the
host needs only Docker, kind and helm.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dockerctl import HACK, Docker

KIND_NODE_ADMIN = "/etc/kubernetes/admin.conf"
# Documentation addresses (RFC 5737), away from the image tier's 192.0.2.128/25.
SUBNETS = ["198.51.100.0/24"]


def kind_binary() -> str:
    return subprocess.run(
        [str(HACK / "kind.sh")], check=True, capture_output=True, text=True, timeout=900
    ).stdout.strip()


def node_image() -> str:
    return subprocess.run(
        [str(HACK / "kind.sh"), "image"], check=True, capture_output=True, text=True, timeout=300
    ).stdout.strip()


def error_line(text: str) -> str:
    """Docker's error line from a failed command's stderr (not its usage hint)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line]
    return (errors or lines or [text.strip()])[0].removeprefix("docker: ")


def why_kind_cannot_run(docker: Docker, image: str, probe_image: str) -> list[str]:
    """Everything that stops kind on this machine, each in Docker's own words; [] if nothing."""
    reasons = []
    if not docker.succeeds("image", "inspect", image):
        pulled = subprocess.run(
            [docker.cli, "pull", image], capture_output=True, text=True, timeout=900, check=False
        )
        if pulled.returncode != 0:
            reasons.append(
                f"kind needs the node image {image}, which cannot be pulled: "
                f"{error_line(pulled.stderr)}"
            )
    privileged = subprocess.run(
        [docker.cli, "run", "--rm", "--privileged", "--label", "keepvip.test=1", probe_image, "true"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if privileged.returncode != 0:
        reasons.append(
            "kind runs its nodes as --privileged containers, which this Docker engine refuses: "
            f"{error_line(privileged.stderr)}"
        )
    return reasons


@dataclass
class KindCluster:
    """A kind cluster of one control plane and three workers on a network of our own."""

    docker: Docker
    kind: str
    node_image: str
    workdir: Path
    name: str = field(default_factory=lambda: f"kv-e2e-{secrets.token_hex(3)}")
    network: str = ""
    subnet: ipaddress.IPv4Network | None = None
    created: bool = False

    CONFIG = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {"role": "control-plane"},
            {"role": "worker"},
            {"role": "worker"},
            {"role": "worker"},
        ],
        # Kubelets since 1.35 refuse cgroup v1 hosts unless told otherwise, and
        # CI machines like this project's still run cgroup v1.
        "kubeadmConfigPatches": ["kind: KubeletConfiguration\nfailCgroupV1: false\n"],
    }

    def create(self) -> None:
        self.network, self.subnet = self.docker.network("kv-e2e", candidates=SUBNETS)
        config = self.workdir / "kind.yaml"
        config.write_text(json.dumps(self.CONFIG))
        self.created = True  # from here on, delete() has something to remove
        self._kind(
            "create", "cluster", "--name", self.name, "--image", self.node_image,
            "--config", str(config), "--kubeconfig", str(self.workdir / "kubeconfig"),
            "--wait", "300s",
            env={"KIND_EXPERIMENTAL_DOCKER_NETWORK": self.docker.inspect(self.network)["Name"]},
            timeout=900,
        )  # fmt: skip

    def delete(self) -> None:
        if self.created:
            self._kind("delete", "cluster", "--name", self.name, check=False, timeout=300)
            self.created = False

    def load(self, image: str) -> None:
        self._kind("load", "docker-image", image, "--name", self.name, timeout=600)

    def _kind(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
    ) -> str:
        import os

        proc = subprocess.run(
            [self.kind, *args], capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"kind {' '.join(args)}: {proc.stderr[-4000:]}")
        return proc.stdout

    # -- the nodes ----------------------------------------------------------------------------

    @property
    def control_plane(self) -> str:
        return f"{self.name}-control-plane"

    def node_containers(self) -> list[str]:
        """Names of the node containers (node name == container name in kind)."""
        out = self.docker(
            "ps",
            "-a",
            "--filter",
            f"label=io.x-k8s.kind.cluster={self.name}",
            "--format",
            "{{.Names}}",
        )
        return sorted(out.split())

    def workers(self) -> list[str]:
        return [n for n in self.node_containers() if n != self.control_plane]

    def running(self, node: str) -> bool:
        return bool(self.docker.inspect(node)["State"]["Running"])

    def addresses(self, node: str) -> set[str]:
        """IPv4 addresses on the node (its host network, where the agents put the VIP)."""
        out = self.docker("exec", node, "ip", "-4", "-o", "addr", "show")
        return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}

    def vip(self) -> str:
        """An address of the cluster's network that Docker's IPAM will not hand out soon."""
        assert self.subnet is not None
        return str(self.subnet.broadcast_address - 10)

    # -- the API, through kubectl in the control-plane node ---------------------------------

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> str:
        proc = subprocess.run(
            [self.docker.cli, "exec", "-i", self.control_plane, "kubectl", "--kubeconfig", KIND_NODE_ADMIN, *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin="\n---\n".join(json.dumps(o) for o in objects),
        )

    def get(self, *args: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return doc


def wait_until(what: str, check: Any, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except RuntimeError as exc:  # kubectl failed: not yet
            last = exc
        if last and not isinstance(last, RuntimeError):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
