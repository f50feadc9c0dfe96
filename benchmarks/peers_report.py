"""benchmarks/results/peers.md from peers.json: one table, medians, worst runs and ratios.

Each scenario has one headline figure (FIGURES); a row is one implementation in
one setting, with its ratio against keepvip at its default (1 s adverts) and
at its tuned setting (100 ms) for the same scenario and policy. A run where
the address never answered again within the window counts as that window
(shown with ">").
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

from keepvip_harness import kindctl
from keepvip_harness.labdaemons import median

REPO = Path(__file__).resolve().parents[1]

FIGURES = {
    "crash": (
        "outage_s",
        "node crash (`docker kill` of the answering node): s until answered again",
    ),
    "hang": ("outage_s", "node hang (`docker pause`): s until answered again"),
    "drain": (
        "longest_gap_s",
        "`kubectl drain` of the answering node: longest stretch unanswered, s",
    ),
    "agent": (
        "longest_gap_s",
        "that node's speaker/agent pod deleted: longest stretch unanswered, s",
    ),
    "create": ("first_answer_s", "Service created: s to its first answer"),
    "api": (
        "frozen_unanswered_s",
        "API server SIGSTOPped 60 s: s unanswered in those 60 s, for the probing client "
        "(its ARP entry cached, as for any client already talking to the address)",
    ),
    "api-new": (
        "frozen_new_client_unanswered_s",
        "the same 60 s for a new client (the address resolved by ARP before each request, "
        "every 20 ms): s unanswered",
    ),
    "api-crash": (
        "crash_outage_s",
        "... then the answering node killed, API still stopped: s until answered",
    ),
    "local": (
        "other_node_s",
        "app not Ready on the answering node (Local): s until another node answers",
    ),
}
METHOD = """How it is measured: one kind cluster (1 control plane, 3 workers; kube-proxy in iptables
mode), all three load balancers installed at once, each with an identical LoadBalancer
Service of its own class and address in front of one app Deployment (a pod per worker, pod
network). One client container on the kind network GETs the Service under test every 5 ms
(100 ms timeout) and, after each attempt, reads its ARP entry for the address: the MAC of the
node that took the request. Each run is aimed at the node that answers for that
implementation's address, found just before the run with the client's ARP entry for it
deleted first (so a fresh ARP request names it, not a stale entry from before a move); the
implementations take turns round by round.

- crash, hang: from `docker kill` / `docker pause` to the first request answered through
  another node's MAC. With externalTrafficPolicy Cluster, 1 request in 3 sent by the new node
  still goes to the dead node's pod until the endpoint controller marks it not ready (about
  40 s), the same for all three; those failures are not counted in the figure.
- drain, agent: the longest stretch without an answer while `kubectl drain` runs (and 5 s
  after) / in the 15 s after the speaker or agent pod on that node is deleted (or until
  another node took over). `moved_s` in the JSON says when another node answered, if at all.
- create: from just before `kubectl apply` of the Service to its first answer (the JSON's
  `apply_returned_s` says when kubectl returned: about 0.14 s).
- api: kube-apiserver SIGSTOPped in the control-plane node; one freeze serves every
  implementation of the row at once (a probe each, side by side), and the figure is the
  time without an answer in its 60 s. Then, the API server still stopped, the node
  answering for one implementation is killed (in turn, the one with the fewest such runs):
  the "... and a node crash" row counts only the runs whose own node was killed (so it has
  fewer runs than the freeze row), s until another node answered (">": not within 30 s).
- local: externalTrafficPolicy Local on all three Services; `/tmp/ready` removed in the app
  pod on the answering node (its readiness probe, every 1 s, fails), until a request is
  answered by another node's pod (">": not within 60 s).
- resources: the processes of each implementation found in the host's /proc and placed on
  a node by their cgroup (program names: keepvip-agent and keepvip-operator; MetalLB's
  speaker and controller; kube-vip), CPU (utime + stime) over 10 s at idle and RSS at its
  end, with the implementation's one Service and again with 50 more (keepvip's in a pool of
  the setting's advert interval; kube-vip's follow its DaemonSet's flags). With 50, the first
  window starts 30 s after the 50th address was published and windows follow back to back
  until two in a row agree (within 15 % or 0.3 points of a core; at most 2 more minutes):
  the figure is the last, and "quiet after" says when it ended, from the 50th address (the
  earliest runs, without that column's figure, measured one window 15 to 30 s after it).
"""
ORDER = ["crash", "hang", "drain", "agent", "create", "api", "api-new", "api-crash", "local"]
IMPLS = ["keepvip", "metallb", "kube-vip"]
STALE = 0.1  # s: see not_the_holder
RESOLUTION = 0.2  # s: below this a median is one or two failed attempts, and a ratio says nothing
# The settings each row of the table compares (keepvip, MetalLB, kube-vip); "" : not in it.
GROUPS = {
    "upstream defaults": ("default", "default", "default"),
    "tuned": ("tuned", "default", "tuned"),
    "kube-vip lease 15/10/2": ("default", "", "lease 15/10/2"),
}
SHORT = {
    "crash": "node crash",
    "hang": "node hang",
    "drain": "drain",
    "agent": "speaker/agent pod deleted",
    "create": "Service created",
    "api": "API server stopped 60 s",
    "api-new": "... for a new client",
    "api-crash": "... and a node crash",
    "local": "app not Ready (Local)",
}


def _cell(r: dict[str, Any] | None, base: float) -> str:
    if r is None:
        return "-"
    never = f", {r['never']} never answered" if r["never"] else ""
    # No ratio where either median is at RESOLUTION or below: a few failed attempts (0.1 s
    # timeouts) against none say nothing in a ratio.
    ratio = (
        f" x{r['median'] / base:.1f}"
        if min(base, r["median"]) > RESOLUTION
        and not math.isnan(base)
        and r["impl"] != "keepvip"
        and not r["never"]
        else ""
    )
    gt = ">" if r["never"] else ""
    return f"{gt}{_fmt(r['median'])} / {_fmt(r['worst'])} ({r['n']}{never}){ratio}"


def _env(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line[:1].isupper() and "=" in line
    )


def versions() -> dict[str, Any]:
    peers = _env(REPO / "hack/peers/versions.env")
    kind = _env(REPO / "hack/kind/versions.env")
    cp = _env(REPO / "hack/controlplane/versions.env")
    # The image's commit, not the work tree's: the newest commit that changed what the image
    # is built from (a commit to the benchmark alone builds the same image), and its key.
    commit = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h", "--", *kindctl.IMAGE_ROOTS],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "keepvip": f"commit {commit}, image {kindctl.image_key()}",
        "metallb": peers.get("METALLB_VERSION"),
        "kube-vip": peers.get("KUBE_VIP_VERSION"),
        "kubernetes": cp.get("KUBERNETES_VERSION"),
        "kind": kind.get("KIND_VERSION"),
        "containerd": kind.get("CONTAINERD_VERSION"),
    }


def _values(runs: list[dict[str, Any]], field: str) -> tuple[list[float], int]:
    """The figure of each run (a run never answered again counts as its window) and how many
    runs never answered."""
    out, never = [], 0
    for r in runs:
        v = r.get(field)
        if v is None:
            never += 1
            v = r.get("window_s") or r.get("crash_window_s") or float("nan")
        out.append(float(v))
    return out, never


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.2f}"


def counted(r: dict[str, Any]) -> bool:
    """A run in the figures: it did not fail and was not left out (``left_out``: why, by hand)."""
    return "error" not in r and "left_out" not in r


def not_the_holder(r: dict[str, Any]) -> bool:
    """A crash or hang that another node answered within 0.1 s: the node hit was not the one
    answering (probably: the client's ARP entry still named the node before a move, whose
    kube-proxy keeps forwarding), so the run measured nothing; it is left out and counted."""
    return r["scenario"] in {"crash", "hang"} and (r.get("outage_s") or 1.0) < STALE


def rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for r in doc["runs"]:
        if r["scenario"] == "resources" or not counted(r) or not_the_holder(r):
            continue
        runs.append(r)
        # An api run has a crash figure only for the implementations whose node was killed.
        if r["scenario"] == "api" and "crash_outage_s" in r:
            runs.append({**r, "scenario": "api-crash"})
        if r["scenario"] == "api" and "frozen_new_client_unanswered_s" in r:
            runs.append({**r, "scenario": "api-new"})
    out = []
    keys = sorted(
        {(r["scenario"], r["policy"], r["impl"], r["setting"]) for r in runs},
        key=lambda k: (ORDER.index(k[0]), k[1], IMPLS.index(k[2]), k[3]),
    )
    for scenario, policy, impl, name in keys:
        field = FIGURES[scenario][0]
        mine = [
            r
            for r in runs
            if (r["scenario"], r["policy"], r["impl"], r["setting"])
            == (scenario, policy, impl, name)
        ]
        values, never = _values(mine, field)
        out.append({
            "scenario": scenario, "policy": policy, "impl": impl, "setting": name, "n": len(values),
            "median": median(values), "worst": max(values), "never": never,
        })  # fmt: skip
    return out


# hack/peers/all.sh here: the sum of its pieces, as timed this session (notes in peers.md)
FULL_RUN = "3 h 20 min"
NOTES = "## Notes (written by hand; kept when the file is rewritten)"
REPRODUCE = (
    "Every cell from one command, as root on a machine where `make deps` ran: "
    "`hack/peers/build.sh && make kind-build && hack/peers/all.sh` (the peers' images and "
    "keepvip's kind node image, both cached, then `hack/peers/run.sh` with each cell's rounds: "
    "5, or 3 for crash, hang and drain; see the script). Its pieces hold the kind and heavy "
    "locks for one phase of one round each (2 to 10 minutes); the whole takes about "
    f"{FULL_RUN} here (2 cores; the sum of its pieces as they ran in pieces of this session, "
    "not run whole), so five rounds of every scenario would not fit in an hour."
)


def write(path: Path, doc: dict[str, Any]) -> None:
    """peers.md from ``doc``, keeping the hand-written notes at its end."""
    old = path.read_text() if path.exists() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else ""
    path.write_text(markdown(doc) + ("\n" + notes if notes else ""))


def pieces(commands: list[dict[str, str]]) -> list[str]:
    """One line per distinct command, in order of first use: how often, first and last date."""
    dates: dict[str, list[str]] = {}
    for c in commands:
        dates.setdefault(c["command"], []).append(c["date"])
    return [
        f"- `{cmd}` ({d[0]})" if len(d) == 1 else f"- `{cmd}` ({len(d)} pieces, {d[0]} to {d[-1]})"
        for cmd, d in dates.items()
    ]


def markdown(doc: dict[str, Any]) -> str:
    table = rows(doc)
    stats = {(r["scenario"], r["policy"], r["impl"], r["setting"]): r for r in table}
    lines = [
        "# keepvip, MetalLB and kube-vip side by side on kind",
        "",
        REPRODUCE,
        "",
        "Written by `benchmarks/peers.py` from `peers.json` (every run is there); the pieces "
        "that made its runs:",
        "",
        *pieces(doc.get("commands", [])),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in doc.get("versions", {}).items()) + ".",
        f"Machine: {doc.get('machine', {}).get('nproc')} cores, "
        f"kernel {doc.get('machine', {}).get('kernel')}.",
        "",
        "Each cell: median / worst in seconds (runs), and the median's ratio to keepvip's in the "
        "same row (none where either median is 0.2 s or less: that is a few failed attempts "
        "of 0.1 s, noise rather than a difference). Rows: every implementation at its upstream defaults; each at its tuned "
        "setting (MetalLB has no timer to tune: its default runs again); kube-vip at the "
        "15/10/2 s lease of its later releases against keepvip's default.",
        "",
        "| scenario | policy | settings | keepvip | MetalLB | kube-vip |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario, policy in sorted(
        {(r["scenario"], r["policy"]) for r in table}, key=lambda k: (ORDER.index(k[0]), k[1])
    ):
        for group, names in GROUPS.items():
            found = [
                stats.get((scenario, policy, impl, n)) if n else None
                for impl, n in zip(IMPLS, names, strict=True)
            ]
            # A row needs a run of its own settings (the tuned and lease rows repeat MetalLB's
            # and keepvip's defaults beside them); keepvip may miss from an api-crash row
            # (its node was not the one killed).
            own = [f for f, n in zip(found, names, strict=True) if f and n not in {"", "default"}]
            if all(f is None for f in found) or (group != "upstream defaults" and not own):
                continue
            keepvip = found[0]
            base = keepvip["median"] if keepvip and not keepvip["never"] else float("nan")
            cells = [_cell(f, base) for f in found]
            lines.append(f"| {SHORT[scenario]} | {policy} | {group} | " + " | ".join(cells) + " |")
    lines += resource_rows(doc)
    lines += ["", *[f"- **{SHORT[k]}**: {FIGURES[k][1]}" for k in ORDER]]
    if any(r["scenario"] == "resources" for r in doc["runs"]):
        lines.append(
            "- **idle, N Services**: CPU in % of one core and RSS in MiB of all the "
            "implementation's processes on all nodes, medians (runs); the ratio is RSS's"
        )
    measured = {r["scenario"] for r in table} | {r["scenario"] for r in doc["runs"] if counted(r)}
    missing = [
        FIGURES[k][1] for k in ORDER if k not in measured and k not in {"api-crash", "api-new"}
    ]
    if "resources" not in measured:
        missing.append("resources (pods, RSS, CPU per node at idle with 1 and 50 Services)")
    errors = [r for r in doc["runs"] if "error" in r]
    stale = [r for r in doc["runs"] if not_the_holder(r)]
    lines += ["", METHOD]
    if missing:
        lines += ["", "Not measured yet (no runs in this file): " + "; ".join(missing) + "."]
    if errors:
        lines += [
            "",
            f"{len(errors)} run(s) failed and are left out of the figures (their errors are in "
            "peers.json).",
        ]
    reasons: dict[str, list[dict[str, Any]]] = {}
    for r in doc["runs"]:
        if "left_out" in r and "error" not in r:
            reasons.setdefault(r["left_out"], []).append(r)
    for reason, left in reasons.items():
        which = sorted({f"{r['impl']} ({r['setting']}) {r['scenario']}" for r in left})
        lines += ["", f"{len(left)} run(s) left out ({', '.join(which)}): {reason}"]
    if stale:
        lines += [
            "",
            f"{len(stale)} crash/hang run(s) left out: another node answered within "
            f"{STALE} s, so the node hit was not the one answering (probably: the client's ARP "
            "entry still named the node before a move, whose kube-proxy keeps forwarding): "
            + ", ".join(f"{r['impl']} ({r['setting']}) {r['outage_s']} s" for r in stale)
            + ".",
        ]
    lines += resources_table(doc)
    lines += ["", "## Settings", ""]
    lines += [f"- **{k}**: {v}" for k, v in doc.get("settings", {}).items()]
    return "\n".join(lines) + "\n"


def resource_rows(doc: dict[str, Any]) -> list[str]:
    """The resources scenario in the main table: one row per Service count and group."""
    runs = [r for r in doc["runs"] if r["scenario"] == "resources" and counted(r)]
    out = []
    for count, key in ((1, "idle_1"), (50, "idle_50")):
        for group, names in GROUPS.items():
            cells, base = [], float("nan")
            for impl, name in zip(IMPLS, names, strict=True):
                mine = [r[key] for r in runs if (r["impl"], r["setting"]) == (impl, name) and name]
                if not mine:
                    cells.append("-")
                    continue
                rss = median([x["rss_mib_total"] for x in mine])
                base = rss if impl == "keepvip" else base
                ratio = "" if impl == "keepvip" or math.isnan(base) else f" x{rss / base:.1f}"
                cpu = median([x["cpu_pct_total"] for x in mine])
                cells.append(f"{cpu:.2f} %, {rss:.0f} MiB ({len(mine)}){ratio}")
            if cells[0] != "-" and cells[1:] != ["-", "-"]:
                policy = policies(runs)
                row = f"| idle, {count} Service{'s' if count > 1 else ''} | {policy} | {group} | "
                out.append(row + " | ".join(cells) + " |")
    return out


def policies(runs: list[dict[str, Any]]) -> str:
    return "/".join(sorted({r["policy"] for r in runs}))


def _pods(per_node: dict[str, int]) -> str:
    """``{"keepvip-worker": 2, ...}`` as "worker 2, worker2 1" (the last run's)."""
    return ", ".join(f"{n.removeprefix('keepvip-')} {c}" for n, c in per_node.items()) or "-"


def resources_table(doc: dict[str, Any]) -> list[str]:
    runs = [r for r in doc["runs"] if r["scenario"] == "resources" and counted(r)]
    if not runs:
        return []
    out = [
        "",
        "## Resources at idle (medians over the runs; processes found on the nodes, summed)",
        "",
        "| implementation (setting) | runs | Services | pods per node | processes (nodes) "
        "| CPU % of a core | RSS MiB | quiet after, s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = sorted(
        {(r["impl"], r["setting"]) for r in runs}, key=lambda k: (IMPLS.index(k[0]), k[1])
    )
    for impl, name in keys:
        mine = [r for r in runs if (r["impl"], r["setting"]) == (impl, name)]
        for count, key in ((1, "idle_1"), (50, "idle_50")):
            m = [r[key] for r in mine]
            nodes = median([len(x["per_node"]) for x in m])
            pods = m[-1].get("pods_per_node") or {}
            waited = [x["quiet_after_s"] for x in m if "quiet_after_s" in x]
            quiet = f"{median(waited):.0f} ({len(waited)})" if waited else "-"
            out.append(
                f"| {impl} ({name}) | {len(m)} | {count} | {_pods(pods)} "
                f"| {median([x['processes'] for x in m]):.0f} "
                f"({nodes:.0f}) | {median([x['cpu_pct_total'] for x in m]):.2f} "
                f"| {median([x['rss_mib_total'] for x in m]):.0f} | {quiet} |"
            )
    return out
