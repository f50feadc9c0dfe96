"""The ``keepvip convert`` command line: arguments, output files, the report, exit statuses.

Output goes to stdout as one YAML stream, or with ``-o DIR`` to files: one
file per VirtualIP in the Kubernetes form (``kubectl apply -f DIR``), one
``keepvip.yaml`` in the standalone form (what ``keepvip-agent --config``
reads on every host). The report (every finding, with file and line) goes to
stderr either way, so ``keepvip convert a.conf > vip.yaml`` keeps the two apart.

Exit status: 0 converted; 2 the input is malformed or cannot be expressed
(nothing is written); 1 with ``--strict`` when something was not converted
exactly (warnings or unsupported options).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from keepvip_tools.convert.errors import ConvertError
from keepvip_tools.convert.pipeline import Conversion, convert_files
from keepvip_tools.convert.report import error_lines, finding_lines, inexact

__all__ = ["EXIT_INEXACT", "EXIT_INVALID", "add_arguments", "run"]

EXIT_INVALID = 2
EXIT_INEXACT = 1
STANDALONE_FILE = "keepvip.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="keepalived.conf",
        help="one keepalived configuration per host (includes are followed)",
    )
    p.add_argument("-o", "--output", metavar="DIR", help="write files into DIR instead of stdout")
    p.add_argument(
        "--standalone",
        action="store_true",
        help="the form keepvip-agent --config reads (keeps notify hooks) instead of Kubernetes",
    )
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME",
        help="the node name of each file, once per file in order (default: router_id)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when anything was not converted exactly (warnings, unsupported options)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only warnings and worse")


def _write(conv: Conversion, directory: Path, err: TextIO) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if conv.standalone:
        target = directory / STANDALONE_FILE
        target.write_text(conv.text())
        print(f"wrote {target}", file=err)
        return
    for doc in conv.documents:
        target = directory / f"{doc.name}.yaml"
        target.write_text(f"---\n{doc.text}")
        print(f"wrote {target}", file=err)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        conv = convert_files(args.files, args.node, standalone=args.standalone)
    except ConvertError as exc:
        print("\n".join(error_lines(exc)), file=err)
        return EXIT_INVALID
    if args.output:
        _write(conv, Path(args.output), err)
    else:
        out.write(conv.text())
    print("\n".join(finding_lines(conv.findings, len(conv.documents), args.quiet)), file=err)
    return EXIT_INEXACT if args.strict and inexact(conv.findings) else 0
