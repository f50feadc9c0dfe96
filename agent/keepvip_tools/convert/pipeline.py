"""From keepalived files to validated VirtualIP documents: the converter's one entry point.

parse (syntax, includes) -> read (vocabulary) -> resolve (keepalived's
rules, per host) -> map (hosts lined up, one document per VRRP group) ->
validate. Each stage reports into one :class:`~.errors.Findings`; errors
of a stage are raised together before the next stage runs, so the user
sees every problem of a kind at once instead of one per run.

The last step loads every written document with the agent's own loader
(:func:`keepvip_api.load_documents`): a conversion that produced a
document the agent would reject is a bug here, and it stops with the
agent's message rather than writing the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

from keepvip_api import SpecError, load_documents
from keepvip_tools.convert.errors import ConvertError, Finding, Findings, Problem
from keepvip_tools.convert.mapper import Planned, node_names, plan_documents
from keepvip_tools.convert.parser import parse_file
from keepvip_tools.convert.reader import read_node
from keepvip_tools.convert.resolve import resolve_node

__all__ = ["Conversion", "convert_files"]


@dataclass(frozen=True)
class Conversion:
    documents: list[Planned]
    findings: list[Finding]
    standalone: bool

    def text(self) -> str:
        """Every document as one multi-document YAML stream."""
        return "".join(f"---\n{d.text}" for d in self.documents)


def convert_files(
    paths: Sequence[str], nodes: Sequence[str] = (), standalone: bool = False
) -> Conversion:
    """Convert one keepalived file per host; raise :class:`ConvertError` if that is not possible."""
    if not paths:
        raise ConvertError([Problem(None, "no keepalived configuration file given")])
    f = Findings()
    files = []
    for path in paths:
        try:  # a syntax error stops this file only: the others are still checked
            files.append(read_node(parse_file(path), path, f))
        except ConvertError as exc:
            f.errors += exc.problems
    f.raise_errors()
    names = node_names(files, nodes, f, standalone)
    f.raise_errors()
    per_file = [
        resolve_node(node, name, f, standalone) for node, name in zip(files, names, strict=True)
    ]
    f.raise_errors()
    documents = plan_documents(per_file, standalone, f)
    f.raise_errors()
    _validate(documents, standalone)
    # One finding may concern several instances (a script they share); report it once.
    unique = {(x.where, x.severity, x.message): x for x in f.items}
    findings = sorted(unique.values(), key=lambda x: (x.where.path, x.where.line, x.message))
    return Conversion(documents, findings, standalone)


def _validate(documents: list[Planned], standalone: bool) -> None:
    problems: list[Problem] = []
    for doc in documents:
        loaded = yaml.safe_load(doc.text)
        if loaded != doc.data:  # the comment-keeping writer must write what was meant
            raise AssertionError(f"{doc.name}: written YAML does not load back to the plan")
        try:
            load_documents(doc.text, source=doc.name, standalone=standalone)
        except SpecError as exc:
            problems += [
                Problem(doc.where, f"the VirtualIP would be invalid: {p}") for p in exc.problems
            ]
    if not problems and documents:
        text = "".join(f"---\n{d.text}" for d in documents)
        try:
            load_documents(text, source="output", standalone=standalone)
        except SpecError as exc:
            problems += [
                Problem(None, f"the VirtualIPs would be invalid together: {p}")
                for p in exc.problems
            ]
    if problems:
        raise ConvertError(problems)
