"""``keepvip``: the user's multi-tool (lab demo, keepalived conversion, status, drain, the API
address's static pod and systemd unit), and ``kubectl keepvip``.

Only argument wiring lives here; each subcommand's logic is in its own
module, imported when the subcommand runs so ``keepvip status`` does not
pay for the lab's imports and the other way round.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser(prog: str = "keepvip") -> argparse.ArgumentParser:
    from keepvip_tools.convert.command import add_arguments as convert_arguments
    from keepvip_tools.status.command import add_arguments as status_arguments

    p = argparse.ArgumentParser(prog=prog)
    sub = p.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="run 3 agents and a client in network namespaces (root)")
    lab.add_argument("--nodes", type=int, default=3)
    lab.add_argument("--interval", default="100ms")
    lab.add_argument("--cycles", type=int, default=2, help="how many times to cut the master")
    convert = sub.add_parser(
        "convert",
        help="convert keepalived configurations to VirtualIPs",
        description="Convert keepalived.conf files (one per host) to VirtualIP documents.",
    )
    convert_arguments(convert)
    status = sub.add_parser(
        "status",
        help="show VirtualIPs: addresses, master, each node's state and priority",
        description="Show VirtualIPs from the Kubernetes API or from standalone agents.",
    )
    status_arguments(status)
    from keepvip_tools.maintenance import add_arguments as undrain_arguments
    from keepvip_tools.maintenance import add_drain_arguments

    drain = sub.add_parser(
        "drain",
        help="move every VIP off a node (keepvip only: no cordon, no eviction)",
        description="Label the node keepvip.io/maintenance=true and follow its VIPs moving off.",
    )
    add_drain_arguments(drain)
    undrain = sub.add_parser("undrain", help="end keepvip's maintenance of a node")
    undrain_arguments(undrain)
    from keepvip_tools.maintenance import add_move_arguments

    move = sub.add_parser(
        "move",
        help="hand a VIP over to a chosen node now",
        description="Ask the agents to hand the VirtualIP over to NODE and print the outcome.",
    )
    add_move_arguments(move)
    from keepvip_tools.apiaddress.command import add_static_pod_arguments, add_systemd_arguments

    static_pod = sub.add_parser(
        "static-pod",
        help="print a static Pod that holds the Kubernetes API address (control-plane nodes)",
        description="Print a Pod manifest for /etc/kubernetes/manifests/ that keeps ADDR on a "
        "control-plane node whose API server is ready (VRRP; no API access needed).",
    )
    add_static_pod_arguments(static_pod)
    unit = sub.add_parser(
        "systemd-unit",
        help="print a systemd unit that holds the Kubernetes API address (hosts without kubelet)",
        description="Print a systemd service that keeps ADDR on this host while its API server "
        "is ready.",
    )
    add_systemd_arguments(unit)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "keepvip") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.command == "lab":
        from keepvip_tools.lab.demo import run_lab

        return run_lab(nodes=args.nodes, interval=args.interval, cycles=args.cycles)
    if args.command == "convert":
        from keepvip_tools.convert.command import run as run_convert

        return run_convert(args)
    if args.command == "move":
        from keepvip_tools.maintenance import run_move

        return run_move(args)
    if args.command in ("drain", "undrain"):
        from keepvip_tools.maintenance import run as run_maintenance

        return run_maintenance(args)
    if args.command in ("static-pod", "systemd-unit"):
        from keepvip_tools.apiaddress.command import run as run_api_address

        return run_api_address(args)
    if args.command == "status":
        from keepvip_tools.status.command import run as run_status

        return run_status(args)
    return 2


def kubectl_main() -> int:
    """Entry point of the ``kubectl-keepvip`` plugin: ``kubectl keepvip status``."""
    return main(prog="kubectl keepvip")


if __name__ == "__main__":
    sys.exit(main())
