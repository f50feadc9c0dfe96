"""Three real kube-apiservers behind a VIP in a lab: the Kubernetes API address, end to end.

Each node namespace of a :class:`~keepvip_tools.lab.topology.Lab` runs a
kube-apiserver on 0.0.0.0:6443 (the control-plane tier's binaries) and a VIP
keeper next to it: a keepvip agent from the file ``keepvip static-pod
--config-out`` writes (the same generator users run), or keepalived with a
check script for the benchmark's comparison. One etcd runs in the client's
namespace, so a node cut off from the network loses etcd too, as a real
control-plane node would. A client in that namespace uses the VIP as its
server (``apiclient``) and logs who answered.

All API servers share one PKI, except that each has a serving certificate
of its own (``CN=kube-apiserver-nN``, the same SANs: ``kubernetes``,
127.0.0.1, every node's address and the VIP), so the client can tell which
node answered from the TLS session alone.

The check is anonymous: ``/readyz`` is readable without credentials
through the default RBAC (``system:public-info-viewer``), as on a kubeadm
cluster, so the agents need no certificate of their own.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keepvip_tools.apiaddress.config import Options, build, to_yaml
from keepvip_tools.lab.topology import VIP4, Lab

from . import pki
from .agentlab import in_netns
from .controlplane import KUBERNETES_SERVICE_IP, apiserver_flags, kubeconfig
from .labdaemons import Daemon, start_keepalived, start_keepvip

API_PORT = 6443
ETCD_PORT = 2379
APISERVER_START = 120.0
"""Seconds for three API servers starting at once on a loaded 2-core machine to be Ready."""


@dataclass(frozen=True)
class Request:
    """One request of the client: when it started and ended, who answered or why not."""

    start: float
    end: float
    who: str
    """The answering node (``n1``) or ``-``."""
    kind: str = ""
    """Why it failed: refused, reset, tls-reset, tls-verify, tls, timeout, http-NNN."""


def read_requests(path: Path) -> list[Request]:
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split()
        if len(parts) >= 3:
            try:
                start, end = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            out.append(Request(start, end, parts[2], parts[3] if len(parts) > 3 else ""))
    return out


@dataclass
class ApiNodes:
    """The lab's API servers, VIP keepers and client; everything dies with the lab."""

    lab: Lab
    bin_dir: Path
    certs: pki.ClusterPKI = field(init=False)
    serving: dict[int, pki.KeyPair] = field(default_factory=dict)
    apiservers: dict[int, subprocess.Popen[Any]] = field(default_factory=dict)
    keepers: dict[int, Daemon] = field(default_factory=dict)
    client: subprocess.Popen[Any] | None = None

    @property
    def dir(self) -> Path:
        assert self.lab.workdir is not None
        return self.lab.workdir

    @property
    def client_log(self) -> Path:
        return self.dir / "apiclient.log"

    def setup(self) -> None:
        """PKI, etcd and every node's API server, Ready."""
        ips = [str(self.lab.node_v4(i)) for i in range(1, self.lab.nodes + 1)]
        sans = ["127.0.0.1", KUBERNETES_SERVICE_IP, str(VIP4), *ips]
        self.certs = pki.create_pki(self.dir / "pki", apiserver_ips=sans)
        alt = ["DNS:kubernetes", *(f"IP:{ip}" for ip in sans)]
        for i in range(1, self.lab.nodes + 1):
            self.serving[i] = pki.issue(
                self.dir / "pki", f"apiserver-n{i}", self.certs.ca,
                f"/CN=kube-apiserver-n{i}", usage="serverAuth", alt_names=alt,
            )  # fmt: skip
        etcd_url = f"http://{self.lab.client_v4}:{ETCD_PORT}"
        self.lab.spawn(
            self.lab.client_ns,
            [
                str(self.bin_dir / "etcd"), "--name=apiha", f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                "--listen-peer-urls=http://127.0.0.1:2380", "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            log="etcd.log",
        )  # fmt: skip
        for i in range(1, self.lab.nodes + 1):
            self.start_apiserver(i)
        for i in range(1, self.lab.nodes + 1):
            self.wait_apiserver(i)
        self._write_client_kubeconfig()

    # -- API servers ----------------------------------------------------------------------

    def start_apiserver(self, i: int) -> None:
        own = dataclasses.replace(self.certs, apiserver=self.serving[i])
        flags = apiserver_flags(
            own,
            etcd_url=f"http://{self.lab.client_v4}:{ETCD_PORT}",
            bind_address="0.0.0.0",  # the node's namespace: its own address and the VIP
            port=API_PORT,
            advertise_address=str(self.lab.node_v4(i)),
            cert_dir=self.dir / f"apiserver-n{i}-certs",
        )
        self.apiservers[i] = self.lab.spawn(
            self.lab.node_ns(i),
            [str(self.bin_dir / "kube-apiserver"), *flags],
            log=f"apiserver-n{i}.log",
        )

    def readyz(self, i: int) -> bool:
        """The node's own /readyz, from inside its namespace, as its check sees it."""
        ctx = ssl.create_default_context(cafile=str(self.certs.ca.cert))

        def get() -> bool:
            conn = http.client.HTTPSConnection("127.0.0.1", API_PORT, timeout=2, context=ctx)
            try:
                conn.request("GET", "/readyz")
                return conn.getresponse().status == 200
            except OSError:
                return False
            finally:
                conn.close()

        return in_netns(self.lab.node_ns(i), get)

    def wait_apiserver(self, i: int, timeout: float = APISERVER_START) -> None:
        proc = self.apiservers[i]
        deadline = time.monotonic() + timeout
        while not self.readyz(i):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = self.lab.log_text(f"apiserver-n{i}.log").splitlines()[-20:]
                raise RuntimeError(f"API server n{i} not ready:\n" + "\n".join(tail))
            time.sleep(0.2)

    def kill_apiserver(self, i: int) -> None:
        """SIGKILL: the crash of scenario (a)."""
        self.apiservers[i].kill()
        self.apiservers[i].wait(10)

    def stop_apiserver(self, i: int) -> None:
        """SIGTERM and wait: the orderly stop of an upgrade."""
        self.apiservers[i].send_signal(signal.SIGTERM)
        self.apiservers[i].wait(60)

    # -- VIP keepers ------------------------------------------------------------------------

    def keepvip_config(self, i: int, **options: Any) -> str:
        """What ``keepvip static-pod --config-out`` writes for node i, CA path of this lab."""
        o = Options(
            address=f"{VIP4}/24", interface="eth0", ca_file=str(self.certs.ca.cert), **options
        )
        return to_yaml(build(o))

    def start_keepvip(self, i: int, **options: Any) -> Daemon:
        daemon = start_keepvip(self.lab, i, self.keepvip_config(i, **options))
        self.keepers[i] = daemon
        return daemon

    def start_keepalived(self, i: int, conf: str) -> Daemon:
        daemon = start_keepalived(self.lab, i, conf)
        self.keepers[i] = daemon
        return daemon

    def wait_holder(self, nodes: Iterable[int], timeout: float, *, alone: bool = True) -> int:
        """One of ``nodes`` holding the VIP; ``alone=False`` allows another holder beside it
        (a cut-off old master that keeps its copy, as keepalived does)."""
        wanted = set(nodes)

        def found() -> int | None:
            holders = self.lab.holders(VIP4)
            if alone and len(holders) != 1:
                return None
            return next((h for h in holders if h in wanted), None)

        node: int = self.lab.wait_for(found, timeout)
        return node

    def steady(
        self, start_keeper: Callable[[int], object], settle: float = 0.0, timeout: float = 60.0
    ) -> int:
        """Every node connected, every API server Ready and every keeper running (missing
        ones started with ``start_keeper(i)``); after ``settle`` seconds, one holder, answering
        the client. Returns the holder."""
        lab = self.lab
        for i in range(1, lab.nodes + 1):
            lab.heal(i)
            if self.apiservers[i].poll() is not None:
                self.start_apiserver(i)
        for i in range(1, lab.nodes + 1):
            self.wait_apiserver(i)
            keeper = self.keepers.get(i)
            if keeper is None or not keeper.alive():
                start_keeper(i)
        time.sleep(settle)
        holder = self.wait_holder(range(1, lab.nodes + 1), timeout)
        self.wait_answers(f"n{holder}", 5, timeout)
        return holder

    # -- the client ---------------------------------------------------------------------------

    def _write_client_kubeconfig(self) -> None:
        p = self.certs
        doc = kubeconfig(
            f"https://{VIP4}:{API_PORT}",
            p.ca.cert,
            "admin",
            {"client-certificate": str(p.admin.cert), "client-key": str(p.admin.key)},
        )
        (self.dir / "client.kubeconfig").write_text(yaml.safe_dump(doc))

    def start_client(self, every: float = 0.05) -> None:
        self.client_log.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "keepvip_harness.apiclient",
            "--kubeconfig", str(self.dir / "client.kubeconfig"),
            "--out", str(self.client_log), "--every", str(every),
        ]  # fmt: skip
        self.client = self.lab.spawn(
            self.lab.client_ns, argv, log="apiclient.stderr", env={"PYTHONUNBUFFERED": "1"}
        )

    def requests(self) -> list[Request]:
        return read_requests(self.client_log)

    def wait_answers(self, who: str, count: int, timeout: float) -> None:
        """Until the client has ``count`` answers from ``who`` in a row, the latest last."""

        def ok() -> bool:
            tail = self.requests()[-count:]
            return len(tail) == count and all(r.who == who for r in tail)

        self.lab.wait_for(ok, timeout, 0.1)

    def stop_client(self) -> None:
        if self.client is not None and self.client.poll() is None:
            os.killpg(self.client.pid, signal.SIGKILL)
            self.client.wait(5)
        self.client = None


@dataclass(frozen=True)
class ApiOutage:
    """What the client saw around one event."""

    event: float
    old: str
    new: str | None
    gap: float | None
    """From the later of the event and the old node's last answer to the new node's first."""
    longest_unanswered: float
    """The longest stretch of failed requests in the window (0 if none failed)."""
    errors: tuple[str, ...]
    """Failure kinds in the window, in order (``reset``, ``refused``, ...)."""
    errors_after_new: tuple[str, ...]
    """Failures that started after the new node's first answer: must be none."""


def api_outage(requests: list[Request], event: float, old: str, end: float) -> ApiOutage:
    window = [r for r in requests if event - 1.0 <= r.start <= end]
    first_new = next((r for r in window if r.start >= event and r.who not in ("-", old)), None)
    last_old = None
    for r in window:
        if first_new is not None and r.start >= first_new.start:
            break
        if r.who == old:
            last_old = r
    gap = None
    if first_new is not None:
        since = event if last_old is None else max(event, last_old.end)
        gap = first_new.end - since
    longest, since_fail = 0.0, None
    for r in window:
        if r.who == "-":
            since_fail = r.start if since_fail is None else since_fail
        elif since_fail is not None:
            longest, since_fail = max(longest, r.end - since_fail), None
    after = tuple(
        r.kind
        for r in window
        if first_new is not None and r.start > first_new.start and r.who == "-"
    )
    return ApiOutage(
        event=event,
        old=old,
        new=None if first_new is None else first_new.who,
        gap=gap,
        longest_unanswered=longest,
        errors=tuple(r.kind for r in window if r.who == "-" and r.start >= event),
        errors_after_new=after,
    )
