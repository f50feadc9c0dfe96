"""The Kubernetes API address: how long a real API client goes unanswered, keepvip vs keepalived.

``python benchmarks/api_address.py [--runs 5] [--scenarios crash,cut,upgrade]
[--impls keepvip,keepalived-guide,keepalived-tuned]``. Needs root, keepalived,
curl and the control-plane tier's binaries (``make controlplane-build``).

The lab of ``tests/cluster/test_api_address.py`` (``keepvip_harness.apiha``):
three node namespaces, each with a real kube-apiserver (one etcd in the
client's namespace) and a VIP keeper; a kubernetes-client process reads the
``default`` Namespace through the VIP every 50 ms (1 s connect, 2 s read
timeouts, no retries). Events, on whichever node holds the VIP:

* ``crash``: its API server is killed (SIGKILL);
* ``cut``: its bridge port stops forwarding (carrier stays up);
* ``upgrade``: its keeper gets SIGTERM, then its API server is stopped.

The figure is the client's gap: from the later of the event and the old
node's last answer to the new node's first answer (``keepvip_harness.apiha.
api_outage``). After each event the node is restored and the keepers are
given time to settle (their checks' rise and a few adverts) before the next.

The keepers, all at advertisement interval 1 s:

* ``keepvip``: the file ``keepvip static-pod`` generates, defaults unchanged
  (check every 1 s, 1 s timeout, fault after 2 failures, rise 1, sticky);
* ``keepalived-guide``: the kubeadm high-availability guide's keepalived
  recipe (kubernetes/kubeadm docs/ha-considerations.md: ``vrrp_script``
  interval 3, weight -2, fall 10, rise 2; priorities 101/100/100; its
  ``check_apiserver.sh``, curl ``--insecure`` without ``--fail``, of
  ``/readyz`` instead of ``/``);
* ``keepalived-tuned``: keepalived given keepvip's numbers (script every 1 s,
  timeout 1 s, fall 2, rise 1, no weight so a failure is a fault, nopreempt)
  and a verified ``curl --fail --cacert`` of /readyz: what the mechanism
  costs when the recipe is not the difference.

Implementations run in blocks per scenario (each block starts its three
keepers afresh), all in one run of this script. Results merge into
``benchmarks/results/api_address.{json,md}`` by scenario, so the scenarios
can be measured in separate invocations (each under the machine's lock).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from keepvip_harness.apiha import API_PORT, ApiNodes, api_outage
from keepvip_harness.controlplane import find_bin_dir
from keepvip_harness.labdaemons import KEEPALIVED, Cutter, machine, median
from keepvip_tools.lab.topology import VIP4, Lab

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("crash", "cut", "upgrade")
IMPLS = ("keepvip", "keepalived-guide", "keepalived-tuned")
SETTLE = {"keepvip": 4.0, "keepalived-guide": 12.0, "keepalived-tuned": 4.0}
"""After a restore: the restored node's check rises (guide: 2 x 3 s) and a few adverts."""
FOLLOW = 90.0
"""Longest wait for the new node (the guide's check needs 10 x 3 s to demote)."""

GUIDE_SCRIPT = """\
#!/bin/sh
# check_apiserver.sh of the kubeadm HA guide, with /readyz for /.
errorExit() {{
    echo "*** $*" 1>&2
    exit 1
}}
curl --silent --max-time 2 --insecure https://localhost:{port}/readyz -o /dev/null || errorExit "Error GET https://localhost:{port}/readyz"
if ip addr | grep -q {vip}; then
    curl --silent --max-time 2 --insecure https://{vip}:{port}/readyz -o /dev/null || errorExit "Error GET https://{vip}:{port}/readyz"
fi
"""

GUIDE_CONF = """\
global_defs {{
    router_id LVS_DEVEL
}}
vrrp_script check_apiserver {{
  script "{script}"
  interval 3
  weight -2
  fall 10
  rise 2
}}

vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    authentication {{
        auth_type PASS
        auth_pass 42
    }}
    virtual_ipaddress {{
        {vip}/24
    }}
    track_script {{
        check_apiserver
    }}
}}
"""

TUNED_SCRIPT = """\
#!/bin/sh
exec curl --silent --fail --max-time 1 --cacert {ca} --resolve kubernetes:{port}:127.0.0.1 https://kubernetes:{port}/readyz -o /dev/null
"""

TUNED_CONF = """\
global_defs {{
    router_id n{node}
}}
vrrp_script check_apiserver {{
  script "{script}"
  interval 1
  timeout 1
  fall 2
  rise 1
}}

vrrp_instance VI_1 {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {{
        {vip}/24
    }}
    track_script {{
        check_apiserver
    }}
}}
"""


def keepalived_files(nodes: ApiNodes, impl: str, i: int) -> str:
    """The node's keepalived.conf (and its check script, written next to it)."""
    script = nodes.dir / f"check_apiserver-{impl}.sh"
    if impl == "keepalived-guide":
        script.write_text(GUIDE_SCRIPT.format(port=API_PORT, vip=VIP4))
        state, priority = ("MASTER", 101) if i == 1 else ("BACKUP", 100)
        conf = GUIDE_CONF.format(script=script, state=state, priority=priority, vip=VIP4)
    else:
        ca = nodes.certs.ca.cert
        script.write_text(TUNED_SCRIPT.format(port=API_PORT, ca=ca))
        conf = TUNED_CONF.format(script=script, node=i, vip=VIP4)
    script.chmod(0o755)
    return conf


def start_keeper(nodes: ApiNodes, impl: str, i: int) -> None:
    if impl == "keepvip":
        nodes.start_keepvip(i)
    else:
        nodes.start_keepalived(i, keepalived_files(nodes, impl, i))


def stop_keepers(nodes: ApiNodes) -> None:
    for keeper in list(nodes.keepers.values()):
        if keeper.alive():
            keeper.terminate()
            try:
                keeper.wait(15)
            except subprocess.TimeoutExpired:
                keeper.kill()
        keeper.kill()  # keepalived's VRRP child, by pid
    nodes.keepers.clear()
    nodes.lab.wait_for(lambda: not nodes.lab.holders(VIP4), 15)


def run_once(nodes: ApiNodes, cutter: Cutter, impl: str, scenario: str) -> dict[str, Any]:
    old = nodes.steady(lambda i: start_keeper(nodes, impl, i), SETTLE[impl])
    event = time.monotonic()
    if scenario == "crash":
        nodes.kill_apiserver(old)
    elif scenario == "cut":
        cutter.cut(old)
    else:
        nodes.keepers[old].terminate()
        nodes.keepers[old].wait(30)
        nodes.stop_apiserver(old)
    try:
        others = [i for i in range(1, nodes.lab.nodes + 1) if i != old]
        new = nodes.wait_holder(others, FOLLOW, alone=False)
        nodes.wait_answers(f"n{new}", 10, FOLLOW)
    finally:
        if scenario == "cut":
            cutter.heal(old)
    seen = api_outage(nodes.requests(), event, f"n{old}", time.monotonic())
    return {
        "impl": impl,
        "scenario": scenario,
        "old": f"n{old}",
        "new": seen.new,
        "gap": seen.gap,
        "longest_unanswered": seen.longest_unanswered,
        "errors": list(seen.errors),
        "errors_after_new": list(seen.errors_after_new),
    }


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for scenario in SCENARIOS:
        row: dict[str, Any] = {"scenario": scenario}
        for impl in IMPLS:
            gaps = [r["gap"] for r in results if r["scenario"] == scenario and r["impl"] == impl]
            ok = [g for g in gaps if g is not None]
            if gaps:
                row[impl] = {
                    "median": median(ok) if ok else None,
                    "min": min(ok) if ok else None,
                    "max": max(ok) if ok else None,
                    "runs": len(gaps),
                    "failed": len(gaps) - len(ok),
                }
        if len(row) > 1:
            rows.append(row)
    return rows


def _cell(c: dict[str, Any] | None) -> str:
    if not c or c["median"] is None:
        return "-"
    failed = f", {c['failed']} failed" if c["failed"] else ""
    return f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f}{failed})"


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    m = meta["machine"]
    lines = [
        "# The Kubernetes API address: client outage, keepvip vs keepalived",
        "",
        f"Commands: {'; '.join(f'`{c}`' for c in meta['commands'])}  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['nproc']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"{m['keepalived']}  ",
        f"Runs: {meta['runs']} per implementation and scenario (blocks per scenario)",
        "",
        "Three lab nodes, each a real kube-apiserver v1.36.3 (one etcd) and a VIP keeper; a "
        "kubernetes-client process reads the `default` Namespace through the VIP every 50 ms "
        "(1 s connect, 2 s read timeouts, no retries). *crash*: the holder's API server is "
        "SIGKILLed; *cut*: the holder's bridge port stops forwarding; *upgrade*: the holder's "
        "keeper gets SIGTERM, then its API server is stopped. Client gap in seconds, median "
        "(min-max): from the later of the event and the old node's last answer to the new "
        "node's first answer. See the docstring of `benchmarks/api_address.py` for the exact "
        "keeper configurations; they are also in `api_address.json`.",
        "",
        "| event | keepvip (generated defaults) | keepalived, kubeadm guide recipe | "
        "keepalived, keepvip's numbers |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cells = " | ".join(_cell(row.get(i)) for i in IMPLS)
        lines.append(f"| {row['scenario']} | {cells} |")
    lines += [
        "",
        "Failures the client saw after the new node's first answer (must be none): "
        + str(meta["errors_after_new"]),
        "",
    ]
    return "\n".join(lines)


def configs(nodes: ApiNodes) -> dict[str, str]:
    return {
        "keepvip (n1)": nodes.keepvip_config(1),
        "keepalived-guide (n1)": keepalived_files(nodes, "keepalived-guide", 1),
        "keepalived-guide check script": (
            nodes.dir / "check_apiserver-keepalived-guide.sh"
        ).read_text(),
        "keepalived-tuned (n1)": keepalived_files(nodes, "keepalived-tuned", 1),
        "keepalived-tuned check script": (
            nodes.dir / "check_apiserver-keepalived-tuned.sh"
        ).read_text(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    bin_dir, why = find_bin_dir()
    if os.geteuid() != 0 or KEEPALIVED is None or shutil.which("curl") is None or bin_dir is None:
        print(f"needs root, keepalived, curl and the control plane ({why})", file=sys.stderr)
        return 2
    scenarios = [s for s in args.scenarios.split(",") if s]
    impls = [i for i in args.impls.split(",") if i]
    command = "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]])
    results: list[dict[str, Any]] = []
    with Lab(nodes=3) as lab:
        nodes = ApiNodes(lab, bin_dir)
        nodes.setup()
        nodes.start_client()
        cutter = Cutter(lab)
        recipe = configs(nodes)
        for scenario in scenarios:
            for impl in impls:
                stop_keepers(nodes)
                for run in range(args.runs):
                    r = run_once(nodes, cutter, impl, scenario)
                    r["run"] = run
                    results.append(r)
                    gap = "-" if r["gap"] is None else f"{r['gap']:.3f}s"
                    print(
                        f"{scenario:8} {impl:17} run {run}: gap {gap} ({r['old']} -> {r['new']}), "
                        f"failures {dict(Counter(r['errors']))}",
                        flush=True,
                    )
            stop_keepers(nodes)
        nodes.stop_client()
    path = args.out / "api_address.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    kept = [r for r in old.get("runs_detail", []) if r["scenario"] not in scenarios]
    merged = kept + results
    commands = [c for c in old.get("commands", []) if c != command] + [command]
    meta = {
        "commands": commands,
        "machine": machine(),
        "runs": args.runs,
        "configs": recipe,
        "errors_after_new": sum(len(r["errors_after_new"]) for r in merged),
    }
    rows = summarize(merged)
    text = markdown(meta, rows)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "summary": rows, "runs_detail": merged}, indent=2) + "\n")
    (args.out / "api_address.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
