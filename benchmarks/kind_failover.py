"""Node-kill failover on kind: the client-observed outage when the master's node container dies.

``.venv/bin/python benchmarks/kind_failover.py [--runs 5]`` (root; the
node image, kind and helm are built on first use, see docs/testing.md).

On the cluster of ``make kind-up`` (reused, or created and removed again): the
e2e tier's app (one hostNetwork pod per worker) and a VirtualIP tracking it at
100 ms adverts. Each run starts the client's probe (a GET to the VIP every
20 ms with a 100 ms timeout, from a container on the cluster's network),
``docker kill``s the master's node container, and reads from the probe's lines
the time until another node answered (the outage) and the longest stretch
without an answer. The killed node is started again and the next run waits
until all three app pods are Ready and the VirtualIP has a master. Medians
and the worst run are printed and written to benchmarks/results/; nothing
here gates CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepvip_harness import kindctl
from keepvip_harness.dockerctl import Docker
from keepvip_harness.kindsuite import APP_PORT, NAMESPACE, Probe, app, outage, virtualip
from keepvip_harness.labdaemons import machine, median

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VIP_NAME = "web"


def master(cluster: kindctl.Cluster) -> str | None:
    status = cluster.get("virtualip", VIP_NAME, "-n", NAMESPACE).get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    found = status.get("master")
    return str(found) if found and ready and ready[0]["status"] == "True" else None


def ready_apps(cluster: kindctl.Cluster) -> bool:
    status = cluster.get("deployment", "web", "-n", NAMESPACE)["status"]
    return status.get("readyReplicas") == 3


def one_run(cluster: kindctl.Cluster, docker: Docker, client: str, vip: str) -> dict[str, Any]:
    old = kindctl.wait_until("a master", lambda: master(cluster), 120)
    probe = Probe(
        [*docker.argv("exec", client), "python", "-m", "keepvip_tools.lab.probe", vip,
         "--port", str(APP_PORT), "--every", "0.02", "--timeout", "0.1", "--duration", "6"]
    )  # fmt: skip
    time.sleep(1.0)
    since = time.monotonic()
    docker("kill", old)
    out, _ = probe.communicate(timeout=60)
    took, gap = outage(out, since, old)
    new = kindctl.wait_until("a new master", lambda: (m := master(cluster)) and m != old and m, 60)
    print(f"docker kill {old}: {new} answered after {took * 1000:.0f} ms (gap {gap * 1000:.0f} ms)")
    # Back to three workers for the next run.
    cluster.revive()
    kindctl.wait_until("3 Ready app pods", lambda: ready_apps(cluster), 300)
    return {"killed": old, "new_master": new, "outage_s": round(took, 3), "gap_s": round(gap, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "kind_failover.json")
    args = parser.parse_args(argv)

    host, started_daemon = kindctl.docker_daemon()
    docker = Docker("/usr/bin/docker", host)
    cluster: kindctl.Cluster | None = None
    samples: list[dict[str, Any]] = []
    try:
        cluster = kindctl.up(docker)
        dep = cluster.get(
            "deployment", "-n", kindctl.CHART_NAMESPACE, "-l", "app.kubernetes.io/name=keepvip"
        )
        ref = dep["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"]
        cluster.kubectl(
            "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180
        )
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.apply(app(ref))
        kindctl.wait_until("3 Ready app pods", lambda: ready_apps(cluster), 180)
        vip = str(cluster.subnet.broadcast_address - 10)
        cluster.apply(virtualip(vip, cluster.subnet.prefixlen))
        client = docker.run("--network", cluster.network, ref, "sleep", "infinity")
        for _ in range(args.runs):
            samples.append(one_run(cluster, docker, client, vip))
    finally:
        docker.cleanup()
        if cluster is not None and cluster.created and os.environ.get("KEEPVIP_KEEP_KIND") != "1":
            kindctl.down(docker)
        elif cluster is not None:
            cluster.kubectl(
                "delete", "namespace", NAMESPACE, "--ignore-not-found", check=False, timeout=180
            )
        if started_daemon and (cluster is None or cluster.created):
            subprocess.run([str(kindctl.KIND_HACK / "dockerd.sh"), "stop"], check=False)
    outages = [s["outage_s"] for s in samples]
    result = {
        "benchmark": "kind node-kill failover, 100 ms adverts",
        "command": f".venv/bin/python benchmarks/kind_failover.py --runs {args.runs}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "outage_median_s": round(median(outages), 3),
        "outage_worst_s": max(outages),
        "gap_median_s": round(median([s["gap_s"] for s in samples]), 3),
        "runs": samples,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in {"machine", "runs"}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
