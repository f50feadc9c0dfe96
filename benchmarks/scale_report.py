"""The figures of ``cluster_scale.py``: medians, ratios to keepalived, targets met or missed.

Apart from the measuring code so that a recorded ``cluster-scale.json`` can be
re-rendered (``python benchmarks/scale_report.py results/cluster-scale.json >
results/cluster-scale.md``) when only the wording changes or notes were added
to the JSON (``notes``: paragraphs printed at the end).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from keepvip_harness.labdaemons import median


def stats(values: list[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:  # a step left out (--apply-runs 0, --cut-runs 0)
        return {"median": None, "worst": None, "n": 0}
    return {"median": median(vals), "worst": max(vals), "n": len(vals)}


def verdict(c: dict[str, Any]) -> str:
    """Apply to master: median under 1 s, worst under 2 s."""
    if not c["n"]:
        return "not measured"
    return "met" if c["median"] < 1 and c["worst"] < 2 else "**missed**"


def ratio(value: float | None) -> str:
    """keepalived's CPU time can be 0 ticks over a window: no ratio then."""
    return "n/a" if value is None else f"{value:.2f}"


TRACE_MARKS = {
    "vrid_seen": "VRID allocated",
    "first_entry_seen": "first agent entry",
    "master_transition": "an agent turns master",
    "master_entry_computed": "its entry computed",
    "master_entry_seen": "its entry in the API",
    "status_master_seen": "status.master in the API",
}
"""The hops of an apply-to-master run (keepvip_harness.vipwatch), in path order."""


def trace_medians(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median milliseconds after the POST of each hop (runs recorded before the trace: none)."""
    out: dict[str, float | None] = {}
    for mark in TRACE_MARKS:
        vals = [
            r["trace_ms"][mark] for r in runs if (r.get("trace_ms") or {}).get(mark) is not None
        ]
        out[mark] = median(vals) if vals else None
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    k, ka = result["keepvip"], result["keepalived"]
    first = result["nodes"][0]
    out: dict[str, Any] = {
        "apply_to_status_master": stats([s["to_status_master"] for s in k["apply_to_master"]]),
        "apply_to_client_answer": stats([s["to_client_answer"] for s in k["apply_to_master"]]),
        "apply_trace_ms": trace_medians(k["apply_to_master"]),
        "cut_fine": stats([s["fine"] for s in k["cut"]]),
        "cut_anchor": stats([s["anchor"] for s in k["cut"]]),
    }
    for label, key in (("1s", "steady_1s"), ("0.1s", "steady_100ms")):
        cpu = k[key]["agent_cpu_percent"]
        backups = [v for n, v in cpu.items() if n != first]
        out[f"agent_cpu_{label}"] = {
            "master": cpu.get(first),
            "backup_median": median(backups),
            "keepalived_master": ka[label]["master"]["cpu_percent"],
            "keepalived_backup": ka[label]["backup"]["cpu_percent"],
        }
        c = out[f"agent_cpu_{label}"]
        c["ratio_master"] = c["master"] / c["keepalived_master"] if c["keepalived_master"] else None
        c["ratio_backup"] = (
            c["backup_median"] / c["keepalived_backup"] if c["keepalived_backup"] else None
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    m, k, s = result["machine"], result["keepvip"], result["summary"]
    a = k["apply_all"]
    first = result["nodes"][0]
    w0, w1, w2 = (
        k["api_writes_before_keepvip"],
        k["steady_1s"]["api_writes"],
        k["steady_100ms"]["api_writes"],
    )

    def ms(c: dict[str, Any]) -> str:
        if not c["n"]:
            return "not measured"
        return f"{c['median'] * 1000:.0f} ms (worst {c['worst'] * 1000:.0f} ms, n={c['n']})"

    rss = k["steady_100ms"]["agent_rss_peak_mib"]
    lines = [
        "# The node-agent layout at scale (issue 12, Performance)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['nproc']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"{m['keepalived']}; {result['versions'].get('kube-apiserver', '?')}  ",
        f"Load before: `{result['uptime_before']}`",
        "",
        f"{result['args']['vips']} VirtualIPs (IPv4, one VRID each, 1 s adverts, priorities "
        f"150/120/100) and {result['args']['services']} LoadBalancer Services (IPv6, one pool "
        f"with sharedRouter, externalTrafficPolicy Cluster: {a['routers']} shared routers) on 3 "
        "real `keepvip-agent --kubernetes` processes (the DaemonSet the operator rendered, run by "
        "the pod launcher in the lab's node namespaces), `keepvip-operator` as its own process "
        "with its production defaults (resync 5 s). Figures: medians unless said.",
        "",
        "| what | measured | target | |",
        "|---|---|---|---|",
        f"| POSTs to every VirtualIP Ready with a master | {a['seconds']['vips_ready']:.1f} s | | |",
        f"| POSTs to every Service published on a Ready router | "
        f"{a['seconds']['services_ready']:.1f} s | | |",
        f"| POSTs to all Ready | {a['seconds']['all_ready']:.1f} s | | |",
        f"| operator CPU until all Ready | {a['operator_cpu_seconds']:.1f} s | | |",
        f"| operator RSS peak / at rest | {a['operator_rss_peak_mib']:.0f} / "
        f"{k['steady_1s']['operator_rss_mib']:.0f} MiB | | |",
        "| agent RSS peak per node (whole run) | "
        + ", ".join(f"{n} {v:.0f} MiB" for n, v in rss.items())
        + " | <= 100 MiB | "
        + ("met" if max(rss.values()) <= 100 else "**missed**")
        + " |",
        f"| apply to master, new VirtualIP at 100 ms: POST to the client's first answer "
        f"through it | {ms(s['apply_to_client_answer'])} | median < 1 s, worst < 2 s | "
        + verdict(s["apply_to_client_answer"])
        + " |",
        f"| the same, POST to status.master in the API | {ms(s['apply_to_status_master'])} | "
        "median < 1 s, worst < 2 s | " + verdict(s["apply_to_status_master"]) + " |",
        f"| API writes per second, steady, 1 s adverts | {w1['per_second']:.2f} "
        f"(before keepvip: {w0['per_second']:.2f}; keepvip's: "
        f"{w1['per_second'] - w0['per_second']:.2f}) | <= 3 (one per node) | "
        + ("met" if w1["per_second"] - w0["per_second"] <= 3 else "**missed**")
        + " |",
        f"| API writes per second, steady, 100 ms adverts | {w2['per_second']:.2f} | | |",
        f"| operator CPU, idle, 1 s adverts | {k['steady_1s']['operator_cpu_percent']:.2f} % | "
        "<= 1 % | "
        + ("met" if k["steady_1s"]["operator_cpu_percent"] <= 1 else "**missed**")
        + " |",
        f"| operator CPU, idle, 100 ms adverts | {k['steady_100ms']['operator_cpu_percent']:.2f} % "
        "| | |",
        f"| client outage, {first} link cut, 100 ms VirtualIP among the 1 s ones | "
        + (
            f"{ms(s['cut_fine'])} (anchor probe {s['cut_anchor']['median'] * 1000:.0f} ms)"
            if s["cut_fine"]["n"]
            else "not measured"
        )
        + " | within 10 % of 303 ms (failover.md, one VirtualIP) | "
        + (
            "not measured"
            if not s["cut_fine"]["n"]
            else "met"
            if s["cut_fine"]["median"] <= 0.303 * 1.1
            else "**missed**"
        )
        + " |",
        "",
        "Agent CPU, % of one core, over the steady windows "
        f"({result['args']['window']} s); keepalived carries the same "
        f"{result['args']['vips']} instances (2-node lab, same run, before the cluster "
        "started); keepvip's agents also carry the shared routers (1 s).",
        "",
        "| adverts | keepvip master | keepalived master | ratio | keepvip backup (median) "
        "| keepalived backup | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("1s", "0.1s"):
        c = s[f"agent_cpu_{label}"]
        lines.append(
            f"| {label} | {c['master']:.2f} | {c['keepalived_master']:.2f} | "
            f"**{ratio(c['ratio_master'])}** | {c['backup_median']:.2f} | "
            f"{c['keepalived_backup']:.2f} | **{ratio(c['ratio_backup'])}** |"
        )
    hops = [
        f"{label} {s['apply_trace_ms'][mark]:.0f}"
        for mark, label in TRACE_MARKS.items()
        if s.get("apply_trace_ms", {}).get(mark) is not None
    ]
    if hops:
        lines += [
            "",
            "Apply to master, hop by hop (median ms after the POST; wall clock of one machine: "
            "arrivals of a watch on the VirtualIP, and the master's own entry times): "
            + ", ".join(hops),
        ]
    lines += [
        "",
        "API writes per second by kind (steady, 1 s adverts, minus nothing): "
        + ", ".join(f"{key} {v:.2f}" for key, v in w1["by_kind_per_second"].items()),
        "",
        "Before keepvip (control plane, kwok, the lab, no operator or agents): "
        + ", ".join(f"{key} {v:.2f}" for key, v in w0["by_kind_per_second"].items()),
        "",
        "The old `benchmarks/cluster.py --only scale` figures (200 VirtualIPs, kwok agent pods, "
        "status entries written by the benchmark; operator idle CPU ~10 %) were the "
        "per-VirtualIP layout (a DaemonSet per VirtualIP); that part is replaced by this benchmark.",
        "",
    ]
    for note in result.get("notes", []):  # added by hand to the JSON after a run, then re-rendered
        lines += [note, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    data["summary"] = summary(data)
    sys.stdout.write(markdown(data))
