"""keepvip, MetalLB (layer 2) and kube-vip (ARP) side by side on one kind cluster, one client.

``.venv/bin/python benchmarks/peers.py [--scenarios crash,drain,agent,create] [--runs 3]
[--phases default,tuned,lease15] [--policy Cluster] [--fresh]`` (root; takes the kind
cluster of ``make kind-up``, reused or created and removed again; run it inside
``flock /tmp/keepvip-kind.lock flock /tmp/keepvip-heavy.lock``). ``hack/peers/run.sh``
runs the whole in pieces of one round and phase each, so that no piece holds the locks
long, with ``KEEPVIP_KEEP_KIND=1 KEEPVIP_KEEP_PEERS=1`` so the pieces share one cluster.

Each implementation serves an identical LoadBalancer Service of its own class
and address in front of one app Deployment (a pod per worker, pod network).
One client container on the kind network probes the Service under test
(a GET every 5 ms, 100 ms timeout). Per scenario and round the
implementations take turns (keepvip, MetalLB, kube-vip), each run aimed at the
node that answers for that implementation's address (read from the client's
ARP entry, the same way for all three):

  crash    ``docker kill`` of that node; the node is started again after the run
  hang     ``docker pause`` of that node (unpaused after the run)
  drain    ``kubectl drain`` of that node (uncordoned after)
  agent    deleting that node's speaker / agent pod (the DaemonSet makes a new one)
  create   a new Service (the others' stay) until its address first answers
  api      kube-apiserver SIGSTOPped 60 s, then a ``docker kill`` while it is still
           stopped. One freeze serves every implementation of the phase at once (a
           probe each, side by side: the same 60 s for all); the node killed after it
           is the one answering for one of them, the one with the fewest such runs so
           far, and the crash is counted for each implementation that node answered for
  local    (policy Local) the app on that node stops being Ready

Phases: ``default`` (every implementation at its upstream defaults), ``tuned``
(keepvip at 100 ms adverts, kube-vip at lease 3/2/1 with per-Service
election; MetalLB has no timer setting) and ``lease15`` (kube-vip at the
15/10/2 s lease of its later releases). Results are merged by (scenario,
policy, setting) into benchmarks/results/peers.json (added to what is there unless
``--fresh``), and peers.md is written from the whole file, so every piece adds runs. Nothing here gates CI.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import peers_install as inst
import peers_report
import peers_resources
from keepvip_api.names import NODE_AGENT_SELECTOR
from keepvip_harness import kindctl
from keepvip_harness.dockerctl import Docker
from keepvip_harness.kindsuite import deployed_image
from keepvip_harness.labdaemons import machine
from peers_probe import LiveProbe, holder, mac_of, outcome, takeover

RESULTS = Path(__file__).resolve().parent / "results"
PHASES = {
    "default": [("keepvip", "default"), ("metallb", "default"), ("kube-vip", "default")],
    "tuned": [("keepvip", "tuned"), ("kube-vip", "tuned")],
    "lease15": [("kube-vip", "lease 15/10/2")],
}
AGENT_PODS = {
    inst.KEEPVIP: (
        kindctl.CHART_NAMESPACE,
        ",".join(f"{k}={v}" for k, v in NODE_AGENT_SELECTOR.items()),
    ),
    inst.METALLB: (inst.METALLB_NS, "component=speaker"),
    inst.KUBE_VIP: (inst.KUBE_VIP_NS, "app.kubernetes.io/name=kube-vip-ds"),
}


STEADY = 2.0  # s: see Bench.settle
FRESH_EVERY = 0.02  # s: a new client's request (ARP resolved each time) in the api scenario


def setting(impl: str, name: str) -> inst.Setting:
    (found,) = [s for s in inst.SETTINGS if s.impl == impl and s.name == name]
    return found


@dataclass
class Bench:
    cluster: kindctl.Cluster
    docker: Docker
    client: str
    fresh_client: str  # for the probes that resolve the address anew each time (api)
    policy: str
    addresses: dict[str, str]
    current: dict[str, inst.Setting] = field(default_factory=dict)

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.cluster.kubectl(*args, **kw)

    # -- configuration ------------------------------------------------------------------------

    def configure(self, s: inst.Setting) -> None:
        if self.current.get(s.impl) == s:
            return
        if s.impl == inst.KEEPVIP:
            self.cluster.apply(inst.keepvip_pool(self.addresses[s.impl], s))
            # A new VirtualIP from the pool's new defaults: the Service again.
            self.kubectl(
                "delete",
                "service",
                f"lb-{s.impl}",
                "-n",
                inst.NAMESPACE,
                "--ignore-not-found",
                "--wait=true",
            )
        elif s.impl == inst.KUBE_VIP:
            inst.install_kube_vip(self.cluster, s)
        self.current[s.impl] = s
        self.ensure_service(s.impl)

    def ensure_service(self, impl: str) -> None:
        self.cluster.apply(inst.service(impl, self.addresses[impl], self.policy))

    def answers(self, impl: str) -> bool:
        return (
            holder(self.cluster, self.client, self.addresses[impl], inst.SERVICE_PORT) is not None
        )

    def settle(self, impl: str) -> str:
        """Everything back to normal; the node answering for ``impl``'s address."""
        self.cluster.revive()
        kindctl.wait_until("3 Ready app pods", self.app_ready, 300)
        for ns, selector in AGENT_PODS.values():
            kindctl.wait_until(
                f"{selector} Ready", lambda ns=ns, sel=selector: self.pods_ready(ns, sel), 300
            )
        # The same node twice, STEADY s apart: a revived node can take the address back
        # (keepvip's priority, MetalLB's hash over the live nodes) just after it is Ready.
        seen: list[str | None] = []

        def steady() -> str | None:
            seen.append(holder(self.cluster, self.client, self.addresses[impl], inst.SERVICE_PORT))
            return seen[-1] if len(seen) > 1 and seen[-1] == seen[-2] else None

        found: str = kindctl.wait_until(f"a node answering for {impl}", steady, 120, every=STEADY)
        return found

    def app_ready(self) -> bool:
        dep = self.cluster.get("deployment", "web", "-n", inst.NAMESPACE)["status"]
        return bool(dep.get("readyReplicas") == 3 and dep.get("updatedReplicas") == 3)

    def pods_ready(self, ns: str, selector: str) -> bool:
        pods = self.cluster.get("pods", "-n", ns, "-l", selector)["items"]
        nodes = {p["spec"].get("nodeName") for p in pods}
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return set(self.cluster.workers()) <= nodes and all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
            for p in live
        )

    def probe(self, impl: str, fresh: bool = False) -> LiveProbe:
        if fresh:
            return LiveProbe(
                self.docker, self.fresh_client, self.addresses[impl], inst.SERVICE_PORT,
                every=FRESH_EVERY, fresh=True,
            )  # fmt: skip
        return LiveProbe(self.docker, self.client, self.addresses[impl], inst.SERVICE_PORT)


# -- the scenarios ----------------------------------------------------------------------------


def taken_over(p: LiveProbe, since: float, old_mac: str) -> dict[str, Any]:
    """The outage: until a request is answered through another node's MAC (with
    externalTrafficPolicy Cluster the old node's own pod dies first while the node still
    forwards to the others, so the first answer after a failure proves nothing)."""
    t = takeover(p.lines, p.macs, since, old_mac)
    return {**outcome(p.lines, since).as_dict(), "outage_s": None if t is None else round(t, 3)}


def crash(b: Bench, impl: str, node: str) -> dict[str, Any]:
    old_mac = mac_of(b.cluster, node)
    p = b.probe(impl)
    time.sleep(1.0)
    since = time.monotonic()
    b.docker("kill", node)
    p.until_taken_over(since, old_mac, 90)
    p.stop()
    return taken_over(p, since, old_mac)


def hang(b: Bench, impl: str, node: str) -> dict[str, Any]:
    old_mac = mac_of(b.cluster, node)
    p = b.probe(impl)
    time.sleep(1.0)
    since = time.monotonic()
    b.docker("pause", node)
    try:
        p.until_taken_over(since, old_mac, 90)
    finally:
        b.docker("unpause", node)
    p.stop()
    return taken_over(p, since, old_mac)


def moved(p: LiveProbe, since: float, old_mac: str) -> dict[str, Any]:
    """What the client saw, and when (if at all) another node first answered."""
    t = takeover(p.lines, p.macs, since, old_mac)
    return {**outcome(p.lines, since).as_dict(), "moved_s": None if t is None else round(t, 3)}


def drain(b: Bench, impl: str, node: str) -> dict[str, Any]:
    old_mac = mac_of(b.cluster, node)
    p = b.probe(impl)
    time.sleep(1.0)
    since = time.monotonic()
    try:
        b.kubectl(
            "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
            "--timeout=120s", timeout=180,
        )  # fmt: skip
        drained = time.monotonic() - since
        p.until(time.monotonic() + 5.0)
    finally:
        b.kubectl("uncordon", node)
    p.stop()
    return {**moved(p, since, old_mac), "drain_s": round(drained, 3)}


def agent(b: Bench, impl: str, node: str) -> dict[str, Any]:
    ns, selector = AGENT_PODS[impl]
    pods = b.cluster.get(
        "pods", "-n", ns, "-l", selector, "--field-selector", f"spec.nodeName={node}"
    )["items"]
    (pod,) = [x["metadata"]["name"] for x in pods]
    old_mac = mac_of(b.cluster, node)
    p = b.probe(impl)
    time.sleep(1.0)
    since = time.monotonic()
    b.kubectl("delete", "pod", "-n", ns, pod, "--wait=false")
    p.until_taken_over(since, old_mac, 15)
    p.stop()
    return moved(p, since, old_mac)


def create(b: Bench, impl: str, node: str) -> dict[str, Any]:
    del node
    name = f"lb-{impl}"
    b.kubectl("delete", "service", name, "-n", inst.NAMESPACE, "--wait=true")
    kindctl.wait_until("the address unanswered", lambda: not b.answers(impl), 120, every=1)
    p = b.probe(impl)
    time.sleep(0.5)
    since = time.monotonic()
    b.ensure_service(impl)
    # kubectl's own start-up is in the figure for all three; when it returned says how much.
    applied = time.monotonic() - since
    p.take_until(since + 60, lambda: any(at >= since and who != "-" for at, who in p.lines))
    p.stop()
    first = next((at - since for at, who in p.lines if at >= since and who != "-"), None)
    return {
        "first_answer_s": None if first is None else round(first, 3),
        "apply_returned_s": round(applied, 3),
    }


def api(b: Bench, nodes: dict[str, str], target: str) -> dict[str, dict[str, Any]]:
    """The API server frozen 60 s under every implementation in ``nodes`` (impl -> the node
    answering for it), then ``nodes[target]`` killed while it is still frozen; a result
    per implementation."""
    cp = b.cluster.control_plane
    pid = b.docker("exec", cp, "pgrep", "-x", "kube-apiserver").split()[0]
    probes = {impl: b.probe(impl) for impl in nodes}
    # A new client's view beside it: the address resolved afresh every 20 ms. An existing
    # client keeps reaching a node that stopped claiming the address (kube-proxy forwards
    # by destination), so the two can differ.
    fresh = {impl: b.probe(impl, fresh=True) for impl in nodes}
    killed_node = nodes[target]
    old_mac = mac_of(b.cluster, killed_node)
    out: dict[str, dict[str, Any]] = {}
    time.sleep(1.0)
    since = time.monotonic()
    b.docker("exec", cp, "kill", "-STOP", pid)
    try:
        # Each probe's lines wait in its queue: reading them one probe after the other
        # loses nothing.
        for impl, p in probes.items():
            p.until(since + 60)
            frozen = outcome(p.lines, since, since + 60).as_dict()
            f = fresh[impl]
            f.until(since + 60)
            anew = outcome(f.lines, since, since + 60).as_dict()
            out[impl] = {
                "frozen_unanswered_s": frozen["unanswered_s"],
                "frozen_longest_gap_s": frozen["longest_gap_s"],
                "frozen_new_client_unanswered_s": anew["unanswered_s"],
                "frozen_new_client_longest_gap_s": anew["longest_gap_s"],
                "killed": killed_node,
            }
            f.stop()
        killed = time.monotonic()
        b.docker("kill", killed_node)
        for impl, p in probes.items():
            if nodes[impl] == killed_node:
                p.until_taken_over(killed, old_mac, 30)
                out[impl] |= {f"crash_{k}": v for k, v in taken_over(p, killed, old_mac).items()}
    finally:
        # check=False: had kubelet's liveness probe (8 failures of 10 to 15 s) restarted it
        # meanwhile, the pid would be gone, and the run is still a run.
        b.docker("exec", cp, "kill", "-CONT", pid, check=False)
        for p in [*probes.values(), *fresh.values()]:
            p.stop()
    kindctl.wait_until("the API server answering", lambda: b.cluster.get("nodes") and True, 120)
    return out


def api_target(impls: list[str], setting_of: dict[str, str], history: list[dict[str, Any]]) -> str:
    """The implementation whose node the next ``api`` run kills: the one with the fewest
    runs so far in which its own node was killed (in ``impls``' order on a tie)."""

    def hit(impl: str) -> int:
        return sum(
            1
            for r in history
            if r["scenario"] == "api"
            and r["impl"] == impl
            and r["setting"] == setting_of[impl]
            and "crash_outage_s" in r
        )

    return min(impls, key=lambda impl: (hit(impl), impls.index(impl)))


def local(b: Bench, impl: str, node: str) -> dict[str, Any]:
    pods = b.cluster.get(
        "pods", "-n", inst.NAMESPACE, "-l", "app=web", "--field-selector", f"spec.nodeName={node}"
    )
    (pod,) = [x["metadata"]["name"] for x in pods["items"]]
    p = b.probe(impl)
    time.sleep(1.0)
    since = time.monotonic()
    b.kubectl("exec", "-n", inst.NAMESPACE, pod, "--", "rm", "/tmp/ready")

    # With Local the answer names the node: the outage is until a node other than ``node``.
    def other_node() -> float | None:
        return next(
            (at - since for at, who in p.lines if at >= since and who not in {"-", node}), None
        )

    try:
        p.take_until(
            since + 60,
            lambda: (t := other_node()) is not None and p.lines[-1][0] >= since + t + 1.0,
        )
    finally:
        b.kubectl("exec", "-n", inst.NAMESPACE, pod, "--", "touch", "/tmp/ready")
    p.stop()
    other = other_node()
    return {
        **outcome(p.lines, since).as_dict(),
        "other_node_s": None if other is None else round(other, 3),
    }


WINDOW = 10.0  # s: each idle measurement (CPU ticks are 10 ms: 0.1 % of a core)
SETTLE_50 = 30.0  # s after the 50th address was published, before the first window
# "Idle" with 50 Services: back-to-back windows until two in a row agree (within
# QUIET_REL of each other, or QUIET_ABS points of a core), at most QUIET_MAX s after
# SETTLE_50; the figure is the last window. keepvip's CPU does not fall to zero (every
# VirtualIP keeps advertising), so quiet means steady, not silent.
QUIET_REL, QUIET_ABS, QUIET_MAX = 0.15, 0.3, 120.0


def quiet(b: Bench, impl: str) -> tuple[dict[str, Any], list[float]]:
    """Idle windows until two in a row agree (see QUIET_REL); the last, and every window's CPU."""
    deadline = time.monotonic() + QUIET_MAX
    last = peers_resources.measure(b.cluster, impl, WINDOW)
    windows = [last["cpu_pct_total"]]
    while time.monotonic() < deadline:
        now = peers_resources.measure(b.cluster, impl, WINDOW)
        windows.append(now["cpu_pct_total"])
        before, after = windows[-2], windows[-1]
        last = now
        if abs(after - before) <= max(QUIET_ABS, QUIET_REL * max(before, after)):
            break
    return last, windows


def resources(b: Bench, impl: str, node: str) -> dict[str, Any]:
    del node
    one = peers_resources.measure(b.cluster, impl, WINDOW)
    objects = peers_resources.scale_objects(impl, 50, b.policy, b.current[impl].advert)
    b.cluster.apply(*objects)
    services = [o for o in objects if o["kind"] == "Service"]

    def assigned() -> bool:
        got = b.cluster.get("services", "-n", inst.NAMESPACE)["items"]
        ready = {
            s["metadata"]["name"]
            for s in got
            if (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
        }
        return all(s["metadata"]["name"] in ready for s in services)

    try:
        kindctl.wait_until("50 Services with an address", assigned, 300, every=2)
        published = time.monotonic()
        time.sleep(SETTLE_50)
        fifty, windows = quiet(b, impl)
        fifty |= {
            "windows_cpu_pct": windows,
            "quiet_after_s": round(time.monotonic() - published, 1),
        }
    finally:
        for o in reversed(objects):
            ns = ["-n", o["metadata"]["namespace"]] if "namespace" in o["metadata"] else []
            b.kubectl(
                "delete",
                o["kind"].lower(),
                o["metadata"]["name"],
                *ns,
                "--ignore-not-found",
                # Gone before the next implementation takes the same 50 addresses.
                "--wait=true",
                check=False,
                timeout=180,
            )
    # keepvip's 50 have the advert interval of the setting under test (runs before 2026-12-07
    # 05:20 UTC, without this field, had the default 1 s for them).
    return {"idle_1": one, "idle_50": fifty, "scale_advert": b.current[impl].advert}


SCENARIOS: dict[str, Callable[[Bench, str, str], dict[str, Any]]] = {
    "crash": crash, "hang": hang, "drain": drain, "agent": agent, "create": create,
    "local": local, "resources": resources,
}  # fmt: skip
JOINT = {"api": api}  # one run serves every implementation of the phase


# -- the whole ----------------------------------------------------------------------------------


def setup(cluster: kindctl.Cluster, docker: Docker, policy: str) -> Bench:
    image = deployed_image(cluster)
    inst.load_images(cluster)
    cluster.kubectl("create", "namespace", inst.NAMESPACE, check=False)
    cluster.apply(inst.app(image))
    kindctl.wait_until("3 Ready app pods", lambda: _app_ready(cluster), 300)
    top = cluster.subnet.broadcast_address
    addresses = {
        inst.KEEPVIP: str(top - 6),
        inst.METALLB: str(top - 5),
        inst.KUBE_VIP: str(top - 4),
    }
    inst.install_metallb(cluster, addresses[inst.METALLB])
    # Root with NET_ADMIN in its own network namespace only: it deletes its own ARP entry
    # for an address before asking who answers (peers_probe.holder).
    root = ["--network", cluster.network, "--user", "0", "--cap-add", "NET_ADMIN"]
    client = docker.run(*root, image, "sleep", "infinity")
    fresh_client = docker.run(*root, image, "sleep", "infinity")
    b = Bench(cluster, docker, client, fresh_client, policy, addresses)
    for impl, name in PHASES["default"]:
        b.configure(setting(impl, name))
    return b


def _app_ready(cluster: kindctl.Cluster) -> bool:
    status = cluster.get("deployment", "web", "-n", inst.NAMESPACE)["status"]
    return bool(status.get("readyReplicas") == 3)


def teardown(cluster: kindctl.Cluster) -> None:
    """Remove what setup() made, by name."""
    k = cluster.kubectl
    k(
        "delete",
        "namespace",
        inst.NAMESPACE,
        "--ignore-not-found",
        "--wait=true",
        check=False,
        timeout=300,
    )
    k("delete", "virtualippool", "peers", "--ignore-not-found", check=False)
    with contextlib.suppress(Exception):
        k(
            "delete",
            "--ignore-not-found",
            "-f",
            "-",
            stdin="\n---\n".join(
                json.dumps(o) for o in inst.kube_vip_objects(setting(inst.KUBE_VIP, "default"))
            ),
            check=False,
        )
    with contextlib.suppress(Exception):
        k(
            "delete",
            "--ignore-not-found",
            "--wait=true",
            "-f",
            "-",
            stdin="\n---\n".join(json.dumps(o) for o in inst.metallb_objects()),
            check=False,
            timeout=300,
        )


def run(
    b: Bench,
    scenarios: list[str],
    phases: list[str],
    runs: int,
    save: Callable[[list[dict[str, Any]]], None],
    history: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every run, implementations taking turns within a round (a joint scenario, ``api``,
    after them: one run for all); ``save`` after each run so that a run cut short keeps
    what it measured. A run that fails is recorded with its error (and left out of the
    figures); three in a row stop the benchmark. ``history``: the runs of earlier pieces."""
    samples: list[dict[str, Any]] = []
    errors = 0

    def record(new: list[dict[str, Any]], started: float, exc: Exception | None) -> None:
        nonlocal errors
        errors = errors + 1 if exc else 0
        for sample in new:
            if exc:
                sample["error"] = str(exc)[-500:]
            sample["run_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(sample), flush=True)
        samples.extend(new)
        save(samples)
        if exc and errors >= 3:
            raise exc

    for phase in phases:
        for r in range(runs):
            for impl, name in PHASES[phase]:
                for scenario in [x for x in scenarios if x not in JOINT]:
                    sample: dict[str, Any] = {
                        "scenario": scenario, "policy": b.policy, "impl": impl, "setting": name,
                        "round": r,
                    }  # fmt: skip
                    started, failure = time.monotonic(), None
                    try:
                        b.configure(setting(impl, name))
                        node = b.settle(impl)
                        started = time.monotonic()
                        sample |= {"node": node, **SCENARIOS[scenario](b, impl, node)}
                    except (AssertionError, RuntimeError, subprocess.SubprocessError) as exc:
                        failure = exc
                    record([sample], started, failure)
            for scenario in [x for x in scenarios if x in JOINT]:
                setting_of = dict(PHASES[phase])
                impls = list(setting_of)
                new: list[dict[str, Any]] = [
                    {"scenario": scenario, "policy": b.policy, "impl": impl,
                     "setting": setting_of[impl], "round": r}
                    for impl in impls
                ]  # fmt: skip
                started, failure = time.monotonic(), None
                try:
                    for impl in impls:
                        b.configure(setting(impl, setting_of[impl]))
                    nodes = {impl: b.settle(impl) for impl in impls}
                    target = api_target(impls, setting_of, [*(history or []), *samples])
                    started = time.monotonic()
                    got = JOINT[scenario](b, nodes, target)
                    for one in new:
                        one |= {"node": nodes[one["impl"]], **got[one["impl"]]}
                except (AssertionError, RuntimeError, subprocess.SubprocessError) as exc:
                    failure = exc
                record(new, started, failure)
    return samples


def merge(
    base: dict[str, Any], samples: list[dict[str, Any]], command: str, versions: dict[str, Any]
) -> dict[str, Any]:
    """``samples`` added to the runs already in ``base`` (pieces of one benchmark accumulate)."""
    doc = copy.deepcopy(base)
    # Pieces may run different keepvip commits (a merge between them): each run says which.
    doc["runs"] += [{**x, "keepvip": versions["keepvip"]} for x in samples]
    doc["commands"] = [
        *doc.get("commands", []),
        {"command": command, "date": datetime.now(UTC).isoformat(timespec="seconds")},
    ]
    doc["versions"] = versions
    doc["settings"] = {s.label: s.describe for s in inst.SETTINGS}
    doc["machine"] = machine()
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="crash,drain,agent,create")
    parser.add_argument("--phases", default="default,tuned,lease15")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--policy", choices=["Cluster", "Local"], default="Cluster")
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    parser.add_argument(
        "--report", action="store_true", help="only rewrite peers.md from peers.json"
    )
    parser.add_argument(
        "--teardown",
        action="store_true",
        help="only remove what earlier pieces left on the cluster (the peers, the app)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start peers.json afresh (default: add to it)"
    )
    args = parser.parse_args(argv)
    if args.report:
        peers_report.write(args.out.with_suffix(".md"), json.loads(args.out.read_text()))
        return 0
    if args.teardown:
        host, _ = kindctl.docker_daemon()
        # The running cluster as it is: no keepvip rebuild or chart upgrade just to clean up.
        teardown(kindctl.Cluster(Docker("/usr/bin/docker", host), None, kindctl.kubectl_binary()))
        return 0
    scenarios, phases = args.scenarios.split(","), args.phases.split(",")
    unknown = sorted(set(scenarios) - set(SCENARIOS) - set(JOINT)) + sorted(
        set(phases) - set(PHASES)
    )
    if unknown:
        parser.error(f"unknown scenario or phase: {', '.join(unknown)}")

    host, started_daemon = kindctl.docker_daemon()
    docker = Docker("/usr/bin/docker", host)
    cluster: kindctl.Cluster | None = None
    base: dict[str, Any] = (
        json.loads(args.out.read_text())
        if args.out.exists() and not args.fresh
        else {"runs": [], "commands": []}
    )
    command = ".venv/bin/python benchmarks/peers.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    versions = peers_report.versions()

    def save(samples: list[dict[str, Any]]) -> None:
        doc = merge(base, samples, command, versions)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        peers_report.write(args.out.with_suffix(".md"), doc)

    try:
        cluster = kindctl.up(docker)
        b = setup(cluster, docker, args.policy)
        run(b, scenarios, phases, args.runs, save, base["runs"])
    finally:
        docker.cleanup()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.revive()
            if cluster.created and os.environ.get("KEEPVIP_KEEP_KIND") != "1":
                kindctl.down(docker)
            elif os.environ.get("KEEPVIP_KEEP_PEERS") != "1":
                teardown(cluster)
        if (
            started_daemon
            and (cluster is None or cluster.created)
            and os.environ.get("KEEPVIP_KEEP_KIND") != "1"
        ):
            subprocess.run([str(kindctl.KIND_HACK / "dockerd.sh"), "stop"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
