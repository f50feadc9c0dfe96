"""The kind cluster of `make kind-up` and of the e2e tier, made from what builds here.

pytest-kind's ``KindCluster`` creates (or reuses, by name) the cluster with
the kind and kubectl built here (``hack/image/kind.sh``, ``hack/kind/build.sh``)
and the node image assembled by ``hack/kind/build.sh``; kind's nodes run on
the kind tier's own Docker daemon (``hack/kind/dockerd.sh``, which lets
``--privileged`` work where CAP_SYS_RESOURCE is outside the bounding set).
What kind cannot do here is done around it: the Docker network on a
documentation subnet is made first (``KIND_EXPERIMENTAL_DOCKER_NETWORK``), and
pod networking comes from Debian's CNI plugins (``hack/kind/net.sh``) since
kindnetd cannot be built.

One cluster, ``keepvip``, on network ``keepvip-kind``: 198.51.100.0/25, nodes
and clients from 198.51.100.0/26, VIPs from the rest (the daemon's own bridge
has 198.51.100.128/26; the image tier's networks are in 192.0.2.128/25 and the
lab's in network namespaces, so the tiers never share a route). The network is
dual-stack, as kind's own is: 2001:db8:4b1d::/64, nodes and clients from its
first /112, so that more VIPs fit than the 61 of the IPv4 range (the scale
test's 150 VirtualIPs). The cluster itself stays IPv4 (node IPs, pods, Services).
``up()`` is idempotent: a second call reuses the cluster, rebuilds the keepvip
image (Docker's cache makes that quick when nothing changed), reloads it and
upgrades the chart. ``down()`` removes the cluster, the network and the daemon,
each by name, and only what this module made.

    python -m keepvip_harness.kindctl up | down | net     (`make kind-up`)
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dockerctl import Docker, build_image
from .paths import REPO

KIND_HACK = REPO / "hack" / "kind"
NAME = "keepvip"
NETWORK = "keepvip-kind"
SUBNET = ipaddress.IPv4Network("198.51.100.0/25")
# Docker's IPAM hands out node and client addresses from here only.
NODE_RANGE = "198.51.100.0/26"
SUBNET6 = ipaddress.IPv6Network("2001:db8:4b1d::/64")
NODE_RANGE6 = "2001:db8:4b1d::/112"
# VIP blocks by user, apart from NODE_RANGE(6): test_kind_scale.py's. The other e2e tests
# and the benchmark take single addresses counted down from the IPv4 broadcast address
# (.97 and up).
SCALE_VIPS4 = ipaddress.IPv4Network("198.51.100.64/27")
SCALE_VIPS6 = ipaddress.IPv6Network("2001:db8:4b1d::1:0/112")
E2E_GRANT = {
    "apiVersion": "keepvip.io/v1alpha1",
    "kind": "VirtualIPPool",
    "metadata": {"name": "keepvip-e2e-grant"},
    "spec": {
        "addresses": [f"{SUBNET[0]}-{SUBNET[-1]}", str(SUBNET6)],
        "usedBy": ["VirtualIPs"],
    },
}
"""The e2e VirtualIPs' addresses, granted to every namespace (never to a Service)."""
STATE = Path(
    os.environ.get("KEEPVIP_KIND_DIR")
    or Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp", "keepvip-kind")
)
KUBECONFIG = STATE / "kubeconfig"
CHART_NAMESPACE = "keepvip-system"
RELEASE = "keepvip"


def _script(path: Path, *args: str, timeout: float = 3600) -> str:
    proc = subprocess.run(
        [str(path), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{path.relative_to(REPO)} {' '.join(args)} failed:\n{proc.stderr[-6000:]}"
        )
    return proc.stdout.strip()


@contextlib.contextmanager
def kind_env(host: str) -> Iterator[None]:
    """DOCKER_HOST (and kind's network) in this process's environment for the block only.

    kind, pytest-kind and the image build (hack/image/build.sh) find the
    daemon there; outside these blocks the rest of a pytest session (the image
    tier) keeps the machine's default daemon.
    """
    saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "KIND_EXPERIMENTAL_DOCKER_NETWORK")}
    os.environ["DOCKER_HOST"] = host
    os.environ["KIND_EXPERIMENTAL_DOCKER_NETWORK"] = NETWORK
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def docker_daemon() -> tuple[str, bool]:
    """The kind tier's Docker daemon, started if it does not answer; (DOCKER_HOST, started by us)."""
    host = _script(KIND_HACK / "dockerd.sh", "env").split("=", 1)[1]
    answered = (
        subprocess.run(
            ["/usr/bin/docker", "-H", host, "info"], capture_output=True, timeout=30, check=False
        ).returncode
        == 0
        if Path("/usr/bin/docker").exists()
        else False
    )
    if not answered:
        _script(KIND_HACK / "dockerd.sh", "ensure", timeout=900)
    return host, not answered


def node_image() -> str:
    """The node image (built once, ~15 min cold; cached by content key)."""
    return _script(KIND_HACK / "build.sh", "build").splitlines()[-1]


def kind_binary() -> str:
    return _script(REPO / "hack" / "image" / "kind.sh", timeout=900)


def kubectl_binary() -> str:
    """The node image's kubectl, built if missing.

    The node image can outlive the build cache (a Docker image kept, ``~/.cache``
    removed): then ``build.sh build`` reuses the image and builds nothing, and a
    path into the cache named a kubectl that did not exist (every kubectl call of
    net.sh failed until its timeout, the e2e tier's setup error on cold runs).
    """
    kubectl = (
        Path(_script(KIND_HACK / "build.sh", "binaries", timeout=1800).splitlines()[-1]) / "kubectl"
    )
    if not kubectl.is_file():
        raise RuntimeError(f"hack/kind/build.sh binaries made no {kubectl}")
    return str(kubectl)


def helm_binary() -> str:
    """The pinned helm of the control-plane tier's build."""
    bin_dir = _script(REPO / "hack" / "controlplane" / "build.sh", "bin-dir")
    helm = Path(bin_dir) / "helm"
    if not helm.exists():
        raise RuntimeError("no helm: run `make controlplane-build` (it builds the pinned helm)")
    return str(helm)


@dataclass
class Cluster:
    """The running cluster: pytest-kind's KindCluster plus the pieces kind cannot do here."""

    docker: Docker
    kind: Any  # pytest_kind.KindCluster (untyped package)
    kubectl_bin: str
    created: bool = False  # by this call of up(): then its caller removes it

    @property
    def name(self) -> str:
        return NAME

    @property
    def network(self) -> str:
        return NETWORK

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return SUBNET

    @property
    def control_plane(self) -> str:
        return f"{NAME}-control-plane"

    # -- the nodes ----------------------------------------------------------------------------

    def node_containers(self) -> list[str]:
        """Names of the node containers (node name == container name in kind), dead ones too."""
        out = self.docker(
            "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={NAME}", "--format", "{{.Names}}"
        )
        return sorted(out.split())

    def workers(self) -> list[str]:
        return [n for n in self.node_containers() if n != self.control_plane]

    def running(self, node: str) -> bool:
        return bool(self.docker.inspect(node)["State"]["Running"])

    def addresses(self, node: str, family: int = 4) -> set[str]:
        """Addresses of ``family`` (4, 6; 0: both) on the node (its host network, where the
        agents put the VIPs)."""
        flag = [f"-{family}"] if family else []
        out = self.docker("exec", node, "ip", *flag, "-o", "addr", "show")
        return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}

    def net(self) -> None:
        """Pod networking on every running node (again after a node restarted)."""
        with kind_env(self.docker.host or ""):
            _script(KIND_HACK / "net.sh", NAME, self.kubectl_bin, str(KUBECONFIG), timeout=300)

    def revive(self) -> None:
        """Start node containers that were killed, and wait for every node Ready again."""
        dead = [n for n in self.node_containers() if not self.running(n)]
        for node in dead:
            self.docker("start", node)
        if dead:
            wait_until("the restarted nodes' kubelets to register", self._all_registered, 180)
            self.net()
        wait_until("every node Ready", self.all_ready, 300)

    def _all_registered(self) -> bool:
        return len(self.get("nodes")["items"]) == len(self.node_containers())

    def all_ready(self) -> bool:
        nodes = self.get("nodes")["items"]
        return len(nodes) == len(self.node_containers()) and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
            for n in nodes
        )

    # -- the API ------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> str:
        proc = subprocess.run(
            [self.kubectl_bin, "--kubeconfig", str(KUBECONFIG), *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
        return proc.stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-",
            stdin="\n---\n".join(json.dumps(o) for o in objects),
        )  # fmt: skip

    def get(self, *args: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return doc

    # -- keepvip ------------------------------------------------------------------------------

    def install_keepvip(self) -> str:
        """Build the image the CI way, load it into the nodes, install or upgrade the chart.

        The tag is a key of what goes into the image (image_key), so a second
        kind-up with unchanged code builds nothing and leaves the operator as it
        is, and a changed one rolls the operator (and, through it, the agents).
        """
        ref = f"keepvip:kind-{image_key()}"
        if not self.docker.succeeds("image", "inspect", ref):
            with kind_env(self.docker.host or ""):
                build_image(ref)
            # Older builds of this scheme, in the kind tier's own daemon only.
            for old in self.docker(
                "images", "keepvip", "--format", "{{.Repository}}:{{.Tag}}"
            ).split():
                if old.startswith("keepvip:kind") and old != ref:
                    self.docker("image", "rm", old, check=False)
        with kind_env(self.docker.host or ""):
            self.kind.load_docker_image(ref)
        repository, _, tag = ref.rpartition(":")
        # Helm installs CRDs but never upgrades them: a kind cluster kept from an earlier
        # run gets them as docs/install.md's upgrade does.
        if self.kubectl("get", "crd", "virtualips.keepvip.io", "--ignore-not-found").strip():
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                         str(REPO / "charts" / "keepvip" / "crds"))  # fmt: skip
        helm_home = STATE / "helm"
        subprocess.run(
            [helm_binary(), "upgrade", "--install", RELEASE, str(REPO / "charts" / "keepvip"),
             "--namespace", CHART_NAMESPACE, "--create-namespace",
             "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
             "--wait", "--timeout", "300s"],
            check=True, capture_output=True, text=True, timeout=400,
            env={**os.environ, "KUBECONFIG": str(KUBECONFIG),
                 **{f"HELM_{k}_HOME": str(helm_home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}},
        )  # fmt: skip
        # Address grants are on (the chart's default): as its NOTES ask, the admin grants
        # the VirtualIPs their addresses, here the tier's networks to every namespace.
        self.apply(E2E_GRANT)
        return ref

    def operator_ready(self) -> bool:
        dep = self.get("deployment", "-n", CHART_NAMESPACE, "-l", "app.kubernetes.io/name=keepvip")
        return bool(dep["items"]) and all(
            (d["status"].get("readyReplicas") or 0) == d["spec"]["replicas"] for d in dep["items"]
        )


IMAGE_ROOTS = ("agent", "operator", "crds", "Dockerfile", "pyproject.toml", "hack/image")


def image_key() -> str:
    """A hash of the files the keepvip image is built from (the build's label dates aside)."""
    digest = hashlib.sha256()
    for root in IMAGE_ROOTS:
        path = REPO / root
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc" or ".egg-info" in str(f):
                continue
            digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _kind_cluster(kind: str, kubectl: str, image: str) -> Any:
    from pytest_kind import KindCluster  # type: ignore[import-untyped]

    STATE.mkdir(parents=True, exist_ok=True)
    # KindCluster makes ./.pytest-kind/<name> when constructed: keep it out of the work tree.
    with contextlib.chdir(STATE):
        return KindCluster(
            NAME,
            kubeconfig=KUBECONFIG,
            image=image,
            kind_path=Path(kind),
            kubectl_path=Path(kubectl),
        )


def _exists(docker: Docker) -> bool:
    return bool(docker("ps", "-a", "-q", "--filter", f"label=io.x-k8s.kind.cluster={NAME}").strip())


def _dual_stack(docker: Docker) -> bool:
    """Whether the existing network has the IPv6 block (networks made before it had none)."""
    subnets = docker("network", "inspect", NETWORK, "--format", "{{json .IPAM.Config}}")
    return str(SUBNET6) in {c.get("Subnet") for c in json.loads(subnets) or []}


def up(docker: Docker) -> Cluster:
    """The cluster, created if missing, with keepvip installed and its operator Ready."""
    image = node_image()
    kind, kubectl = kind_binary(), kubectl_binary()
    existed = _exists(docker)
    if docker.succeeds("network", "inspect", NETWORK) and not _dual_stack(docker):
        if existed:
            raise RuntimeError(
                f"the network {NETWORK} predates its IPv6 block {SUBNET6}: "
                "remove the cluster with `make kind-down` and run `make kind-up` again"
            )
        docker("network", "rm", NETWORK)
    if not docker.succeeds("network", "inspect", NETWORK):
        docker(
            "network", "create", "--driver", "bridge", "--label", "keepvip.kind=1",
            "--subnet", str(SUBNET), "--ip-range", NODE_RANGE,
            "--gateway", str(SUBNET.network_address + 1),
            "--ipv6", "--subnet", str(SUBNET6), "--ip-range", NODE_RANGE6,
            "--gateway", str(SUBNET6.network_address + 1),
            "-o", "com.docker.network.bridge.name=keepvipkind1", NETWORK,
        )  # fmt: skip
    kc = _kind_cluster(kind, kubectl, image)
    cluster = Cluster(docker, kc, kubectl, created=not existed)
    try:
        started = time.monotonic()
        with kind_env(docker.host or ""):
            if existed:
                # Reused: its kubeconfig again (this may be another state dir), before
                # KindCluster reads it.
                KUBECONFIG.write_text(
                    subprocess.run(
                        [kind, "get", "kubeconfig", "--name", NAME],
                        check=True, capture_output=True, text=True, timeout=60,
                    ).stdout
                )  # fmt: skip
            kc.create(config_file=KIND_HACK / "cluster.yaml")
        if existed:
            cluster.revive()  # nodes a test or a benchmark killed
        else:
            cluster.net()
            wait_until("every node Ready", cluster.all_ready, 300)
            print(f"kind cluster {NAME} up in {time.monotonic() - started:.0f} s", file=sys.stderr)
        cluster.install_keepvip()
        wait_until("the operator Ready", cluster.operator_ready, 300)
    except BaseException:
        if not existed:  # half made by this call: remove it (kind removed its own nodes)
            down(docker)
        raise
    return cluster


def down(docker: Docker) -> None:
    """Remove the cluster and the network, by name (nothing else is touched)."""
    if _exists(docker):
        with kind_env(docker.host or ""):
            subprocess.run(
                [kind_binary(), "delete", "cluster", "--name", NAME], check=True, timeout=300
            )
    if docker.succeeds("network", "inspect", NETWORK):
        docker("network", "rm", NETWORK)
    KUBECONFIG.unlink(missing_ok=True)


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


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command not in {"up", "down", "net"}:
        print("usage: python -m keepvip_harness.kindctl up|down|net", file=sys.stderr)
        return 2
    host, _ = docker_daemon()
    docker = Docker("/usr/bin/docker", host)
    if command == "up":
        up(docker)
        print(f"DOCKER_HOST={host}")
        print(f"KUBECONFIG={KUBECONFIG}")
    elif command == "net":
        Cluster(docker, None, kubectl_binary()).net()
    else:
        down(docker)
        _script(KIND_HACK / "dockerd.sh", "stop")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
