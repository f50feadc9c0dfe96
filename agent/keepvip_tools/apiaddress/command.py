"""``keepvip static-pod`` and ``keepvip systemd-unit``: the command lines and their output files.

Both print to stdout (or ``-o FILE``) and, with ``--config-out FILE``, write
the VirtualIP file the agent reads. Nothing is written when an option is
invalid: exit status 2 with one line per problem, naming the option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from keepvip_api import SpecError
from keepvip_tools.apiaddress.config import (
    DEFAULT_CONFIG_PATH,
    DEFAULT_IMAGE,
    add_config_arguments,
    build,
    options_from,
    to_yaml,
)
from keepvip_tools.apiaddress.staticpod import render_pod_yaml
from keepvip_tools.apiaddress.systemd import DEFAULT_AGENT, render_unit

__all__ = ["EXIT_INVALID", "add_static_pod_arguments", "add_systemd_arguments", "run"]

EXIT_INVALID = 2


def _common(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def add_static_pod_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"(default {DEFAULT_IMAGE})")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config-path", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                       help="the host file the pod reads its VirtualIP from (hostPath; "
                       f"default {DEFAULT_CONFIG_PATH})")  # fmt: skip
    where.add_argument("--inline", action="store_true",
                       help="carry the VirtualIP in the manifest instead of a host file")  # fmt: skip


def add_systemd_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--config-path", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                   help=f"the VirtualIP file the unit runs (default {DEFAULT_CONFIG_PATH})")  # fmt: skip
    p.add_argument("--agent", default=DEFAULT_AGENT, metavar="PATH",
                   help=f"the keepvip-agent executable (default {DEFAULT_AGENT})")  # fmt: skip


def _emit(text: str, target: str | None, out: TextIO, err: TextIO) -> None:
    if target is None:
        out.write(text)
        return
    Path(target).write_text(text)
    print(f"wrote {target}", file=err)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    options = options_from(args)
    try:
        vip = build(options)
    except SpecError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=err)
        return EXIT_INVALID
    if args.command == "static-pod":
        path = None if args.inline else args.config_path
        text = render_pod_yaml(vip, options, image=args.image, config_path=path)
    else:
        text = render_unit(
            vip, agent=args.agent, config_path=args.config_path, metrics_port=options.metrics_port
        )
    if args.config_out:
        _emit(to_yaml(vip), args.config_out, out, err)
    _emit(text, args.output, out, err)
    return 0
