"""The ``keepvip status`` (and ``kubectl keepvip status``) command line.

Without ``--agent`` it lists VirtualIPs in the Kubernetes API (the current
context's namespace, ``-n NS`` or ``-A``); with one or more ``--agent URL``
it asks standalone agents directly. Exit status 0 when everything asked
answered, 1 when a source could not be read (the rest is still shown).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from keepvip_tools.status.model import VipRow, from_agents, from_virtualip
from keepvip_tools.status.render import table
from keepvip_tools.status.sources import SourceError, fetch_agents, list_virtualips

__all__ = ["add_arguments", "run"]

EXIT_UNREADABLE = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context to use")
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    p.add_argument(
        "-A", "--all-namespaces", action="store_true", help="VirtualIPs of every namespace"
    )
    p.add_argument(
        "--agent-namespace",
        default=os.environ.get("KEEPVIP_AGENT_NAMESPACE"),
        help="namespace of the node agents, whose Leases say which agents live "
        "(default: $KEEPVIP_AGENT_NAMESPACE, else any namespace)",
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="URL",
        help="a standalone agent's metrics endpoint, e.g. http://192.0.2.11:9650 (repeatable)",
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")


def _print(rows: list[VipRow], args: argparse.Namespace, out: TextIO, now: datetime) -> None:
    if args.output == "json":
        json.dump([r.as_json() for r in rows], out, indent=2)
        out.write("\n")
    elif rows:
        out.write(table(rows, now, namespaces=bool(args.all_namespaces)))
    else:
        where = "any namespace" if args.all_namespaces else "this namespace"
        out.write(f"No VirtualIPs found in {where}.\n" if not args.agent else "No VirtualIPs.\n")


def run(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    now = now or datetime.now(UTC)
    if args.agent:
        replies = fetch_agents(args.agent)
        for problem in replies.errors:
            print(f"keepvip status: {problem}", file=err)
        _print(from_agents(replies.statuses), args, out, now)
        return EXIT_UNREADABLE if replies.errors else 0
    try:
        listing = list_virtualips(
            args.kubeconfig,
            args.context,
            args.namespace,
            args.all_namespaces,
            args.agent_namespace,
        )
    except SourceError as exc:
        print(f"keepvip status: {exc}", file=err)
        return EXIT_UNREADABLE
    rows = sorted(
        (from_virtualip(o, listing.renewals) for o in listing.items),
        key=lambda r: (r.namespace or "", r.name),
    )
    _print(rows, args, out, now)
    return 0
