"""``keepvip``: the user's multi-tool (the lab demo today; convert and status later)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="keepvip")
    sub = p.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="run 3 agents and a client in network namespaces (root)")
    lab.add_argument("--nodes", type=int, default=3)
    lab.add_argument("--interval", default="100ms")
    lab.add_argument("--cycles", type=int, default=2, help="how many times to cut the master")
    args = p.parse_args(argv)
    if args.command == "lab":
        from keepvip_agent.lab.demo import run_lab

        return run_lab(nodes=args.nodes, interval=args.interval, cycles=args.cycles)
    return 2


if __name__ == "__main__":
    sys.exit(main())
