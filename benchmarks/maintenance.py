"""Client-observed outage of planned maintenance: cordon, keepvip drain, keepvip move, an agent roll.

``.venv/bin/python benchmarks/maintenance.py [--rounds 5]`` (root; needs the control-plane
binaries from ``make controlplane-build``).

On the real control plane (the test harness starts its own and tears it down, also on
failure): keepvip-operator in-process renders the node agent DaemonSet, the pod launcher
runs the real agents in three lab node namespaces on one bridge, the real
kube-controller-manager rolls the DaemonSet. One VirtualIP at 100 ms adverts (priorities
150/120/100, preempt off once the first node is master) in front of a responder on every
node; a client in its own namespace asks the VIP who answers every 10 ms (100 ms timeout)
for the whole run. Each round: cordon the master's node (then uncordon), ``keepvip move``
it back, ``keepvip drain`` the master's node (then undrain), move it back, and
``kubectl rollout restart`` of the agent DaemonSet (every agent gets SIGTERM in turn). For
each event: the longest stretch without any answer from the event until one second after
it settled, and the moves (changes of the answering node). Medians and worst of the
rounds are printed and written to benchmarks/results/maintenance.json and .md. There is
no peer here to run side by side: keepalived's counterpart of a planned move is stopping
the daemon (priority 0), measured against keepvip's SIGTERM in benchmarks/failover.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepvip_harness.clusterlab import NAME, masters
from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane, find_bin_dir
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd, namespace, versions
from keepvip_harness.labdaemons import answerers, machine, read_probe, unanswered
from keepvip_harness.operatorrun import operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_tools.cli import main as keepvip
from keepvip_tools.lab.topology import VIP4, Lab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EVENTS = ("cordon", "move", "drain", "move back", "agent roll")


def wait(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if got := check():
                return got
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def window(probe: Path, start: float, end: float) -> tuple[float, int]:
    """Longest stretch without an answer in [start, end], and how often the answerer changed."""
    seen = read_probe(probe)
    moves = max(0, len(answerers(seen, start, end)) - 1)
    return max(unanswered(seen, start, end), default=0.0), moves


@contextlib.contextmanager
def lab_with_agents(cp: ControlPlane) -> Iterator[tuple[Lab, list[str], str, Path]]:
    nodes = [n.name for n in cp.nodes]
    originals = {n.name: n.internal_ip for n in cp.nodes}
    with Lab(nodes=len(nodes)) as lab, namespace(cp) as ns:
        try:
            for i, name in enumerate(nodes, start=1):
                cp.set_node_address(name, str(lab.node_v4(i)))
                lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder",
                                           name])  # fmt: skip
            ensure_crd(cp)
            settings = replace(
                operator_settings(cp, ns),
                extra_pod_labels={LAUNCH_LABEL: "true"},
                agent_log_level="warning",
            )
            mapping = {n: lab.node_ns(i) for i, n in enumerate(nodes, start=1)}
            probe = Path(lab.workdir or "/tmp") / "probe.log"
            with running_operator(settings, ns, cp), PodLauncher(cp, mapping):
                yield lab, nodes, ns, probe
        finally:
            for name, ip in originals.items():
                cp.set_node_address(name, ip)


def rolled(cp: ControlPlane, ns: str, generation: int) -> bool:
    ds = cp.admin_rest().get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent")
    st = ds.get("status") or {}
    desired = st.get("desiredNumberScheduled") or 0
    return bool(
        st.get("observedGeneration", 0) >= generation
        and desired
        and st.get("updatedNumberScheduled") == desired
        and st.get("numberReady") == desired
    )


def run(cp: ControlPlane, rounds: int) -> dict[str, list[dict[str, float]]]:
    api = cp.admin_rest()
    samples: dict[str, list[dict[str, float]]] = {e: [] for e in EVENTS}
    with lab_with_agents(cp) as (lab, nodes, ns, probe_log):
        kubeconfig = ["--kubeconfig", str(cp.admin_kubeconfig)]
        spec = {
            "addresses": [f"{VIP4}/24"],
            "virtualRouterID": 51,
            "advertInterval": "100ms",
            "preempt": True,
            "nodes": [
                {"name": n, "priority": p} for n, p in zip(nodes, (150, 120, 100), strict=True)
            ],
        }
        api.post(f"{GROUP_PATH}/namespaces/{ns}/virtualips", {
            "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
            "metadata": {"name": NAME}, "spec": spec})  # fmt: skip
        wait("the first master", lambda: masters(cp, ns) == [nodes[0]], 120)
        path = f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}"
        api.merge_patch(path, {"spec": {"preempt": False}})
        wait("status.master", lambda: api.get(path)["status"].get("master") == nodes[0], 30)
        out = probe_log.open("w")
        lab.spawn(lab.client_ns, [sys.executable, "-m", "keepvip_tools.lab.probe", str(VIP4),
                                  "--every", "0.01", "--timeout", "0.1"], stdout=out)  # fmt: skip
        time.sleep(1)
        quiet = io.StringIO()

        def timed(event: str, action: Callable[[], None], settled: Callable[[], bool]) -> None:
            start = time.monotonic()
            action()
            wait(f"{event} settled", settled, 180)
            end = time.monotonic()
            time.sleep(1.5)
            gap, moves = window(probe_log, start, end + 1.0)
            samples[event].append({"gap_s": round(gap, 3), "moves": moves,
                                   "took_s": round(end - start, 2)})  # fmt: skip
            print(f"  {event}: gap {gap * 1000:.0f} ms, moves {moves}, {end - start:.1f} s",
                  flush=True)  # fmt: skip

        def on(node: str) -> bool:
            return masters(cp, ns) == [node] and api.get(path)["status"].get("master") == node

        def move_to(node: str) -> Callable[[], None]:
            def act() -> None:
                with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    rc = keepvip(["move", f"{ns}/{NAME}", "--to", node, *kubeconfig])
                if rc != 0:
                    raise RuntimeError(f"keepvip move failed: {quiet.getvalue()[-300:]}")

            return act

        a = nodes[0]
        node_path = f"/api/v1/nodes/{a}"
        ds = f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent"
        gen = [0]

        def cordon() -> None:
            api.merge_patch(node_path, {"spec": {"unschedulable": True}})

        def away() -> bool:
            return masters(cp, ns) not in ([], [a])

        def drain() -> None:
            with contextlib.redirect_stdout(quiet):
                keepvip(["drain", a, *kubeconfig, "--timeout", "60"])

        def restart() -> None:
            stamp = datetime.now(UTC).isoformat()
            got = api.merge_patch(ds, {"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": stamp}}}}})  # fmt: skip
            gen[0] = got["metadata"]["generation"]

        def roll_done() -> bool:
            return rolled(cp, ns, gen[0]) and len(masters(cp, ns)) == 1

        for r in range(rounds):
            print(f"round {r + 1}/{rounds}", flush=True)
            timed("cordon", cordon, away)
            api.merge_patch(node_path, {"spec": {"unschedulable": None}})
            time.sleep(1)
            timed("move", move_to(a), lambda: on(a))
            timed("drain", drain, away)
            with contextlib.redirect_stdout(quiet):
                keepvip(["undrain", a, *kubeconfig])
            time.sleep(1)
            timed("move back", move_to(a), lambda: on(a))
            timed("agent roll", restart, roll_done)
            if not on(a):
                move_to(a)()
                wait("back on the first node", lambda: on(a), 30)
        out.close()
    return samples


def summary(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    out = {}
    for event, runs in samples.items():
        gaps = [s["gap_s"] for s in runs]
        out[event] = {
            "runs": len(runs),
            "gap_median_ms": round(statistics.median(gaps) * 1000),
            "gap_worst_ms": round(max(gaps) * 1000),
            "moves_max": max(int(s["moves"]) for s in runs),
            "took_median_s": round(statistics.median(s["took_s"] for s in runs), 1),
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {e} | {s['gap_median_ms']} ms | {s['gap_worst_ms']} ms | {s['moves_max']} | "
        f"{s['took_median_s']} s |"
        for e, s in result["summary"].items()
    )
    return f"""# Planned maintenance: what a client sees

Command: `{result["command"]}` (root; result in `maintenance.json`, {result["date"]}, the
project's 2-core machine; the control plane, lab and agents were made by the benchmark
and removed after). How: the docstring of `benchmarks/maintenance.py`.

One VirtualIP at 100 ms adverts carried by three real node agents under keepvip-operator
on the real control plane; a client asks the VIP every 10 ms (100 ms timeout) throughout.
Gap: the longest stretch without any answer from the event until a second after it
settled; moves: how often the answering node changed; took: from the event to settled
(status names the new master; for the roll, every agent replaced and one master).

| event ({result["rounds"]} runs each) | gap median | gap worst | moves (max) | took (median) |
| --- | --- | --- | --- | --- |
{rows}

"drain" is `keepvip drain` (a label); `kubectl drain` cordons, which is the cordon row (its
evictions leave the DaemonSet's agents alone). A gap of 0 ms means no probe went unanswered:
the resolution is the probe's 10 ms. Cordon, drain and move hand over make-before-break
(the old master keeps the VIP until the new one's first advertisement); the
agent roll sends each agent SIGTERM (priority 0, then it waits for its successor), and
with preempt off the VIP moves at most once per node rolled.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS / "maintenance.json")
    args = p.parse_args(argv)
    bin_dir, reason = find_bin_dir()
    if bin_dir is None:
        print(f"no control-plane binaries: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cp = ControlPlane(bin_dir=bin_dir)
    with cp.running():
        vers = versions(cp)
        samples = run(cp, args.rounds)
    result: dict[str, Any] = {
        "benchmark": "planned maintenance, client-observed",
        "command": " ".join([".venv/bin/python benchmarks/maintenance.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": vers,
        "rounds": args.rounds,
        "summary": summary(samples),
        "samples": samples,
        "uptime": subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    print(json.dumps(result["summary"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
