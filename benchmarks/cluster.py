"""keepvip on the real control plane: readiness gating, Service endpoints, apply-to-master.

``.venv/bin/python benchmarks/cluster.py [--runs 10] [--apply-runs 5]
[--quick] [--only gating,service,apply]`` (root; needs the control-plane
binaries from ``make controlplane-build``).

It starts its own control plane (the test harness, ``keepvip_harness``) and tears it down,
also on failure. Gating and apply-to-master run the operator in-process and the
agents as real ``keepvip-agent`` processes (the pod launcher) in lab node
namespaces on one bridge, as ``tests/cluster/test_agent_kubernetes.py`` does (``keepvip_harness.clusterlab``);
times compare with the client probe's because CLOCK_MONOTONIC is shared by all
namespaces. Medians are printed; nothing here gates CI. Scale (250 VirtualIPs and
1000 Services on three real node agents) is ``benchmarks/cluster_scale.py``; the
``scale`` part that was here measured the per-VirtualIP layout (kwok agent pods,
status entries written by the benchmark) and is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from keepvip_harness.appservice import PORT, SliceWatch, service
from keepvip_harness.clusterlab import NAME, app_daemonset, base_spec, client_answer
from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane, find_bin_dir
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd, namespace, versions, wait_for
from keepvip_harness.labdaemons import machine, median, read_probe
from keepvip_harness.operatorrun import operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError, Rest
from keepvip_harness.servicenet import ServiceNet
from keepvip_tools.lab.topology import VIP4, Lab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def vip_path(ns: str, name: str = NAME) -> str:
    return f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}"


def masters(api: Rest, ns: str) -> list[str]:
    nodes = (api.get(vip_path(ns)).get("status") or {}).get("nodes", [])
    return sorted(n["name"] for n in nodes if n["state"] == "Master")


class Probe:
    """The lab client probe writing ``<monotonic> <node|->`` lines to a file."""

    def __init__(self, lab: Lab, path: Path, port: int = 80) -> None:
        self.path = path
        self.out = path.open("wb")
        argv = [sys.executable, "-m", "keepvip_tools.lab.probe", str(VIP4), "--every", "0.005"]
        argv += ["--port", str(port)]
        self.proc = lab.spawn(lab.client_ns, argv, stdout=self.out)

    def first(self, after: float, who: Callable[[str], bool]) -> float | None:
        return next((t for t, w in read_probe(self.path) if t >= after and who(w)), None)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(10)
        self.out.close()


class ReadyWatch:
    """Receipt times (monotonic) of the app pods' Ready condition, per node."""

    def __init__(self, cp: ControlPlane, ns: str) -> None:
        self.api, self.ns = cp.admin_rest(), ns
        self.events: list[tuple[float, str, bool]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        path = f"/api/v1/namespaces/{self.ns}/pods"
        while not self.stopped.is_set():
            with contextlib.suppress(ApiError, OSError):
                rv = self.api.get(path, labelSelector="app=web")["metadata"]["resourceVersion"]
                for ev in self.api.watch(path, labelSelector="app=web", resourceVersion=rv):
                    now = time.monotonic()
                    pod = ev.get("object", {})
                    node = pod.get("spec", {}).get("nodeName")
                    conds = (pod.get("status") or {}).get("conditions") or []
                    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
                    if node and ev.get("type") in ("ADDED", "MODIFIED"):
                        self.events.append((now, node, ready))
            time.sleep(0.05)

    def first_not_ready(self, node: str, after: float) -> float | None:
        return next(
            (t for t, n, r in list(self.events) if n == node and t >= after and not r), None
        )

    def stop(self) -> None:
        self.stopped.set()
        self.api.close()
        self.thread.join(5)


@contextlib.contextmanager
def lab_cluster(cp: ControlPlane) -> Iterator[tuple[Lab, list[str], str, Path]]:
    """A lab, node addresses pointed at it, a namespace, the operator, the launcher, the app."""
    nodes = [n.name for n in cp.nodes]
    originals = {n.name: n.internal_ip for n in cp.nodes}
    flags = Path(tempfile.mkdtemp(prefix="keepvip-bench-ready-"))
    for n in nodes:
        (flags / n).touch()
    with Lab(nodes=len(nodes)) as lab, namespace(cp) as ns:
        try:
            for i, name in enumerate(nodes, start=1):
                cp.set_node_address(name, str(lab.node_v4(i)))
            ensure_crd(cp)
            settings = replace(
                operator_settings(cp, ns),
                extra_pod_labels={LAUNCH_LABEL: "true"},
                agent_log_level="warning",
            )
            mapping = {n: lab.node_ns(i) for i, n in enumerate(nodes, start=1)}
            with running_operator(settings, ns, cp), PodLauncher(cp, mapping):
                cp.admin_rest().post(
                    f"/apis/apps/v1/namespaces/{ns}/daemonsets", app_daemonset(ns, flags)
                )
                wait_for(
                    "the app answering on every node", lambda: _app_ready(cp, ns) == 3, 60, 0.2
                )
                yield lab, nodes, ns, flags
        finally:
            for name, ip in originals.items():
                cp.set_node_address(name, ip)
            for f in flags.iterdir():
                f.unlink()
            flags.rmdir()


def _app_ready(cp: ControlPlane, ns: str) -> int:
    pods = cp.admin_rest().get(f"/api/v1/namespaces/{ns}/pods", labelSelector="app=web")["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
        for p in pods
    )


def create_vip(api: Rest, ns: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": NAME},
        "spec": spec,
    }
    api.post(f"{GROUP_PATH}/namespaces/{ns}/virtualips", body)


def delete_vip(api: Rest, ns: str, lab: Lab) -> None:
    """Delete and wait until the VIP, its agents (their host ports) and the address are gone."""
    api.delete(vip_path(ns), {"propagationPolicy": "Foreground"})

    def gone() -> bool:
        try:
            api.get(vip_path(ns))
            return False
        except ApiError as exc:
            if exc.status != 404:
                raise
        pods = api.get(f"/api/v1/namespaces/{ns}/pods")["items"]
        agents = [p for p in pods if p["metadata"].get("labels", {}).get("app") != "web"]
        return not agents and lab.holders() == []

    wait_for("the VirtualIP and its agents gone", gone, 60, 0.2)


# -- 1. readiness gating ----------------------------------------------------------


def fail_master_app(
    api: Rest,
    ns: str,
    lab: Lab,
    nodes: list[str],
    flags: Path,
    watch: Any,
    probe_name: str,
    seen_as: str,
    port: int = 80,
) -> dict[str, float | None]:
    """One run: fail the app on the master (nodes[0]) and time another node answering.

    ``watch`` says when the API first showed the failure (``first_not_ready``);
    ``seen_as`` names that moment in the sample (api: the pod, slice: the
    EndpointSlice). The app is made healthy again before returning.
    """
    wait_for(f"{nodes[0]} master", lambda: masters(api, ns) == [nodes[0]], 60, 0.1)
    wait_for(
        f"the client answered by the master through VIP:{port}",
        lambda: client_answer(lab, port) == nodes[0],
        20,
        0.1,
    )
    time.sleep(1.0)  # settle: adverts, status writes, role labels
    probe = Probe(lab, lab.workdir / f"{probe_name}.probe", port)  # type: ignore[operator]
    try:
        time.sleep(0.3)
        failed_at = time.monotonic()
        (flags / nodes[0]).unlink()
        answered = wait_for(
            "an answer from another node",
            lambda: probe.first(failed_at, lambda w: w not in ("-", nodes[0])),
            20,
            0.05,
        )
    finally:
        probe.stop()
    seen = watch.first_not_ready(nodes[0], failed_at)
    (flags / nodes[0]).touch()
    return {
        f"{seen_as}_not_ready_to_answer": None if seen is None else answered - seen,
        "app_failed_to_answer": answered - failed_at,
        f"app_failed_to_{seen_as}_not_ready": None if seen is None else seen - failed_at,
    }


def bench_gating(cp: ControlPlane, runs: int, actions: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lab_cluster(cp) as (lab, nodes, ns, flags):
        api = cp.admin_rest()
        watch = ReadyWatch(cp, ns)
        try:
            for action in actions:
                on_failure: dict[str, Any] = {"action": action}
                if action == "demote":
                    on_failure["weight"] = 100
                track = {"selector": {"matchLabels": {"app": "web"}}, "onFailure": on_failure}
                create_vip(api, ns, base_spec(nodes, trackPods=track))
                samples = []
                for run in range(runs):
                    sample = fail_master_app(
                        api, ns, lab, nodes, flags, watch, f"gating-{action}-{run}", "api"
                    )
                    print(f"gating {action} run {run + 1}: " + json.dumps(sample), flush=True)
                    samples.append(sample)
                out[action] = summarize(samples)
                delete_vip(api, ns, lab)
        finally:
            watch.stop()
    return out


# -- 1b. Service endpoints (serviceRef, externalTrafficPolicy Local) ----------------


def bench_service(cp: ControlPlane, runs: int) -> dict[str, Any]:
    """As gating, but the agents read the Service's EndpointSlices; the client goes through
    the kube-proxy stand-in (``keepvip_harness.servicenet``) on VIP:8080."""
    samples = []
    with lab_cluster(cp) as (lab, nodes, ns, flags):
        api = cp.admin_rest()
        api.post(
            f"/api/v1/namespaces/{ns}/services",
            service(type_="NodePort", externalTrafficPolicy="Local"),
        )
        netns = {n: lab.node_ns(i) for i, n in enumerate(nodes, start=1)}
        watch = SliceWatch(cp, ns)
        try:
            with ServiceNet(api, ns, ["web"], netns):
                create_vip(api, ns, base_spec(nodes, serviceRef={"name": "web"}))
                for run in range(runs):
                    sample = fail_master_app(
                        api, ns, lab, nodes, flags, watch, f"service-{run}", "slice", PORT
                    )
                    print(f"service run {run + 1}: " + json.dumps(sample), flush=True)
                    samples.append(sample)
                delete_vip(api, ns, lab)
        finally:
            watch.stop()
    return summarize(samples)


# -- 2. apply to master ------------------------------------------------------------


def bench_apply(cp: ControlPlane, runs: int) -> dict[str, Any]:
    samples = []
    with lab_cluster(cp) as (lab, nodes, ns, _flags):
        api = cp.admin_rest()
        for run in range(runs):
            probe = Probe(lab, lab.workdir / f"apply-{run}.probe")  # type: ignore[operator]
            try:
                time.sleep(0.3)
                t0 = time.monotonic()
                create_vip(api, ns, base_spec(nodes))
                wait_for(
                    "status.master",
                    lambda: (api.get(vip_path(ns)).get("status") or {}).get("master"),
                    90,
                    0.02,
                )
                master_at = time.monotonic()
                answered = wait_for(
                    "the client answered",
                    lambda p=probe, t=t0: p.first(t, lambda w: w != "-"),
                    60,
                    0.05,
                )
            finally:
                probe.stop()
            sample = {
                "apply_to_status_master": master_at - t0,
                "apply_to_client_answer": answered - t0,
            }
            print(f"apply run {run + 1}: " + json.dumps(sample), flush=True)
            samples.append(sample)
            delete_vip(api, ns, lab)
    return summarize(samples)


# -- summary and report ------------------------------------------------------------


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"samples": samples}
    for key in samples[0] if samples else []:
        vals = [s[key] for s in samples if s[key] is not None]
        out[key] = {"median": median(vals), "worst": max(vals) if vals else None, "n": len(vals)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10, help="readiness-gating runs per action")
    p.add_argument("--apply-runs", type=int, default=5)
    p.add_argument("--actions", default="fault,demote", help="trackPods onFailure actions to time")
    p.add_argument("--only", default="gating,service,apply")
    p.add_argument("--quick", action="store_true", help="3 runs, 2 applies")
    p.add_argument("--out", type=Path, default=RESULTS / "cluster.json")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.apply_runs = 3, 2
    bin_dir, reason = find_bin_dir()
    if bin_dir is None:
        print(f"no control-plane binaries: {reason}", file=sys.stderr)
        return 2
    parts = args.only.split(",")
    if "scale" in parts:
        p.error("the scale part is benchmarks/cluster_scale.py (the node-agent layout)")
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(),
        "uptime_before": subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    # SIGTERM unwinds like Ctrl-C, so the control plane, lab and operator are torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cp = ControlPlane(bin_dir=bin_dir)
    with cp.running():
        result["versions"] = versions(cp)
        if "apply" in parts:
            result["apply_to_master"] = bench_apply(cp, args.apply_runs)
        if "gating" in parts:
            result["readiness_gating"] = bench_gating(cp, args.runs, args.actions.split(","))
        if "service" in parts:
            result["service_endpoints"] = bench_service(cp, args.runs)
    result["uptime_after"] = subprocess.run(
        ["uptime"], capture_output=True, text=True, check=False
    ).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
