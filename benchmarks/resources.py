"""Memory and CPU of one agent: keepvip against keepalived carrying the same instances.

``python benchmarks/resources.py [--duration 20] [--counts 1,256] [--interval 0.1]
[--hmac] [--runs 1] [--interfaces 1]`` (``--quick``: 5 s windows). Needs root and keepalived.

``--hmac`` adds keepvip with authenticated adverts (``authHMAC``, HMAC-SHA256
trailer on every advert, verified on every receipt) as a third column,
``keepvip-hmac``, run in the same lab between the other two, and writes
``resources-hmac.{json,md}`` instead. keepalived 2.2.7 has no ``auth_hmac``,
so its column is unauthenticated. ``--runs N`` repeats each measurement and
reports medians (implementations alternate within each round).

Two nodes on the lab bridge; node 1 runs every instance at priority 150
(master), node 2 at 120 (backup), both with 100 ms adverts. With ``--nodes 3``
node 3 runs them too, at 100 (a second backup: every advert now reaches two
receivers); the figures are still node 1's and node 2's. Scenarios:

* one instance (VRID 51, one IPv4 VIP);
* 256 instances in one process: VRIDs 1..255 over IPv4 and, for
  the 256th, VRID 1 over IPv6 (a separate VRID space, RFC 9568 5.2.3),
  one VIP each;
* with ``--interfaces 2`` (issue 14's second case, e.g. ``--counts 500
  --interval 1``): VRIDs 1..255 on eth0 (VIPs 198.51.100.k) and the rest on
  a second link, eth1, a veth pair of its own between the two nodes
  (203.0.113.252/30; VIPs 203.0.113.k), all IPv4.

Once both sides have settled (every instance master on n1, none on n2) the
CPU time (``utime + stime`` from ``/proc/<pid>/stat``) of each daemon is read
over ``--duration`` seconds and given in percent of one core; the resident
set (``VmRSS``) is read at the end of the window. keepalived is counted as its
parent plus its VRRP child (both run for as long as it does). Implementations
run one after the other in the same lab, keepvip first.

Results go to ``benchmarks/results/resources.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from keepvip_harness.labdaemons import (
    IMPLEMENTATIONS,
    KEEPALIVED,
    Daemon,
    Instance,
    machine,
    proc_cpu_seconds,
    proc_rss_bytes,
    start,
)
from keepvip_tools.lab.topology import Lab

RESULTS = Path(__file__).resolve().parent / "results"
HMAC = "keepvip-hmac"
KEY = "key 1 hex:" + bytes(range(32)).hex() + "\n"
MASTER, BACKUP, THIRD = 150, 120, 100
MiB = 1024 * 1024
ETH1_VIPS = 251
"""203.0.113.1..251 as VIPs; .253 and .254 are the nodes' own addresses on eth1."""


def second_link(lab: Lab) -> None:
    """eth1 in nodes 1 and 2: a veth pair of their own (gone with their namespaces)."""
    n1, n2 = lab.node_ns(1), lab.node_ns(2)
    lab.ip(n1, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1", "netns", n2)
    for ns, host in ((n1, 253), (n2, 254)):
        lab.ip(ns, "addr", "add", f"203.0.113.{host}/30", "dev", "eth1")
        lab.ip(ns, "link", "set", "eth1", "up")


def instances(count: int, priority: int, interval: float, interfaces: int = 1) -> list[Instance]:
    if count == 1:
        return [Instance(vrid=51, priority=priority, interval=interval)]
    if interfaces == 2:
        if count > 255 + ETH1_VIPS:
            raise SystemExit(f"--interfaces 2 carries at most {255 + ETH1_VIPS} instances")
        return [
            Instance(
                vrid=k if k <= 255 else k - 255,
                priority=priority,
                interval=interval,
                addresses=(f"198.51.100.{k}/32" if k <= 255 else f"203.0.113.{k - 255}/32",),
                interface="eth0" if k <= 255 else "eth1",
            )
            for k in range(1, count + 1)
        ]
    out = []
    for k in range(1, min(count, 255) + 1):
        address = f"198.51.100.{k}/32" if k < 255 else "203.0.113.1/32"
        out.append(Instance(vrid=k, priority=priority, interval=interval, addresses=(address,)))
    for k in range(1, count - 255 + 1):
        out.append(
            Instance(
                vrid=k, priority=priority, interval=interval, addresses=(f"2001:db8:1::{k}/128",)
            )
        )
    return out


def ka_state_counts(d: Daemon) -> tuple[int, int]:
    """(instances whose last logged state is MASTER, those whose last is BACKUP) for keepalived."""
    last: dict[str, str] = {}
    for line in d.log_text().splitlines():
        if "Entering MASTER STATE" in line or "Entering BACKUP STATE" in line:
            name = line.split("(", 1)[1].split(")", 1)[0]
            last[name] = "MASTER" if "MASTER" in line else "BACKUP"
    values = list(last.values())
    return values.count("MASTER"), values.count("BACKUP")


def settled(d: Daemon, want_master: bool, count: int) -> bool:
    if d.impl == "keepvip":
        states = [i["state"] for i in d.status()["instances"]]
        want = "Master" if want_master else "Backup"
        return len(states) == count and all(s == want for s in states)
    m, b = ka_state_counts(d)
    return (m == count and b == 0) if want_master else (b == count and m == 0)


def _instances(
    lab: Lab, impl: str, count: int, priority: int, interval: float, interfaces: int
) -> list[Instance]:
    out = instances(count, priority, interval, interfaces)
    if impl != HMAC:
        return out
    assert lab.workdir is not None
    keys = lab.workdir / "bench.keys"
    keys.write_text(KEY)
    keys.chmod(0o600)
    return [replace(i, key_file=str(keys)) for i in out]


def measure(
    lab: Lab,
    impl: str,
    count: int,
    interval: float,
    duration: float,
    interfaces: int = 1,
    nodes: int = 2,
) -> dict[str, Any]:
    tag = f"-{impl}-{count}"
    daemon = "keepvip" if impl == HMAC else impl
    roles = ((1, MASTER), (2, BACKUP), (3, THIRD))[:nodes]
    daemons = [
        start(lab, daemon, n, _instances(lab, impl, count, prio, interval, interfaces), tag=tag)
        for n, prio in roles
    ]
    try:
        for d in daemons:
            d.wait_ready(120)
        # Every side starts as backup; n1 wins after a master-down interval.
        lab.wait_for(lambda: settled(daemons[0], True, count), 120, 0.5)
        for d in daemons[1:]:
            lab.wait_for(lambda d=d: settled(d, False, count), 60, 0.5)
        time.sleep(2.0)  # start-up work (purges, first announcements) is over
        pids = [d.pids() for d in daemons[:2]]
        before = [sum(proc_cpu_seconds(p) for p in ps) for ps in pids]
        t0 = time.monotonic()
        time.sleep(duration)
        elapsed = time.monotonic() - t0
        after = [sum(proc_cpu_seconds(p) for p in ps) for ps in pids]
        rss = [sum(proc_rss_bytes(p) for p in ps) for ps in pids]
        if not (
            settled(daemons[0], True, count) and all(settled(d, False, count) for d in daemons[1:])
        ):
            raise RuntimeError(f"{impl} x{count}: states changed during the window")
        if impl == HMAC:
            _assert_signed(daemons, count)
        out: dict[str, Any] = {"impl": impl, "instances": count, "window": elapsed}
        for role, i in (("master", 0), ("backup", 1)):
            out[role] = {
                "cpu_percent": 100 * (after[i] - before[i]) / elapsed,
                "rss_mib": rss[i] / MiB,
                "processes": len(pids[i]),
            }
        return out
    finally:
        for d in daemons:
            d.kill()


def _assert_signed(daemons: list[Daemon], count: int) -> None:
    """The HMAC column measured what it claims: keys loaded, no advert refused."""
    for d in daemons:
        for inst in d.status()["instances"]:
            auth = inst.get("authHMAC")
            if auth is None or auth["activeKeyID"] != 1 or auth["dropped"]:
                raise RuntimeError(f"{HMAC} x{count}: {inst['name']} authHMAC is {auth}")


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result per (impl, count): the median CPU and RSS of its runs, and the runs."""
    out = dict(runs[0])
    out["runs"] = len(runs)
    for role in ("master", "backup"):
        out[role] = {
            key: statistics.median(r[role][key] for r in runs) for key in ("cpu_percent", "rss_mib")
        } | {"processes": runs[0][role]["processes"]}
        out[role]["cpu_percent_runs"] = [round(r[role]["cpu_percent"], 3) for r in runs]
    return out


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    by = {(r["impl"], r["instances"]): r for r in results}
    counts = sorted({r["instances"] for r in results})
    impls = [
        i
        for i in (*IMPLEMENTATIONS[:1], HMAC, *IMPLEMENTATIONS[1:])
        if any(r["impl"] == i for r in results)
    ]
    out = [
        "# Resources: keepvip vs keepalived",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {m['date']}  ",
        f"Machine: {m['nproc']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"{m['keepalived']}  ",
        f"Advert interval {meta['interval'] * 1000:g} ms, VRRPv3, "
        f"{meta.get('interfaces', 1)} interface(s), {meta.get('nodes', 2)} nodes "
        f"(node 1 master, node 2 the backup measured); CPU over {meta['duration']:g} s "
        "windows (utime+stime from /proc), % of one core; RSS = VmRSS at the end of the window. "
        "keepalived = parent + VRRP child process. "
        f"Medians of {meta.get('runs', 1)} run(s) per cell (every run in the JSON); "
        "ratio = keepvip CPU / keepalived CPU.",
        "",
        "| instances | role | "
        + " | ".join(f"{i} CPU %" for i in impls)
        + " | ratio | "
        + " | ".join(f"{i} RSS MiB" for i in impls)
        + " |",
        "|---|---|" + "---|" * (2 * len(impls) + 1),
    ]
    for n in counts:
        for role in ("master", "backup"):
            cells = []
            for key, fmt in (("cpu_percent", "{:.2f}"), ("rss_mib", "{:.1f}")):
                for impl in impls:
                    r = by.get((impl, n))
                    cells.append("-" if r is None else fmt.format(r[role][key]))
                if key == "cpu_percent":
                    cells.append(_ratio(by.get(("keepvip", n)), by.get(("keepalived", n)), role))
            out.append(f"| {n} | {role} | " + " | ".join(cells) + " |")
    if HMAC in impls:
        out += [
            "",
            f"{HMAC}: keepvip with authHMAC (HMAC-SHA256 trailer signed on every advert sent, "
            "verified on every advert received, anti-replay on); keepalived 2.2.7 has no "
            "auth_hmac, so it runs unauthenticated. "
            f"Medians of {meta.get('runs', 1)} run(s) per cell; every run's CPU % is in the JSON.",
        ]
    out += [
        "",
        "Targets for keepvip (issue 14): CPU ratio to keepalived <= 1.0 as master and as backup; "
        "one instance <= 0.2 % of a core as master; RSS <= 50 MiB with one instance, "
        "<= 100 MiB with 500.",
        "",
    ]
    return "\n".join(out)


def _ratio(kv: dict[str, Any] | None, ka: dict[str, Any] | None, role: str) -> str:
    if kv is None or ka is None:
        return "-"
    theirs = ka[role]["cpu_percent"]
    return "inf" if theirs <= 0 else f"{kv[role]['cpu_percent'] / theirs:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="CPU window, seconds")
    p.add_argument("--counts", default="1,256", help="instance counts to measure")
    p.add_argument("--interval", type=float, default=0.1, help="advert interval, seconds")
    p.add_argument("--impl", default=",".join(IMPLEMENTATIONS), help="keepvip,keepalived")
    p.add_argument("--quick", action="store_true", help="5 s windows")
    p.add_argument("--hmac", action="store_true", help=f"add {HMAC} (authHMAC on)")
    p.add_argument("--runs", type=int, default=1, help="rounds; cells are medians")
    p.add_argument("--interfaces", type=int, choices=(1, 2), default=1, help="links carrying them")
    p.add_argument("--nodes", type=int, choices=(2, 3), default=2, help="3: a second backup")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 5.0
    if args.nodes == 3 and args.interfaces == 2:
        print("--nodes 3 runs on one interface (the second link joins nodes 1 and 2 only)",
              file=sys.stderr)  # fmt: skip
        return 2
    if os.geteuid() != 0 or KEEPALIVED is None:
        print("needs root and keepalived (apt-get install keepalived)", file=sys.stderr)
        return 2
    meta = {
        "command": "python " + " ".join([os.path.relpath(__file__), *sys.argv[1:]]),
        "machine": machine(),
        "duration": args.duration,
        "interval": args.interval,
        "runs": args.runs,
        "interfaces": args.interfaces,
        "nodes": args.nodes,
    }
    impls = args.impl.split(",")
    if args.hmac:
        impls.insert(1, HMAC)
    results = []
    with Lab(nodes=args.nodes) as lab:
        if args.interfaces == 2:
            second_link(lab)
        for count in [int(c) for c in args.counts.split(",")]:
            rounds: dict[str, list[dict[str, Any]]] = {i: [] for i in impls}
            for n in range(args.runs):
                for impl in impls if n % 2 == 0 else impls[::-1]:
                    rounds[impl].append(
                        measure(
                            lab,
                            impl,
                            count,
                            args.interval,
                            args.duration,
                            args.interfaces,
                            args.nodes,
                        )
                    )
            for impl in impls:
                r = median_of(rounds[impl])
                results.append(r)
                print(
                    f"{impl:10} x{count:<4} master {r['master']['cpu_percent']:6.2f} % "
                    f"{r['master']['rss_mib']:6.1f} MiB | backup {r['backup']['cpu_percent']:6.2f} % "
                    f"{r['backup']['rss_mib']:6.1f} MiB",
                    flush=True,
                )
    text = markdown(results, meta)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "resources-hmac" if args.hmac else "resources"
    if args.interfaces == 2:
        stem += "-2if"
    if args.nodes == 3:
        stem += "-3nodes"
    (args.out / f"{stem}.json").write_text(
        json.dumps({**meta, "results": results}, indent=2) + "\n"
    )
    (args.out / f"{stem}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
