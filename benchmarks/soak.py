"""Many instances under a loaded CPU: does any backup take over that should not?

``python benchmarks/soak.py [--count 500] [--interval 1] [--interfaces 2]
[--duration 600] [--cpu 2] [--impl keepvip]``. Needs root, stress-ng and (for
``--impl keepalived``) keepalived.

Issue 14's stability case: one agent carrying every instance as master and one
as backup (the lab of ``benchmarks/resources.py``: 500 instances at 1 s adverts,
VRIDs 1..255 on eth0 and the rest on a second link), the machine's CPUs kept
busy by ``stress-ng --cpu N`` for the whole window. A spurious take-over is any
state transition during the window: the master must stay master of all, the
backup backup of all. keepvip's transitions are read from its
``keepvip_vrrp_transitions_total`` counters at the start and end of the window;
keepalived's from its log ("Entering ... STATE" lines). The CPU each daemon used
over the window is reported beside them. Results go to
``benchmarks/results/soak.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from keepvip_harness.labdaemons import Daemon, machine, proc_cpu_seconds, start
from keepvip_tools.lab.topology import Lab
from resources import BACKUP, MASTER, instances, second_link, settled

RESULTS = Path(__file__).resolve().parent / "results"


def transitions(d: Daemon) -> int:
    """State changes so far: keepvip's counters, or keepalived's log lines."""
    if d.impl == "keepvip":
        return int(
            sum(v for k, v in d.metrics().items() if k.startswith("keepvip_vrrp_transitions_total"))
        )
    return sum(
        1
        for line in d.log_text().splitlines()
        if "Entering MASTER STATE" in line or "Entering BACKUP STATE" in line
    )


def soak(lab: Lab, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    count = args.count
    daemons = [
        start(
            lab,
            impl,
            n,
            instances(count, prio, args.interval, args.interfaces),
            tag=f"-soak-{impl}",
        )
        for n, prio in ((1, MASTER), (2, BACKUP))
    ]
    stress: subprocess.Popen[bytes] | None = None
    try:
        for d in daemons:
            d.wait_ready(120)
        lab.wait_for(lambda: settled(daemons[0], True, count), 180, 0.5)
        lab.wait_for(lambda: settled(daemons[1], False, count), 60, 0.5)
        time.sleep(5.0)
        before = [transitions(d) for d in daemons]
        cpu0 = [sum(proc_cpu_seconds(p) for p in d.pids()) for d in daemons]
        stress = subprocess.Popen(
            [
                "stress-ng",
                "--cpu",
                str(args.cpu),
                "--timeout",
                f"{int(args.duration) + 5}s",
                "--quiet",
            ]
        )
        t0 = time.monotonic()
        checks = 0
        while (left := args.duration - (time.monotonic() - t0)) > 0:
            time.sleep(min(30.0, left))
            if stress.poll() is not None:
                raise RuntimeError("stress-ng ended early")
            checks += 1
            print(
                f"  {impl}: {time.monotonic() - t0:5.0f} s, transitions so far "
                f"{[transitions(d) - b for d, b in zip(daemons, before, strict=True)]}",
                flush=True,
            )
        elapsed = time.monotonic() - t0
        after = [transitions(d) for d in daemons]
        cpu1 = [sum(proc_cpu_seconds(p) for p in d.pids()) for d in daemons]
        still = settled(daemons[0], True, count) and settled(daemons[1], False, count)
        return {
            "impl": impl,
            "instances": count,
            "window": elapsed,
            "master_transitions": after[0] - before[0],
            "backup_transitions": after[1] - before[1],
            "settled_at_end": still,
            "master_cpu_percent": 100 * (cpu1[0] - cpu0[0]) / elapsed,
            "backup_cpu_percent": 100 * (cpu1[1] - cpu0[1]) / elapsed,
            "checks": checks,
        }
    finally:
        if stress is not None and stress.poll() is None:
            stress.terminate()
            try:
                stress.wait(10)
            except subprocess.TimeoutExpired:
                stress.kill()
        for d in daemons:
            d.kill()


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Soak: instances under a loaded CPU",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']['nproc']} cores, kernel {meta['machine']['kernel']}  ",
        f"{meta['count']} instances at {meta['interval']} s adverts on {meta['interfaces']} "
        f"interface(s), master on n1 and backup on n2; `stress-ng --cpu {meta['cpu']}` for the "
        f"whole {meta['duration']:.0f} s window. A transition in the window is a spurious "
        "take-over (or give-up): the target is none.",
        "",
        "| implementation | window s | transitions (master side) | transitions (backup side) "
        "| all settled at the end | master CPU % | backup CPU % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['impl']} | {r['window']:.0f} | {r['master_transitions']} | "
            f"{r['backup_transitions']} | {'yes' if r['settled_at_end'] else 'NO'} | "
            f"{r['master_cpu_percent']:.2f} | {r['backup_cpu_percent']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--interfaces", type=int, choices=(1, 2), default=2)
    p.add_argument("--duration", type=float, default=600.0, help="seconds under load")
    p.add_argument("--cpu", type=int, default=2, help="stress-ng --cpu workers")
    p.add_argument("--impl", default="keepvip", help="keepvip and/or keepalived, in order")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if os.geteuid() != 0 or shutil.which("stress-ng") is None:
        print("needs root and stress-ng (apt-get install stress-ng)", file=sys.stderr)
        return 2
    meta = {
        "command": "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": machine(),
        **{k: getattr(args, k) for k in ("count", "interval", "interfaces", "duration", "cpu")},
    }
    results = []
    with Lab(nodes=2) as lab:
        if args.interfaces == 2:
            second_link(lab)
        for impl in args.impl.split(","):
            results.append(soak(lab, impl, args))
            print(json.dumps(results[-1]), flush=True)
    text = markdown(results, meta)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    (args.out / "soak.md").write_text(text)
    bad = [r for r in results if r["master_transitions"] or r["backup_transitions"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
