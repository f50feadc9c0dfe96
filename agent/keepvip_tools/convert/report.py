"""The conversion report: every finding as ``file:line: severity: message``, then a summary.

It is printed on stderr by ``keepvip convert`` (documents go to stdout or
files), and the findings concerning one VirtualIP are also written as
comments at the top of that document (see :mod:`~.mapper`), so the report
and the output can be read apart and still say the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

from keepvip_tools.convert.errors import ConvertError, Finding, Severity

__all__ = ["error_lines", "finding_lines", "inexact"]

_WORDS = {Severity.NOTE: "note", Severity.WARNING: "warning", Severity.UNSUPPORTED: "unsupported"}


def finding_lines(findings: Sequence[Finding], documents: int, quiet: bool = False) -> list[str]:
    """The findings (notes left out when ``quiet``) and one summary line."""
    counts = dict.fromkeys(Severity, 0)
    lines: list[str] = []
    for finding in findings:
        counts[finding.severity] += 1
        if not (quiet and finding.severity is Severity.NOTE):
            lines.append(str(finding))
    summary = ", ".join(
        f"{n} {_WORDS[s]}" + ("s" if n != 1 and s is not Severity.UNSUPPORTED else "")
        for s, n in counts.items()
    )
    lines.append(f"keepvip convert: {documents} VirtualIP(s); {summary}")
    return lines


def error_lines(exc: ConvertError) -> list[str]:
    """Every problem as ``file:line: message``, then what happened (nothing written)."""
    return [
        *(str(p) for p in exc.problems),
        f"keepvip convert: {len(exc.problems)} error(s); nothing written",
    ]


def inexact(findings: Sequence[Finding]) -> bool:
    """Whether anything was not converted exactly (``--strict`` fails on it)."""
    return any(f.severity is not Severity.NOTE for f in findings)
