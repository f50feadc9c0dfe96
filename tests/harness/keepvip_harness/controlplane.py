"""A real Kubernetes control plane on loopback, built from source, for tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run
as host processes on 127.0.0.1 ports chosen at start. kwok stands in for the
kubelets: it keeps a few fake nodes (kv-node-1..3) Ready and plays pod
lifecycles, except for pods carrying the launch label, which the pod
launcher (podlauncher.py) runs for real.

The design choice that is not obvious: nothing here is faked above the
kubelet. Authentication is by certificates from a CA made at start,
authorization is RBAC, service-account tokens are signed and issued by the
API server, and the controller manager runs each controller under its own
service account. So a test that acts as a ServiceAccount
(``service_account_kubeconfig``) gets exactly the permissions its Role
grants, and a DaemonSet, a garbage collection or a 403 behaves as on a
real cluster.

Also a command line for ``make cluster-up`` / ``make cluster-down``:
``python -m keepvip_harness.controlplane up|down --state-dir DIR``.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import pki, procs, rest
from .paths import REPO

logger = logging.getLogger(__name__)

BUILD_SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
KWOK_STAGES = Path(__file__).resolve().parent / "kwok-stages.yaml"

# Pods with this label are run by the pod launcher; kwok leaves them alone.
LAUNCH_LABEL = "keepvip.test/launch"
# Documentation ranges only (RFC 5737): these are API data, never dialled
# from the host. Pods kwok manages get 203.0.113.128/25 (kwok-stages.yaml).
SERVICE_CIDR = "203.0.113.0/25"
KUBERNETES_SERVICE_IP = "203.0.113.1"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "keepvip-test-admin"
START_TIMEOUT = 120.0
STATE_PREFIX = "keepvip-cp-"


@dataclass(frozen=True)
class FakeNode:
    """A kwok node; ``internal_ip`` is what pods on it see as status.hostIP."""

    name: str
    internal_ip: str


DEFAULT_NODES = tuple(FakeNode(f"kv-node-{i}", f"198.51.100.{10 + i}") for i in (1, 2, 3))


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or reached."""


def find_bin_dir() -> tuple[Path | None, str]:
    """The directory with a complete build for the pinned versions, or why not."""
    try:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "bin-dir"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"cannot locate the control-plane build: {exc}"
    bin_dir = Path(out)
    if not (bin_dir / ".complete").exists():
        return None, (
            f"control-plane binaries are not built (no complete build in {bin_dir}); "
            "run `make controlplane-build` (about 11 min cold on 2 cores)"
        )
    return bin_dir, ""


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ControlPlane:
    """One running control plane; start it with ``start()`` or ``running()``.

    ``detach=True`` is for ``make cluster-up``: the processes outlive this
    Python process and ``stop_state_dir`` stops them later by their pids.
    """

    bin_dir: Path
    nodes: tuple[FakeNode, ...] = DEFAULT_NODES
    launch_label: str = LAUNCH_LABEL
    service_cidr: str = SERVICE_CIDR
    """``--service-cluster-ip-range``; a benchmark with more Services than this /25 holds
    passes a dual-stack pair (its IPv6 half for IPv6 Services)."""
    state_dir: Path | None = None
    detach: bool = False
    ports: dict[str, int] = field(default_factory=dict)
    _procs: list[tuple[procs.Recorded, subprocess.Popen[bytes]]] = field(default_factory=list)
    _pki: pki.ClusterPKI | None = None
    _owns_state_dir: bool = False
    _attached: bool = False

    @classmethod
    def attach(cls, state_dir: Path) -> ControlPlane:
        """A handle on a control plane started earlier (``make cluster-up``).

        Its ``stop()`` leaves that control plane running.
        """
        state = json.loads((state_dir / "state.json").read_text())
        cp = cls(
            bin_dir=Path(state["bin_dir"]),
            nodes=tuple(FakeNode(n["name"], n["internal_ip"]) for n in state["nodes"]),
            launch_label=state["launch_label"],
            state_dir=state_dir,
            ports=dict(state["ports"]),
        )
        cp._attached = True
        return cp

    # ------------------------------------------------------------ accessors

    @property
    def dir(self) -> Path:
        if self.state_dir is None:
            raise ControlPlaneError("control plane not started")
        return self.state_dir

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def ca_cert(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        """A kubeconfig for a member of system:masters (cluster-admin)."""
        return self.dir / "admin.kubeconfig"

    def binary(self, name: str) -> Path:
        """A built tool, e.g. ``binary("helm")``, of the pinned version."""
        return self.bin_dir / name

    def pid(self, component: str) -> int:
        """The host pid of "etcd", "kube-apiserver", ..., e.g. to SIGSTOP it in a test."""
        for rec, _ in self._procs:
            if rec.name == component:
                return rec.pid
        # Attached to `make cluster-up`'s control plane: its state file knows.
        for p in json.loads((self.dir / "state.json").read_text())["processes"]:
            if p["name"] == component:
                return int(p["pid"])
        raise KeyError(f"no control-plane component {component!r}")

    def log_path(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        t0 = time.monotonic()
        if self.state_dir is None:
            remove_stale_state_dirs()
            self.state_dir = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
            self._owns_state_dir = True
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                self._start()
            except ControlPlaneError as exc:
                # Ports are picked free but bound seconds later; an outgoing
                # connection may take one meanwhile. One retry with fresh
                # ports settles that; a real fault fails again the same way.
                logger.warning("control plane start failed, retrying once: %s", exc)
                self._stop_processes()
                self._start()
        except BaseException:
            self.stop()
            raise
        logger.info("control plane up in %.1fs at %s", time.monotonic() - t0, self.server)

    def _start(self) -> None:
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)  # a retry starts afresh
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"):
            self.ports[name] = free_port()
        self._pki = pki.create_pki(
            self.dir / "pki", apiserver_ips=["127.0.0.1", KUBERNETES_SERVICE_IP]
        )
        self._write_kubeconfigs()
        self._launch("etcd", self._etcd_argv())
        self._wait("etcd", self._etcd_healthy)
        self._launch("kube-apiserver", self._apiserver_argv())
        self._wait("kube-apiserver", lambda: self._https_ok(self.ports["apiserver"], "/readyz"))
        self._launch("kube-controller-manager", self._controller_manager_argv())
        self._launch("kube-scheduler", self._scheduler_argv())
        self._launch("kwok", self._kwok_argv())
        self._save_state()
        self._create_nodes()
        for comp, port in (
            ("kube-controller-manager", self.ports["controller-manager"]),
            ("kube-scheduler", self.ports["scheduler"]),
        ):
            self._wait(comp, functools.partial(self._https_ok, port, "/healthz", client_cert=False))
        self._wait("kwok", self._nodes_ready)
        # The service-account controller's first act; pods need it to exist.
        self._wait("kube-controller-manager", self._default_sa_exists)

    def stop(self) -> None:
        """Stop every process we started, newest first, and remove the state."""
        if self._attached:
            return
        self._stop_processes()
        if self.state_dir is not None:
            (self.state_dir / "state.json").unlink(missing_ok=True)
        if self._owns_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _stop_processes(self) -> None:
        for rec, proc in reversed(self._procs):
            procs.stop(rec, proc=proc)
        self._procs.clear()

    @contextmanager
    def running(self) -> Iterator[ControlPlane]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # ------------------------------------------------------------ clients

    def admin_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as cluster-admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.admin_kubeconfig))  # type: ignore[no-untyped-call]

    def admin_rest(self) -> rest.Rest:
        """The harness's own JSON client, as cluster-admin."""
        pki_dir = self.dir / "pki"
        return rest.Rest(
            self.server, self.ca_cert, cert=(pki_dir / "admin.crt", pki_dir / "admin.key")
        )

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 86400,
        bound_pod: tuple[str, str] | None = None,
    ) -> str:
        """A token the API server issues (TokenRequest) for that ServiceAccount.

        ``bound_pod`` (name, uid) binds it to a pod, as the kubelet does for
        a pod's projected token: it stops working when the pod is deleted.
        """
        spec: dict[str, Any] = {"audiences": [SA_ISSUER], "expirationSeconds": expiration_seconds}
        if bound_pod is not None:
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": bound_pod[0],
                "uid": bound_pod[1],
            }
        resp = self.admin_rest().post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        token: str = resp["status"]["token"]
        return token

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that acts as exactly that ServiceAccount, nothing more."""
        path = self.dir / "sa" / f"{namespace}.{name}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        user = {"token": self.service_account_token(namespace, name)}
        self._write_kubeconfig(path, f"system:serviceaccount:{namespace}:{name}", user)
        return path

    def service_account_client(self, namespace: str, name: str) -> Any:
        """A ``kubernetes.client.ApiClient`` acting as that ServiceAccount."""
        from kubernetes import config

        path = self.service_account_kubeconfig(namespace, name)
        return config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]

    def set_node_address(self, node: str, internal_ip: str) -> None:
        """Make ``internal_ip`` the node's InternalIP (what its pods see as hostIP)."""
        body = {"status": {"addresses": _addresses(node, internal_ip)}}
        self.admin_rest().merge_patch(f"/api/v1/nodes/{node}/status", body)

    # ------------------------------------------------------------ processes

    def _launch(self, name: str, argv: list[str]) -> None:
        exe = str(self.bin_dir / argv[0])
        proc = procs.start(
            name, [exe, *argv[1:]], log=self.log_path(name), die_with_parent=not self.detach
        )
        self._procs.append((procs.Recorded(name, proc.pid, exe), proc))

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for rec, proc in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{rec.name} exited with {proc.returncode}:\n"
                        + procs.tail(self.log_path(rec.name))
                    )
            with suppress(Exception):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} not ready after {timeout:.0f}s:\n" + procs.tail(self.log_path(name))
                )
            time.sleep(0.1)

    def _save_state(self) -> None:
        state = {
            "bin_dir": str(self.bin_dir),
            "ports": self.ports,
            "nodes": [{"name": n.name, "internal_ip": n.internal_ip} for n in self.nodes],
            "launch_label": self.launch_label,
            "server": self.server,
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "processes": [{"name": r.name, "pid": r.pid, "exe": r.exe} for r, _ in self._procs],
        }
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    # ------------------------------------------------------------ argv

    def _etcd_argv(self) -> list[str]:
        client_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            "etcd",
            "--name=keepvip",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=keepvip={peer_url}",
            # A test cluster's data is thrown away: no fsync makes every
            # write (and so every API call) several times cheaper.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        assert self._pki is not None
        return [
            "kube-apiserver",
            *apiserver_flags(
                self._pki,
                etcd_url=f"http://127.0.0.1:{self.ports['etcd']}",
                bind_address="127.0.0.1",
                port=self.ports["apiserver"],
                advertise_address="127.0.0.1",
                cert_dir=self.dir / "apiserver-certs",
                service_cidr=self.service_cidr,
            ),
        ]

    def _component_common(self, kubeconfig: Path, port_name: str, certs: str) -> list[str]:
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports[port_name]}",
            f"--cert-dir={self.dir / certs}",
            # One instance each: leader election would only add a wait.
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_argv(self) -> list[str]:
        assert self._pki is not None
        p = self._pki
        return [
            "kube-controller-manager",
            *self._component_common(
                self.dir / "controller-manager.kubeconfig", "controller-manager", "kcm-certs"
            ),
            # All default controllers, among them garbagecollector, daemonset,
            # serviceaccount and serviceaccount-token.
            "--controllers=*",
            # Each controller acts under its own ServiceAccount and RBAC, as
            # kubeadm sets it up.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p.service_account_key}",
            f"--root-ca-file={p.ca.cert}",
            f"--cluster-signing-cert-file={p.ca.cert}",
            f"--cluster-signing-key-file={p.ca.key}",
        ]

    def _scheduler_argv(self) -> list[str]:
        kubeconfig = self.dir / "scheduler.kubeconfig"
        return ["kube-scheduler", *self._component_common(kubeconfig, "scheduler", "sched-certs")]

    def _kwok_argv(self) -> list[str]:
        config_path = self.dir / "kwok.yaml"
        config_path.write_text(kwok_config(self.launch_label))
        return [
            "kwok",
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--config={config_path}",
            "--manage-all-nodes=false",
        ]

    # ------------------------------------------------------------ readiness

    def _etcd_healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports["etcd"], timeout=2)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and json.loads(resp.read()).get("health") == "true"
        finally:
            conn.close()

    def _https_ok(self, port: int, path: str, *, client_cert: bool = True) -> bool:
        if client_cert:
            assert self._pki is not None
            ctx = ssl.create_default_context(cafile=str(self._pki.ca.cert))
            ctx.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
        else:
            # The controller manager and scheduler serve self-signed certs;
            # their health endpoints are open by default.
            ctx = ssl._create_unverified_context()  # noqa: S323
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def _create_nodes(self) -> None:
        api = self.admin_rest()
        for node in self.nodes:
            api.post("/api/v1/nodes", node_manifest(node))

    def _nodes_ready(self) -> bool:
        ready = {
            n["metadata"]["name"]
            for n in self.admin_rest().get("/api/v1/nodes")["items"]
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        }
        return {n.name for n in self.nodes} <= ready

    def _default_sa_exists(self) -> bool:
        self.admin_rest().get("/api/v1/namespaces/default/serviceaccounts/default")
        return True

    # ------------------------------------------------------------ kubeconfigs

    def _write_kubeconfigs(self) -> None:
        assert self._pki is not None
        p = self._pki
        for path, user, pair in (
            (self.admin_kubeconfig, ADMIN_USER, p.admin),
            (
                self.dir / "controller-manager.kubeconfig",
                "kube-controller-manager",
                p.controller_manager,
            ),
            (self.dir / "scheduler.kubeconfig", "kube-scheduler", p.scheduler),
        ):
            cred = {"client-certificate": str(pair.cert), "client-key": str(pair.key)}
            self._write_kubeconfig(path, user, cred)

    def _write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> None:
        path.write_text(yaml.safe_dump(kubeconfig(self.server, self.ca_cert, user, credentials)))
        path.chmod(0o600)


def apiserver_flags(
    p: pki.ClusterPKI,
    *,
    etcd_url: str,
    bind_address: str,
    port: int,
    advertise_address: str,
    cert_dir: Path,
    service_cidr: str = SERVICE_CIDR,
) -> list[str]:
    """kube-apiserver's flags for this tier: the PKI's certificates, RBAC, service accounts,
    the aggregation layer. Also what each API server of ``apiha`` (three behind a VIP) runs."""
    return [
        f"--etcd-servers={etcd_url}",
        f"--bind-address={bind_address}",
        f"--secure-port={port}",
        f"--advertise-address={advertise_address}",
        # The `kubernetes` Endpoints would point at loopback, which
        # validation refuses; nothing in the tier dials the Service.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={p.apiserver.cert}",
        f"--tls-private-key-file={p.apiserver.key}",
        f"--client-ca-file={p.ca.cert}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={p.service_account_pub}",
        f"--service-account-signing-key-file={p.service_account_key}",
        f"--service-cluster-ip-range={service_cidr}",
        # The aggregation layer (APIServices such as metrics-server's), and
        # what the controller manager and scheduler read to authenticate
        # requests proxied through it.
        f"--requestheader-client-ca-file={p.front_proxy_ca.cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p.front_proxy_client.cert}",
        f"--proxy-client-key-file={p.front_proxy_client.key}",
        # The agent DaemonSet asks for host networking and capabilities.
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def kubeconfig(server: str, ca: Path, user: str, credentials: dict[str, str]) -> dict[str, Any]:
    """A one-cluster, one-user kubeconfig document."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "keepvip-test",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": "keepvip-test", "context": {"cluster": "keepvip-test", "user": user}}
        ],
        "current-context": "keepvip-test",
    }


def _addresses(name: str, ip: str) -> list[dict[str, str]]:
    return [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]


def node_manifest(node: FakeNode) -> dict[str, Any]:
    """A Node as a kubelet would register it, marked for kwok to keep alive.

    No taint: DaemonSets land on these nodes without tolerations, as on
    ordinary worker nodes.
    """
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        # The API server keeps status on create, as for a kubelet's registration.
        "status": {"addresses": _addresses(node.name, node.internal_ip)},
    }


def kwok_config(launch_label: str) -> str:
    """kwok-stages.yaml with every Pod stage made to skip launcher pods."""
    docs = list(yaml.safe_load_all(KWOK_STAGES.read_text()))
    skip = {"key": f'.metadata.labels["{launch_label}"]', "operator": "DoesNotExist"}
    for doc in docs:
        if doc.get("kind") == "Stage" and doc["spec"]["resourceRef"]["kind"] == "Pod":
            doc["spec"]["selector"]["matchExpressions"].append(skip)
    return yaml.safe_dump_all(docs)


def remove_stale_state_dirs() -> None:
    """Remove data left by sessions that were killed outright (SIGKILL).

    Their processes died with them (parent-death signal) but their data
    directory stayed. A directory whose recorded processes are all gone is
    stale; one still being set up has no state file yet and is left alone.
    """
    for state_file in Path(tempfile.gettempdir()).glob(f"{STATE_PREFIX}*/state.json"):
        with suppress(OSError, ValueError, KeyError):
            recorded = json.loads(state_file.read_text())["processes"]
            if not any(procs.is_ours(procs.Recorded(**p)) for p in recorded):
                shutil.rmtree(state_file.parent, ignore_errors=True)


def stop_state_dir(state_dir: Path) -> None:
    """Stop a detached control plane by the pids in its state file, then remove it."""
    state_file = state_dir / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        for p in reversed(state["processes"]):
            procs.stop(procs.Recorded(p["name"], p["pid"], p["exe"]))
    shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "down":
        stop_state_dir(args.state_dir)
        print(f"control plane in {args.state_dir} stopped")
        return 0
    if (args.state_dir / "state.json").exists():
        print(f"already up: {args.state_dir} (run `make cluster-down` first)", file=sys.stderr)
        return 1
    bin_dir, reason = find_bin_dir()
    if bin_dir is None:
        print(reason, file=sys.stderr)
        return 1
    cp = ControlPlane(bin_dir=bin_dir, state_dir=args.state_dir, detach=True)
    cp.start()
    print(f"state in {args.state_dir}; logs in {args.state_dir / 'logs'}")
    print(f"export KUBECONFIG={cp.admin_kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
