"""Client-observed failover outage: keepvip against keepalived, side by side in one lab.

``python benchmarks/failover.py [--runs 7] [--intervals 1,0.1,0.02] [--graceful 0.1,0.02]``
(``--quick`` is one run at 100 ms and 20 ms). Needs root and keepalived.

One lab (3 nodes + client on a bridge, priorities 150/120/100, VRRPv3,
keepalived with ``garp_master_delay 0``) serves every run; each run starts
three daemons of one implementation, waits until n1 holds the VIP and the
backups have heard it, then either cuts n1's bridge port (the link stays up:
a partition n1 cannot see) or sends n1's daemon SIGTERM (graceful: priority
0). Implementations alternate run by run so load from other work on the
machine falls on both alike.

The client runs ``keepvip_tools.lab.probe``: one probe exactly as in
ANCHORS.md (an HTTP GET every 5 ms, 50 ms timeout) and ``--fine-probes``
more with a 10 ms timeout beside it. A request to a VIP whose owner vanished
times out, so during an outage the anchor probe looks only every 55 ms and
its figure moves in 55 ms steps; the fine probes look every 15 ms. Outages
are measured on the shared monotonic clock:

* ``anchor``: the anchor probe alone: from the later of the event and the
  old master's last answer to the first answer from the new master. After a
  cut that is the time from the cut to the new master's first answer.
* ``fine``: the same over all probes merged (the headline figure).
* ``to_new``: from the event to the first answer of the new master (all
  probes); it differs from ``fine`` only when the old master kept answering.

Results go to ``benchmarks/results/failover.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from keepvip_harness.labdaemons import (
    IMPLEMENTATIONS,
    KEEPALIVED,
    AdvertWatch,
    Cutter,
    Daemon,
    Instance,
    clear_vip,
    machine,
    median,
    outage,
    read_probe,
    start,
    start_responders,
)
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = {1: 150, 2: 120, 3: 100}
RESULTS = Path(__file__).resolve().parent / "results"
WARMUP = 0.4
ANCHOR_TIMEOUT = 0.05
FINE_TIMEOUT = 0.01


def _probe(lab: Lab, path: Path, duration: float, timeout: float) -> subprocess.Popen[Any]:
    argv = [sys.executable, "-m", "keepvip_tools.lab.probe", str(VIP4)]
    argv += ["--duration", f"{duration}", "--timeout", f"{timeout}"]
    with path.open("w") as out:
        return lab.spawn(lab.client_ns, argv, stdout=out)


def run_once(
    lab: Lab,
    watch: AdvertWatch,
    cutter: Cutter,
    impl: str,
    interval: float,
    mode: str,
    phase: float,
    fine: int,
    tag: str,
) -> dict[str, Any]:
    """Start three daemons of ``impl``, settle on n1, cut or stop n1, measure, clean up.

    The event comes ``phase`` advert intervals after one of n1's adverts: the
    outage after a cut depends on that phase by up to one interval, so both
    implementations get the same phases (spread evenly over the runs).
    """
    assert lab.workdir is not None
    daemons: list[Daemon] = [
        start(lab, impl, i, [Instance(priority=p, interval=interval)], tag=tag)
        for i, p in PRIORITIES.items()
    ]
    result: dict[str, Any] = {"impl": impl, "interval": interval, "mode": mode, "phase": phase}
    procs: list[subprocess.Popen[Any]] = []
    try:
        for d in daemons:
            d.wait_ready(15)
        lab.wait_for(lambda: lab.holders() == [1], 10 + 5 * interval, 0.02)
        # Let every backup hear the master for a few intervals before the event.
        time.sleep(max(0.5, 3 * interval))
        if lab.holders() != [1]:
            raise RuntimeError(f"election did not settle on n1: holders {lab.holders()}")
        duration = 60.0  # stopped below once the outage window has passed
        anchor_file = lab.workdir / f"probe{tag}-anchor.txt"
        fine_files = [lab.workdir / f"probe{tag}-fine{k}.txt" for k in range(fine)]
        procs.append(_probe(lab, anchor_file, duration, ANCHOR_TIMEOUT))
        procs += [_probe(lab, f, duration, FINE_TIMEOUT) for f in fine_files]
        # Every probe must be answering n1 (its interpreter started, the client
        # has n1's MAC) before the event.
        lab.wait_for(
            lambda: all(
                any(w == "n1" for _, w in read_probe(f)) for f in [anchor_file, *fine_files]
            ),
            10,
        )
        time.sleep(WARMUP)
        advert = watch.next_advert(2 * interval + 1)
        time.sleep(max(0.0, advert + phase * interval - time.monotonic()))
        before = time.monotonic()
        if mode == "cut":
            cutter.cut(1)
        else:
            daemons[0].terminate()
        after = time.monotonic()
        time.sleep(4 * interval + 1.0)
        for p in procs:
            p.kill()
            p.wait(10)
        anchor_lines = read_probe(anchor_file)
        all_lines = anchor_lines + [line for f in fine_files for line in read_probe(f)]
        a = outage(anchor_lines, before, "n1")
        f = outage(all_lines, before, "n1")
        result.update(
            anchor=a.gap,
            fine=f.gap,
            to_new=f.to_new_master,
            new_node=f.new_node,
            event_cost=after - before,
            after_advert=before - advert,
        )
        if mode == "graceful":
            daemons[0].wait(10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for d in daemons:
            d.kill()
        cutter.heal(1)
        clear_vip(lab)
    return result


def _cell(results: list[dict[str, Any]], impl: str, key: str) -> dict[str, Any]:
    values = [r[key] for r in results if r["impl"] == impl and r.get(key) is not None]
    return {
        "median": median(values) if values else None,
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "runs": len(values),
        "failed": sum(1 for r in results if r["impl"] == impl and r.get(key) is None),
    }


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["mode"], r["interval"]) for r in results}, key=lambda k: (k[0], -k[1]))
    for mode, interval in keys:
        here = [r for r in results if r["mode"] == mode and r["interval"] == interval]
        row: dict[str, Any] = {"mode": mode, "interval": interval}
        for key in ("fine", "anchor", "to_new"):
            cells = {impl: _cell(here, impl, key) for impl in IMPLEMENTATIONS}
            kv, ka = cells["keepvip"]["median"], cells["keepalived"]["median"]
            row[key] = {**cells, "ratio": kv / ka if kv is not None and ka else None}
        rows.append(row)
    return rows


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def _fmt(c: dict[str, Any]) -> str:
    failed = f", {c['failed']} failed" if c["failed"] else ""
    return f"{ms(c['median'])} ({ms(c['min'])}-{ms(c['max'])}{failed})"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    out = [
        "# Failover: keepvip vs keepalived (client-observed outage)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['nproc']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"{m['keepalived']}  ",
        f"Runs: {meta['runs']} per implementation and row, implementations alternating run by run",
        "",
        "3 nodes + client on one bridge, priorities 150/120/100, VRRPv3, keepalived "
        "`garp_master_delay 0`. *cut*: n1's bridge port stops forwarding (carrier stays up); "
        "*graceful*: SIGTERM to n1's daemon (priority-0 advertisement). Run k of N makes "
        "the event (k + 0.5)/N advert intervals after one of n1's adverts, the same for "
        "both implementations.",
        "",
        "Outage in ms, median (min-max): from the later of the event and the old master's "
        "last answer to the first answer from the new master. *fine*: all client probes "
        f"merged (one with a 50 ms timeout, {meta['fine_probes']} with 10 ms, a GET every 5 ms "
        "each); *anchor*: the ANCHORS.md probe alone (GET every 5 ms, 50 ms timeout: during "
        "an outage it looks every 55 ms).",
        "",
        "| event | advert interval | keepvip fine | keepalived fine | ratio | "
        "keepvip anchor | keepalived anchor | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = []
        for key in ("fine", "anchor"):
            c = row[key]
            ratio = "-" if c["ratio"] is None else f"**{c['ratio']:.2f}**"
            cells += [_fmt(c["keepvip"]), _fmt(c["keepalived"]), ratio]
        iv = f"{row['interval'] * 1000:g} ms"
        out.append(f"| {row['mode']} | {iv} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=7, help="runs per implementation and cell")
    p.add_argument("--intervals", default="1,0.1,0.02", help="advert intervals (s) for the cut")
    p.add_argument("--graceful", default="0.1,0.02", help="advert intervals (s) for SIGTERM")
    p.add_argument("--fine-probes", type=int, default=2, help="extra probes, 10 ms timeout")
    p.add_argument("--quick", action="store_true", help="1 run each at 100 ms and 20 ms")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.intervals, args.graceful = 1, "0.1,0.02", "0.1,0.02"
    if os.geteuid() != 0 or KEEPALIVED is None:
        print("needs root and keepalived (apt-get install keepalived)", file=sys.stderr)
        return 2
    cells = [("cut", float(x)) for x in args.intervals.split(",") if x] + [
        ("graceful", float(x)) for x in args.graceful.split(",") if x
    ]
    results: list[dict[str, Any]] = []
    meta = {
        "command": "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]]),
        "machine": machine(),
        "runs": args.runs,
        "fine_probes": args.fine_probes,
    }
    with Lab(nodes=3) as lab:
        start_responders(lab)
        watch = AdvertWatch(lab, 1)
        cutter = Cutter(lab)
        n = 0
        for mode, interval in cells:
            for run in range(args.runs):
                order = IMPLEMENTATIONS if run % 2 == 0 else IMPLEMENTATIONS[::-1]
                phase = (run + 0.5) / args.runs
                for impl in order:
                    for attempt in (1, 2):
                        n += 1
                        try:
                            r = run_once(
                                lab,
                                watch,
                                cutter,
                                impl,
                                interval,
                                mode,
                                phase,
                                args.fine_probes,
                                f"-{n}",
                            )
                            break
                        except (RuntimeError, TimeoutError, queue.Empty) as exc:
                            # A run whose set-up failed measures nothing: say so, try once more.
                            print(f"{mode} {interval} {impl} run {run} attempt {attempt}: {exc!r}")
                            r = {
                                "impl": impl,
                                "interval": interval,
                                "mode": mode,
                                "phase": phase,
                                "error": repr(exc),
                                "fine": None,
                                "anchor": None,
                                "to_new": None,
                                "new_node": None,
                                "event_cost": 0.0,
                                "after_advert": 0.0,
                            }
                    r["run"] = run
                    results.append(r)
                    print(
                        f"{mode:8} {interval * 1000:5g} ms {impl:10} run {run}: "
                        f"fine {ms(r['fine'])} ms, anchor {ms(r['anchor'])} ms, "
                        f"to new master {ms(r['to_new'])} ms "
                        f"({r['new_node']}, event {r['after_advert'] * 1000:.0f} ms after an "
                        f"advert, took {r['event_cost'] * 1000:.1f} ms)",
                        flush=True,
                    )
    rows = summarize(results)
    text = markdown(rows, meta)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "failover.json").write_text(
        json.dumps({**meta, "summary": rows, "runs_detail": results}, indent=2) + "\n"
    )
    (args.out / "failover.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
