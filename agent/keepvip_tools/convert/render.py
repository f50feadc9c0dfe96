"""A small YAML writer that keeps comments: the converter's output explains itself line by line.

PyYAML drops comments, and the point of the output is that every translated
value says where it came from and why it looks as it does. So documents are
built as a tree of :class:`Map`/:class:`Seq` with comments attached and
written here in block style; scalars are quoted by PyYAML itself, so they
read back exactly. :func:`plain` gives the same tree without comments, and
the caller checks that the written text loads back to it, so this writer
can never silently produce a different document than the one intended.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["Entry", "Item", "Map", "Seq", "dump_scalar", "plain", "write"]

WIDTH = 100
Scalar = str | int | float | bool | None


@dataclass
class Entry:
    key: str
    value: Node
    above: list[str] = field(default_factory=list)
    """Comment lines written before the key."""
    inline: str | None = None
    """A short comment after the value (scalars and flow lists)."""


@dataclass
class Item:
    value: Node
    above: list[str] = field(default_factory=list)
    inline: str | None = None


@dataclass
class Map:
    entries: list[Entry] = field(default_factory=list)

    def add(self, key: str, value: Node, *above: str, inline: str | None = None) -> None:
        self.entries.append(Entry(key, value, list(above), inline))


@dataclass
class Seq:
    items: list[Item] = field(default_factory=list)
    flow: bool = False
    """``[a, b]`` on the key's line; scalars only."""


Node = Map | Seq | Scalar


def dump_scalar(value: Scalar) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").removesuffix("...").rstrip("\n")


def _comment(lines: list[str], indent: int) -> list[str]:
    out: list[str] = []
    pad = " " * indent
    for line in lines:
        wrapped = textwrap.wrap(line, WIDTH - indent - 2, break_long_words=False) or [""]
        for i, part in enumerate(wrapped):
            out.append(f"{pad}# {'  ' if i else ''}{part}".rstrip())
    return out


def _inline(value: str, comment: str | None) -> str:
    return f"{value}  # {comment}" if comment else value


def _flow(seq: Seq) -> str:
    return "[" + ", ".join(dump_scalar(i.value) for i in seq.items) + "]"  # type: ignore[arg-type]


def _is_scalar(node: Node) -> bool:
    return not isinstance(node, Map | Seq)


def _map(node: Map, indent: int) -> list[str]:
    out: list[str] = []
    pad = " " * indent
    for e in node.entries:
        out += _comment(e.above, indent)
        out += _value(f"{pad}{dump_scalar(e.key)}:", e.value, e.inline, indent)
    return out


def _value(head: str, value: Node, inline: str | None, indent: int) -> list[str]:
    if isinstance(value, Seq):
        if value.flow or not value.items:
            return [_inline(f"{head} {_flow(value)}", inline)]
        return [_inline(head, inline), *_seq(value, indent)]
    if not isinstance(value, Map):
        return [_inline(f"{head} {dump_scalar(value)}", inline)]
    if not value.entries:
        return [_inline(f"{head} {{}}", inline)]
    return [_inline(head, inline), *_map(value, indent + 2)]


def _seq(node: Seq, indent: int) -> list[str]:
    out: list[str] = []
    pad = " " * indent
    for item in node.items:
        out += _comment(item.above, indent)
        v = item.value
        if _is_scalar(v):
            out.append(_inline(f"{pad}- {dump_scalar(v)}", item.inline))  # type: ignore[arg-type]
        elif isinstance(v, Map) and v.entries:
            lines = _map(v, indent + 2)
            first = next(i for i, line in enumerate(lines) if not line.lstrip().startswith("#"))
            # The first key shares the dash's line; comments above it move above the dash.
            lines[first] = f"{pad}- {lines[first][indent + 2 :]}"
            if item.inline:
                lines[first] = _inline(lines[first], item.inline)
            out += [line[2:] if i < first else line for i, line in enumerate(lines)]
        else:
            out += _value(f"{pad}-", v, item.inline, indent + 2)
    return out


def write(node: Map, header: list[str] | None = None) -> str:
    """One YAML document (no ``---``) with ``header`` comment lines first."""
    lines = _comment(header or [], 0) + _map(node, 0)
    return "\n".join(lines) + "\n"


def plain(node: Node) -> Any:
    """The tree as plain Python data (what the written text must load back to)."""
    if isinstance(node, Map):
        return {e.key: plain(e.value) for e in node.entries}
    if isinstance(node, Seq):
        return [plain(i.value) for i in node.items]
    return node
