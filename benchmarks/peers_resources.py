"""Scenario ``resources`` of benchmarks/peers.py: pods, memory and CPU of each implementation at idle.

Read from the host, the same way for all three: kind's node containers share
the host's kernel, so every process of an implementation is in the host's
/proc. A process is counted for an implementation by its program name
(keepvip-agent, keepvip-operator; MetalLB's speaker, controller; kube-vip)
and placed on a node by the node container's id in /proc/PID/cgroup. CPU is
``utime + stime`` over an idle window, in percent of one core; memory is
VmRSS at the end of it. Pods per node come from the API (every pod in
keepvip's and MetalLB's namespaces; kube-vip's DaemonSet pods in kube-system). Measured with the implementation's one Service of
the other scenarios, and again with 50 (addresses 198.51.100.64-113, one
implementation at a time, removed after).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import peers_install as inst
from keepvip_harness import kindctl
from keepvip_harness.labdaemons import proc_cpu_seconds, proc_rss_bytes

PROGRAMS = {
    inst.KEEPVIP: {"keepvip-agent", "keepvip-operator"},
    inst.METALLB: {"speaker", "controller"},
    inst.KUBE_VIP: {"kube-vip"},
}
PODS = {
    inst.KEEPVIP: (kindctl.CHART_NAMESPACE, []),
    inst.METALLB: (inst.METALLB_NS, []),
    inst.KUBE_VIP: (inst.KUBE_VIP_NS, ["-l", "app.kubernetes.io/name=kube-vip-ds"]),
}
SCALE_FIRST = 64  # 198.51.100.64 .. .113: kindctl's scale block and what follows it
MiB = 1024 * 1024


def _program(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    names = [Path(a.decode(errors="replace")).name for a in argv[:2] if a]
    for programs in PROGRAMS.values():
        for name in names:
            if name in programs:
                return name
    return None


def processes(cluster: kindctl.Cluster, impl: str) -> list[tuple[str, str, int]]:
    """(node, program, pid) of every process of ``impl`` on the cluster's nodes."""
    ids = {cluster.docker.inspect(n)["Id"]: n for n in cluster.node_containers()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        name = _program(int(entry.name))
        if name not in PROGRAMS[impl]:
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        node = next((n for cid, n in ids.items() if cid in cgroups), None)
        if node:
            found.append((node, name, int(entry.name)))
    return found


def pods_per_node(cluster: kindctl.Cluster, impl: str) -> dict[str, int]:
    """Running pods of ``impl`` by node, from the API."""
    ns, selector = PODS[impl]
    count: dict[str, int] = {}
    for pod in cluster.get("pods", "-n", ns, *selector)["items"]:
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            node = pod["spec"].get("nodeName", "?")
            count[node] = count.get(node, 0) + 1
    return dict(sorted(count.items()))


def measure(cluster: kindctl.Cluster, impl: str, window: float) -> dict[str, Any]:
    procs = processes(cluster, impl)
    before = {pid: proc_cpu_seconds(pid) for _, _, pid in procs}
    time.sleep(window)
    per_node: dict[str, dict[str, float]] = {}
    for node, _, pid in procs:
        try:
            cpu = proc_cpu_seconds(pid) - before[pid]
            rss = proc_rss_bytes(pid)
        except OSError:
            continue
        slot = per_node.setdefault(node, {"processes": 0, "cpu_pct": 0.0, "rss_mib": 0.0})
        slot["processes"] += 1
        slot["cpu_pct"] += 100 * cpu / window
        slot["rss_mib"] += rss / MiB
    return {
        "per_node": {
            n: {k: round(v, 2) for k, v in s.items()} for n, s in sorted(per_node.items())
        },
        "cpu_pct_total": round(sum(s["cpu_pct"] for s in per_node.values()), 2),
        "rss_mib_total": round(sum(s["rss_mib"] for s in per_node.values()), 1),
        "processes": sum(int(s["processes"]) for s in per_node.values()),
        "pods_per_node": pods_per_node(cluster, impl),
    }


def scale_objects(impl: str, count: int, policy: str, advert: str) -> list[dict[str, Any]]:
    """``count`` more Services of ``impl`` (and, for keepvip and MetalLB, a pool of their
    addresses; kube-vip takes each from its annotation). ``advert``: keepvip's pool's advert
    interval, the setting under test's (kube-vip's Services follow its DaemonSet's flags)."""
    addresses = [f"198.51.100.{SCALE_FIRST + k}" for k in range(count)]
    objects: list[dict[str, Any]] = []
    if impl == inst.KEEPVIP:
        objects.append({
            "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIPPool",
            "metadata": {"name": "peers-scale"},
            "spec": {
                "addresses": [f"{addresses[0]}-{addresses[-1]}"], "advertInterval": advert,
                "namespaces": [inst.NAMESPACE],
            },
        })  # fmt: skip
    elif impl == inst.METALLB:
        pool, adv = inst.metallb_config(f"{addresses[0]}-{addresses[-1]}")
        pool["metadata"]["name"] = adv["metadata"]["name"] = "peers-scale"
        pool["spec"]["addresses"] = [f"{addresses[0]}-{addresses[-1]}"]
        adv["spec"]["ipAddressPools"] = ["peers-scale"]
        objects += [pool, adv]
    for k, address in enumerate(addresses):
        objects.append(inst.service(impl, address, policy, name=f"scale-{impl}-{k}"))
    return objects
