"""``keepvip-agent``: run VRRP instances for VirtualIPs on this host.

Standalone: ``keepvip-agent --config vip.yaml --node NAME [--metrics-port PORT]``, or
``--config-env NAME`` with the YAML in that environment variable (a static pod that
carries its VirtualIP inline, with no file on the host).
Kubernetes, one agent per node for every VirtualIP (the node agent DaemonSet):
``keepvip-agent --kubernetes --node $(NODE_NAME) --agent-namespace $(POD_NAMESPACE)
--metrics-port 9640 [--watch-namespaces a,b] [--address-grants off]
[--trusted-namespaces a,b] [--trusted-namespace-label k=v]`` (what the operator
renders from its own settings: keepvip_api.acceptance).
An invalid file exits 2 with one line per problem, before anything on the
host is touched. SIGTERM or SIGINT hands over gracefully and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import sys
from collections.abc import Sequence

from keepvip_agent.logsetup import setup_logging
from keepvip_api import SpecError, __version__, load_documents, load_file
from keepvip_api.acceptance import Trust, parse_label
from keepvip_api.model import VirtualIP

EXIT_CONFIG = 2
DEFAULT_METRICS_PORT = 9650


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keepvip-agent", description=__doc__.split("\n")[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config", help="standalone: YAML file with one or more VirtualIP documents"
    )
    source.add_argument(
        "--config-env",
        metavar="VAR",
        help="standalone: the VirtualIP YAML is in this environment variable (inline config)",
    )
    source.add_argument(
        "--kubernetes",
        action="store_true",
        help="Kubernetes node agent: run every VirtualIP whose placement selects --node",
    )
    p.add_argument(
        "--agent-namespace",
        help="--kubernetes: the agents' namespace (node Leases, split-brain Leases, peer pods)",
    )
    p.add_argument(
        "--watch-namespaces",
        default="",
        help="--kubernetes: comma-separated namespaces to read VirtualIPs from (default: all)",
    )
    p.add_argument(
        "--address-grants",
        default="on",
        choices=["on", "off"],
        help="--kubernetes: on (default): run only the generation of a VirtualIP the operator "
        "accepted (status.acceptedGeneration)",
    )
    p.add_argument(
        "--trusted-namespaces",
        default="",
        help="--kubernetes: comma-separated namespaces whose VirtualIPs may run commands (exec "
        "checks, notify) and aim checks at this node (default: none)",
    )
    p.add_argument(
        "--trusted-namespace-label",
        default="",
        help="--kubernetes: key=value; namespaces with this label are trusted the same way",
    )
    p.add_argument(
        "--node", default=socket.gethostname(), help="this node's name (default: hostname)"
    )
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="0 turns it off")
    p.add_argument("--metrics-address", default="0.0.0.0")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument("--version", action="version", version=__version__)
    return p


async def run(vips: Sequence[VirtualIP], node: str, metrics_address: str, metrics_port: int) -> int:
    from keepvip_agent.runtime.agent import Agent
    from keepvip_agent.runtime.http import serve

    async with Agent(node) as agent:
        agent.install_signal_handlers()
        web = await serve(agent, metrics_address, metrics_port) if metrics_port else None
        try:
            await agent.apply(vips)
            # What start-up built (models, modules, instances) lives as long as the
            # process: out of the collector's way, a full collection no longer walks it.
            gc.freeze()
            await agent.stopping.wait()
        finally:
            await agent.shutdown()
            if web is not None:
                await web.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.kubernetes:
        if not args.agent_namespace:
            print("error: --agent-namespace: required with --kubernetes", file=sys.stderr)
            return EXIT_CONFIG
        setup_logging(args.log_level, args.log_format)
        from keepvip_agent.kube.nodeagent import run_node_agent

        namespaces = [n.strip() for n in args.watch_namespaces.split(",") if n.strip()]
        try:
            label = parse_label(args.trusted_namespace_label)
        except ValueError as exc:
            print(f"error: --trusted-namespace-label: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        trust = Trust(
            address_grants=args.address_grants == "on",
            trusted_namespaces=frozenset(
                n.strip() for n in args.trusted_namespaces.split(",") if n.strip()
            ),
            trusted_label=label,
        )
        from keepvip_agent.kube.config import ConfigError

        try:
            return asyncio.run(
                run_node_agent(
                    args.node,
                    args.agent_namespace,
                    namespaces,
                    args.metrics_address,
                    args.metrics_port,
                    trust,
                )
            )
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    source = args.config or f"${args.config_env}"
    try:
        if args.config_env:
            text = os.environ.get(args.config_env)
            if text is None:
                raise SpecError([f"{source}: not set"])
            vips = load_documents(text, source=source)
        else:
            vips = load_file(args.config)
    except SpecError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"{source}: {len(vips)} VirtualIP(s) valid")
        return 0
    setup_logging(args.log_level, args.log_format)
    return asyncio.run(run(vips, args.node, args.metrics_address, args.metrics_port))


if __name__ == "__main__":
    sys.exit(main())
