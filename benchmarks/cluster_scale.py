"""The node-agent layout at scale: 250 VirtualIPs and 1000 LoadBalancer Services on 3 real agents.

``.venv/bin/python benchmarks/cluster_scale.py [--vips 250] [--services 1000]
[--apply-runs 10] [--cut-runs 7] [--window 30] [--quick]`` (root; keepalived; the
control-plane binaries from ``make controlplane-build``). Issue 12, "Performance".

It starts its own control plane (``keepvip_harness``) with a dual-stack Service
range: the tier's /25 holds ~125 ClusterIPs and the documentation ranges hold
far fewer than 1000 IPv4 addresses, so the Services are IPv6 (one pool with
``sharedRouter``, externalTrafficPolicy Cluster: 77 addresses per router, 13
routers). The VirtualIPs are IPv4, one VRID each, 1 s adverts, priorities
150/120/100 on the three nodes (/32 addresses in 198.51.100.0/24, which each
lab node namespace routes on its eth0).

``keepvip-operator`` runs as its own process (its CPU and RSS come from
/proc) and renders the one agent DaemonSet; the pod launcher runs the three
real ``keepvip-agent --kubernetes`` processes in the lab's node namespaces.
Measured, in this order:

1. keepalived alone in a 2-node lab carrying the same 250 instances
   (``resources.measure``), at 1 s and 100 ms, master and backup;
2. from the POSTs of everything at once to every VirtualIP and router Ready
   with a master and every Service published: seconds, operator CPU and RSS;
3. a steady window at 1 s: each agent's CPU and RSS, operator CPU, and the
   API server's write requests (``apiserver_request_total``, verbs other
   than GET/LIST/WATCH) against a window taken before keepvip started;
4. apply to master: a new VirtualIP at 100 ms added to the loaded agents;
5. a master's link cut (bridge port stops forwarding) with one VirtualIP at
   100 ms among the 250 at 1 s: the client's outage, probes as
   ``benchmarks/failover.py``, the cut placed in that router's advert phase;
6. the 250 patched to 100 ms: the same steady window again.

Results: ``benchmarks/results/cluster-scale.{json,md}``. Nothing here gates CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import resources
from keepvip_api.names import NODE_AGENT_SELECTOR
from keepvip_harness.agentrbac import agent_rbac
from keepvip_harness.controlplane import LAUNCH_LABEL, SERVICE_CIDR, ControlPlane, find_bin_dir
from keepvip_harness.kubeapi import (
    GROUP_PATH,
    POOL_CRD_FILE,
    POOL_CRD_PATH,
    ensure_crd,
    establish_crd,
    namespace,
    versions,
    wait_for,
)
from keepvip_harness.labdaemons import (
    KEEPALIVED,
    AdvertWatch,
    Cutter,
    machine,
    outage,
    proc_cpu_seconds,
    proc_rss_bytes,
    read_probe,
)
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError, Rest
from keepvip_harness.vipwatch import VipTimeline
from keepvip_tools.lab.topology import VIP4, Lab
from scale_profile import agent_env, dump_allocations, profiled
from scale_report import markdown, summary

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE_CIDRS = f"{SERVICE_CIDR},2001:db8:ffff::/108"
VIP_NET = "198.51.100.0/24"
POOL_RANGE = "2001:db8::1:1-2001:db8::1:7ff"
APPLY_FIRST = 150
APPLY_RANGE = f"192.0.2.{APPLY_FIRST}-192.0.2.{APPLY_FIRST + 49}"
"""The apply-to-master runs' VirtualIPs (one address each, run by run)."""
PRIORITIES = (150, 120, 100)
CLASS = "keepvip.io/vrrp"
SHARED_LABEL = "keepvip.io/shared-router"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}
MiB = 1024 * 1024
ATTEMPTS = 6
ANCHOR_TIMEOUT, FINE_TIMEOUT, FINE_PROBES, WARMUP = 0.05, 0.01, 2, 0.4


# -- what is posted ----------------------------------------------------------------


def vip_body(name: str, address: str, nodes: list[str], interval: str) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": {
            "addresses": [address],
            "advertInterval": interval,
            "preempt": True,
            "nodes": [{"name": n, "priority": p} for n, p in zip(nodes, PRIORITIES, strict=True)],
        },
    }


def service_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASS,
            "externalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv6"],
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    }


def pool_body(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name},
        "spec": {"addresses": [POOL_RANGE], "namespaces": [ns], "sharedRouter": True},
    }


def grant_body(name: str, ns: str) -> dict[str, Any]:
    """The VirtualIPs' addresses granted to the namespace (address grants are on by default)."""
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name},
        "spec": {
            "addresses": [VIP_NET, APPLY_RANGE, str(VIP4)],
            "namespaces": [ns],
            "usedBy": ["VirtualIPs"],
        },
    }


# -- what is read ------------------------------------------------------------------


def api_writes(api: Rest) -> Counter[str]:
    """Write requests the API server has served so far, by ``VERB resource[/subresource]``."""
    text = api.get("/metrics")
    out: Counter[str] = Counter()
    for line in str(text).splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        if labels.get("verb") in WRITE_VERBS:
            sub = labels.get("subresource")
            out[f"{labels['verb']} {labels.get('resource', '')}{'/' + sub if sub else ''}"] += int(
                float(value)
            )
    return out


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def window(
    api: Rest, pids: dict[str, int], seconds: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """CPU % of one core per named pid over ``seconds``, and the API writes in that time."""
    writes0, cpu0, t0 = api_writes(api), {k: proc_cpu_seconds(p) for k, p in pids.items()}, 0.0
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu = {k: 100 * (proc_cpu_seconds(p) - cpu0[k]) / elapsed for k, p in pids.items()}
    delta = api_writes(api) - writes0
    writes = {
        "seconds": elapsed,
        "per_second": sum(delta.values()) / elapsed,
        "by_kind_per_second": {k: v / elapsed for k, v in delta.most_common()},
    }
    return cpu, writes


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def host(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


class Cluster:
    """The namespace's VirtualIPs and Services as one snapshot: who is Ready with a master."""

    def __init__(self, api: Rest, ns: str) -> None:
        vips = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips")["items"]
        services = api.get(f"/api/v1/namespaces/{ns}/services")["items"]
        self.vips = {v["metadata"]["name"]: v for v in vips}
        self.routers = {
            n: v for n, v in self.vips.items() if SHARED_LABEL in v["metadata"].get("labels", {})
        }
        self.own = {n: v for n, v in self.vips.items() if n not in self.routers}
        ready_addresses = {
            host(a) for v in self.routers.values() if self.ready(v) for a in v["spec"]["addresses"]
        }
        published = [
            [
                i.get("ip")
                for i in (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            ]
            for s in services
            if s["spec"].get("type") == "LoadBalancer"
        ]
        self.services_published = sum(bool(p) for p in published)
        self.services_ready = sum(bool(p) and p[0] in ready_addresses for p in published)

    @staticmethod
    def ready(vip: dict[str, Any]) -> bool:
        return conditions(vip).get("Ready") == "True" and bool(
            (vip.get("status") or {}).get("master")
        )

    def masters(self) -> dict[str, str | None]:
        return {n: (v.get("status") or {}).get("master") for n, v in self.own.items()}

    def own_ready(self) -> int:
        return sum(self.ready(v) for v in self.own.values())

    def routers_ready(self) -> int:
        return sum(self.ready(v) for v in self.routers.values())


# -- processes ---------------------------------------------------------------------


@contextlib.contextmanager
def operator_process(cp: ControlPlane, ns: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """keepvip-operator as its own process (production settings but for the agent image,
    the launcher's pod label and the watched namespace)."""
    argv = [
        str(Path(sys.executable).with_name("keepvip-operator")),
        f"--kubeconfig={cp.admin_kubeconfig}",
        f"--watch-namespaces={ns}",
        f"--agent-namespace={ns}",
        "--agent-image=keepvip/agent:bench",
        f"--extra-pod-labels={LAUNCH_LABEL}=true",
        "--agent-log-level=warning",
        "--log-level=warning",
        "--leader-election=false",
    ]
    with log.open("wb") as out:
        op = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield op
    finally:
        op.terminate()
        try:
            op.wait(30)
        except subprocess.TimeoutExpired:
            op.kill()
            op.wait()


def settled_cpu(pid: int, what: str) -> None:
    """Wait until a process's CPU time stops climbing (start-up: imports, first lists)."""
    last = -1.0
    for _ in range(120):
        time.sleep(0.5)
        cpu = proc_cpu_seconds(pid)
        if cpu == last and cpu > 0:
            return
        last = cpu
    print(f"{what}: CPU still climbing after 60 s; going on", flush=True)


def quiet(pid: int, settle: float, limit: float = 900.0) -> dict[str, Any]:
    """Wait until the operator's work after everything is Ready has drained.

    Its CPU over 5 s slices, until two slices in a row are under 3 % of a core
    or within 1 point of each other (a plateau: that is its idle), at most
    ``limit`` seconds; then ``settle`` seconds more. The slices are recorded.
    """
    t0, slices = time.monotonic(), []
    while time.monotonic() - t0 < limit:
        c0 = proc_cpu_seconds(pid)
        time.sleep(5.0)
        slices.append(100 * (proc_cpu_seconds(pid) - c0) / 5.0)
        if len(slices) >= 2 and (max(slices[-2:]) < 3.0 or abs(slices[-1] - slices[-2]) < 1.0):
            break
    out = {"seconds": time.monotonic() - t0, "cpu_percent_per_5s": slices}
    print(f"operator quiet after {out['seconds']:.0f} s: {slices}", flush=True)
    time.sleep(settle)
    return out


def agent_pids(api: Rest, ns: str, launcher: PodLauncher) -> dict[str, int]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(NODE_AGENT_SELECTOR.items()))
    pods = api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    out = {}
    for p in pods:
        pid = launcher.pid(ns, p["metadata"]["name"])
        if pid is not None and p["spec"].get("nodeName"):
            out[p["spec"]["nodeName"]] = pid
    return out


def spawn_probe(lab: Lab, address: str, path: Path, timeout: float) -> subprocess.Popen[Any]:
    argv = [sys.executable, "-m", "keepvip_tools.lab.probe", address, "--timeout", f"{timeout}"]
    with path.open("w") as out:
        return lab.spawn(lab.client_ns, argv, stdout=out)


def stop(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def parallel(calls: list[Callable[[Rest], Any]], cp: ControlPlane, threads: int = 16) -> None:
    local = threading.local()

    def run(call: Callable[[Rest], Any]) -> None:
        if not hasattr(local, "api"):
            local.api = cp.admin_rest()
        for attempt in range(ATTEMPTS):
            try:
                call(local.api)
                return
            except ApiError as exc:
                if exc.status == 409 and attempt:  # the timed-out attempt got through
                    return
                raise
            except OSError:  # a timeout on a busy API server (1250 POSTs at once)
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(attempt + 1.0)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, calls))


# -- the keepalived side -----------------------------------------------------------


def keepalived_side(count: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"version": resources.machine()["keepalived"]}
    with Lab(nodes=2) as lab:
        for interval in (1.0, 0.1):
            r = resources.measure(lab, "keepalived", count, interval, seconds)
            out[f"{interval:g}s"] = r
            print(
                f"keepalived x{count} at {interval:g} s: master {r['master']['cpu_percent']:.2f} %, "
                f"backup {r['backup']['cpu_percent']:.2f} %",
                flush=True,
            )
    return out


# -- the keepvip side --------------------------------------------------------------


class Scale:
    """One lab, one namespace, the operator process and the launcher: the measured steps."""

    def __init__(
        self,
        cp: ControlPlane,
        lab: Lab,
        ns: str,
        op: subprocess.Popen[bytes],
        launcher: PodLauncher,
        profile: Path | None = None,
    ) -> None:
        self.cp, self.lab, self.ns, self.op, self.launcher = cp, lab, ns, op, launcher
        self.profile = profile
        self.api = cp.admin_rest()
        self.nodes = [n.name for n in cp.nodes]
        self.vip_base = f"{GROUP_PATH}/namespaces/{ns}/virtualips"

    def snapshot(self) -> Cluster:
        return Cluster(self.api, self.ns)

    def apply_all(self, vips: int, services: int) -> dict[str, Any]:
        net = ipaddress.ip_network(VIP_NET)
        names = [f"vip-{i:03d}" for i in range(vips)]
        calls: list[Callable[[Rest], Any]] = [
            lambda a, i=i: a.post(
                self.vip_base, vip_body(names[i], f"{net[i + 1]}/32", self.nodes, "1s")
            )
            for i in range(vips)
        ]
        svc = f"/api/v1/namespaces/{self.ns}/services"
        calls += [lambda a, i=i: a.post(svc, service_body(f"s{i:04d}")) for i in range(services)]
        cpu0 = proc_cpu_seconds(self.op.pid)
        t0 = time.monotonic()
        parallel(calls, self.cp)
        marks: dict[str, float] = {"posted": time.monotonic() - t0}
        rss_peak = 0
        deadline = t0 + 900
        while True:
            rss_peak = max(rss_peak, proc_rss_bytes(self.op.pid))
            if self.op.poll() is not None:
                raise RuntimeError("keepvip-operator exited")
            try:
                snap, now = self.snapshot(), time.monotonic() - t0
                pods = len(agent_pids(self.api, self.ns, self.launcher))
            except OSError as exc:  # a busy API server's timeout: look again
                print(f"snapshot: {exc}", flush=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
                continue
            done = {
                "agent_pods": pods == 3,
                "vips_ready": snap.own_ready() == vips,
                "routers_ready": (bool(snap.routers) or not services)
                and snap.routers_ready() == len(snap.routers)
                and snap.services_published == services,
                "services_ready": snap.services_ready == services,
            }
            for key, ok in done.items():
                if ok and key not in marks:
                    marks[key] = now
                    print(f"scale: {key} after {now:.1f} s", flush=True)
            if all(done.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not all Ready after 900 s: {done}, {snap.own_ready()} VirtualIPs, "
                    f"{snap.routers_ready()}/{len(snap.routers)} routers, "
                    f"{snap.services_ready} Services"
                )
            time.sleep(1.0)
        marks["all_ready"] = time.monotonic() - t0
        masters = Counter(snap.masters().values())
        vrids = {(v.get("status") or {}).get("virtualRouterID") for v in snap.own.values()}
        return {
            "seconds": marks,
            "operator_cpu_seconds": proc_cpu_seconds(self.op.pid) - cpu0,
            "operator_rss_peak_mib": max(rss_peak, peak_rss_bytes(self.op.pid)) / MiB,
            "operator_rss_mib": proc_rss_bytes(self.op.pid) / MiB,
            "routers": len(snap.routers),
            "router_addresses": {n: len(v["spec"]["addresses"]) for n, v in snap.routers.items()},
            "virtualips_masters": dict(masters),
            "distinct_vrids_of_virtualips": len(vrids),
        }

    def steady(self, seconds: float, label: str) -> dict[str, Any]:
        agents = agent_pids(self.api, self.ns, self.launcher)
        pids = {"operator": self.op.pid, **agents}
        with profiled(self.profile, pids, seconds, label):
            cpu, writes = window(self.api, pids, seconds)
        out = {
            "operator_cpu_percent": cpu["operator"],
            "operator_rss_mib": proc_rss_bytes(self.op.pid) / MiB,
            "agent_cpu_percent": {n: cpu[n] for n in agents},
            "agent_rss_mib": {n: proc_rss_bytes(p) / MiB for n, p in agents.items()},
            "agent_rss_peak_mib": {n: peak_rss_bytes(p) / MiB for n, p in agents.items()},
            "api_writes": writes,
        }
        print(f"steady {label}: " + json.dumps(out, default=str), flush=True)
        return out

    def wait_gone(self, name: str, address: str) -> None:
        def gone() -> bool:
            try:
                self.api.get(f"{self.vip_base}/{name}")
                return False
            except ApiError as exc:
                if exc.status != 404:
                    raise
            return self.lab.holders(ipaddress.ip_address(address)) == []

        wait_for(f"{name} gone", gone, 60, 0.2)

    def apply_runs(self, runs: int) -> list[dict[str, float]]:
        """A new VirtualIP at 100 ms on the loaded agents: to status.master, to the client."""
        samples = []
        assert self.lab.workdir is not None
        for run in range(runs):
            name, address = f"apply-{run}", f"192.0.2.{APPLY_FIRST + run}"
            probe = spawn_probe(self.lab, address, self.lab.workdir / f"apply-{run}.probe", 0.05)
            trace = VipTimeline(self.cp.admin_rest(), self.vip_base, name)
            trace.start()
            try:
                time.sleep(0.5)
                t0, posted = time.monotonic(), time.time()
                self.api.post(self.vip_base, vip_body(name, f"{address}/24", self.nodes, "100ms"))
                wait_for(
                    f"{name}: status.master",
                    lambda n=name: (self.api.get(f"{self.vip_base}/{n}").get("status") or {}).get(
                        "master"
                    ),
                    60,
                    0.02,
                )
                master_at = time.monotonic()
                path = self.lab.workdir / f"apply-{run}.probe"
                answered = wait_for(
                    f"{name}: the client answered",
                    lambda path=path, t0=t0: next(
                        (t for t, w in read_probe(path) if t >= t0 and w != "-"), None
                    ),
                    30,
                    0.05,
                )
                time.sleep(0.3)  # the writes right after status.master, for the trace
            finally:
                stop(probe)
                trace.stop()
            sample = {
                "to_status_master": master_at - t0,
                "to_client_answer": answered - t0,
                "trace_ms": trace.marks(posted),
                "events": trace.compact(posted),
            }
            print(f"apply run {run + 1}: " + json.dumps(sample), flush=True)
            samples.append(sample)
            self.api.delete(f"{self.vip_base}/{name}")
            self.wait_gone(name, address)
        return samples

    def all_back_on(self, node: str, vips: int) -> bool:
        masters = self.snapshot().masters()
        return sum(m == node for m in masters.values()) == len(masters) and len(masters) == vips + 1

    def cut_runs(self, runs: int, vips: int) -> list[dict[str, Any]]:
        """n1's bridge port stops forwarding; one VirtualIP at 100 ms, the others at 1 s."""
        lab, first = self.lab, self.nodes[0]
        assert lab.workdir is not None
        name, interval = "cut", 0.1
        self.api.post(self.vip_base, vip_body(name, f"{VIP4}/24", self.nodes, "100ms"))
        wait_for("cut: n1 master", lambda: self.all_back_on(first, vips), 60, 0.2)
        vrid = self.api.get(f"{self.vip_base}/{name}")["status"]["virtualRouterID"]
        watch, cutter = AdvertWatch(lab, 1, vrid), Cutter(lab)
        samples: list[dict[str, Any]] = []
        try:
            for run in range(runs):
                phase = (run + 0.5) / runs
                wait_for(
                    "every VirtualIP back on n1",
                    lambda: self.all_back_on(first, vips) and lab.holders(VIP4) == [1],
                    60,
                    0.2,
                )
                lab.exec(lab.client_ns, "ip", "neigh", "flush", "to", str(VIP4), check=False)
                time.sleep(2.0)
                files = [lab.workdir / f"cut{run}-{k}.probe" for k in range(1 + FINE_PROBES)]
                timeouts = [ANCHOR_TIMEOUT] + [FINE_TIMEOUT] * FINE_PROBES
                probes = [
                    spawn_probe(lab, str(VIP4), f, t) for f, t in zip(files, timeouts, strict=True)
                ]
                try:
                    wait_for(
                        "every probe answered by n1",
                        lambda files=files: all(
                            any(w == first for _, w in read_probe(f)) for f in files
                        ),
                        10,
                        0.05,
                    )
                    time.sleep(WARMUP)
                    advert = watch.next_advert(2 * interval + 1)
                    time.sleep(max(0.0, advert + phase * interval - time.monotonic()))
                    before = time.monotonic()
                    cutter.cut(1)
                    time.sleep(4 * interval + 1.0)
                finally:
                    for p in probes:
                        stop(p)
                    cutter.heal(1)
                anchor = read_probe(files[0])
                merged = anchor + [line for f in files[1:] for line in read_probe(f)]
                fine, a = outage(merged, before, first), outage(anchor, before, first)
                sample = {
                    "phase": phase,
                    "fine": fine.gap,
                    "anchor": a.gap,
                    "to_new": fine.to_new_master,
                    "new_node": fine.new_node,
                    "after_advert": before - advert,
                }
                print(f"cut run {run + 1}: " + json.dumps(sample), flush=True)
                samples.append(sample)
        finally:
            watch.close()
        self.api.delete(f"{self.vip_base}/{name}")
        self.wait_gone(name, str(VIP4))
        return samples

    def all_on(self, node: str, vips: int) -> bool:
        """Every VirtualIP's status.master is ``node`` (False, not an error, if the API is slow)."""
        try:
            return sum(m == node for m in self.snapshot().masters().values()) == vips
        except OSError as exc:  # a busy API server's timeout: look again
            print(f"snapshot: {exc}", flush=True)
            return False

    def all_to(self, vips: int, interval: str) -> None:
        path = self.vip_base
        parallel(
            [
                lambda a, i=i: a.merge_patch(
                    f"{path}/vip-{i:03d}", {"spec": {"advertInterval": interval}}
                )
                for i in range(vips)
            ],
            self.cp,
        )


def responders(lab: Lab, nodes: list[str]) -> None:
    """An HTTP responder on every node answering with the node's name (any local address)."""
    for i, name in enumerate(nodes, start=1):
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])


def keepvip_side(cp: ControlPlane, args: argparse.Namespace) -> dict[str, Any]:
    nodes = [n.name for n in cp.nodes]
    originals = {n.name: n.internal_ip for n in cp.nodes}
    out: dict[str, Any] = {}
    api = cp.admin_rest()
    with Lab(nodes=len(nodes)) as lab, namespace(cp) as ns:
        pool = f"kvb-{secrets.token_hex(4)}"
        log = Path(tempfile.mkstemp(prefix="keepvip-bench-operator-", suffix=".log")[1])
        try:
            for i, name in enumerate(nodes, start=1):
                cp.set_node_address(name, str(lab.node_v4(i)))
                lab.ip(lab.node_ns(i), "route", "add", VIP_NET, "dev", "eth0")
            responders(lab, nodes)
            ensure_crd(cp)
            establish_crd(api, POOL_CRD_FILE, POOL_CRD_PATH, f"{GROUP_PATH}/virtualippools")
            api.post(f"{GROUP_PATH}/virtualippools", pool_body(pool, ns))
            api.post(f"{GROUP_PATH}/virtualippools", grant_body(f"{pool}-grant", ns))
            mapping = {n: lab.node_ns(i) for i, n in enumerate(nodes, start=1)}
            with agent_rbac(cp, ns):
                _, out["api_writes_before_keepvip"] = window(api, {}, args.window)
                print("API writes before keepvip: " + json.dumps(out["api_writes_before_keepvip"]))
                with (
                    operator_process(cp, ns, log) as op,
                    PodLauncher(cp, mapping, extra_env=agent_env(args.tracemalloc)) as launcher,
                ):
                    settled_cpu(op.pid, "keepvip-operator")
                    out["operator_rss_started_mib"] = proc_rss_bytes(op.pid) / MiB
                    run = Scale(cp, lab, ns, op, launcher, args.profile)
                    out["apply_all"] = run.apply_all(args.vips, args.services)
                    out["operator_quiet"] = quiet(op.pid, args.settle)
                    out["steady_1s"] = run.steady(args.window, "1 s")
                    if args.tracemalloc is not None:
                        dump_allocations(agent_pids(api, ns, launcher), args.tracemalloc)
                    out["apply_to_master"] = run.apply_runs(args.apply_runs)
                    out["cut"] = run.cut_runs(args.cut_runs, args.vips)
                    run.all_to(args.vips, "100ms")
                    time.sleep(args.settle)
                    wait_for(
                        "every VirtualIP on n1 at 100 ms",
                        lambda: run.all_on(nodes[0], args.vips),
                        120,
                        0.5,
                    )
                    out["steady_100ms"] = run.steady(args.window, "100 ms")
        finally:
            for name in (pool, f"{pool}-grant"):
                with contextlib.suppress(ApiError):
                    api.delete(f"{GROUP_PATH}/virtualippools/{name}")
            for name, ip in originals.items():
                cp.set_node_address(name, ip)
            print(f"operator log: {log}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vips", type=int, default=250, help="VirtualIPs, IPv4 (at most 250)")
    p.add_argument("--services", type=int, default=1000, help="LoadBalancer Services, IPv6")
    p.add_argument("--apply-runs", type=int, default=10)
    p.add_argument("--cut-runs", type=int, default=7)
    p.add_argument("--window", type=float, default=30.0, help="seconds of each steady window")
    p.add_argument("--settle", type=float, default=15.0, help="seconds before a steady window")
    p.add_argument("--quick", action="store_true", help="20 VirtualIPs, 80 Services, few runs")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--tracemalloc",
        type=Path,
        help="trace the agents' allocations (benchmarks/memtrace) and dump them into DIR at the "
        "end of the 1 s steady window (the RSS figures of such a run are inflated)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        help="py-spy stacks and smaps of each steady window into DIR (needs: pip install py-spy)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.vips, args.services, args.apply_runs, args.cut_runs = 20, 80, 2, 2
        args.window, args.settle = 10.0, 5.0
    if not 0 < args.vips <= 250:
        p.error("--vips: 1..250 (addresses 198.51.100.1-250)")
    bin_dir, reason = find_bin_dir()
    if bin_dir is None or os.geteuid() != 0 or KEEPALIVED is None:
        print(f"needs root, keepalived and the control plane ({reason})", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "command": " ".join(["benchmarks/cluster_scale.py", *sys.argv[1:]]),
        "machine": machine(),
        "uptime_before": subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result["keepalived"] = keepalived_side(args.vips, args.window)
    cp = ControlPlane(bin_dir=bin_dir, service_cidr=SERVICE_CIDRS)
    with cp.running():
        result["versions"] = versions(cp)
        result["nodes"] = [n.name for n in cp.nodes]
        result["keepvip"] = keepvip_side(cp, args)
    result["summary"] = summary(result)
    result["uptime_after"] = subprocess.run(
        ["uptime"], capture_output=True, text=True, check=False
    ).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster-scale.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (args.out / "cluster-scale.md").write_text(text)
    print(json.dumps(result["summary"], indent=2, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
