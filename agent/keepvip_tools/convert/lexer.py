"""Turn keepalived configuration text into tokens, following ``include`` as keepalived does.

keepalived's syntax is line based: a statement is the words of one line, a
word may be ``"quoted"``, ``#`` or ``!`` start a comment anywhere outside
quotes (``router_id ab#cd`` is ``ab`` to keepalived 2.2.7), a trailing
backslash continues a line, and ``{`` / ``}`` open and close blocks.
``include PATTERN`` (and its variants ``includer``/``includem``/...) pulls
in every file matching a glob with csh-style ``{a,b}`` braces; relative
patterns are relative to the directory of the file that contains the
include, as the keepalived.conf(5) manual says.

Where we are stricter than keepalived, on purpose:

* a brace glued to a word (``vrrp_instance VI_1{``, ``eth0}``) is an error.
  keepalived 2.2.7 accepts such a file without a word of warning and does
  not read the block the author meant, which is exactly the kind of silent
  mistake a converter should catch;
* an include that matches no file is an error: a conversion that silently
  misses part of the configuration is worse than none;
* ``@id`` conditional lines and ``$NAME=value`` definitions are refused with
  a clear message instead of being half understood.

Every token knows its file and line, so every later message can point at it.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from keepvip_tools.convert.errors import ConvertError, Location

__all__ = ["Kind", "Token", "expand_braces", "tokenize_file", "tokenize_text"]

INCLUDE_WORDS = frozenset({"include", "includer", "includem", "includew", "includeb", "includea"})
MAX_INCLUDE_DEPTH = 32
MAX_FILES = 1000
_BRACES = frozenset("{}")


class Kind(Enum):
    WORD = "word"
    OPEN = "{"
    CLOSE = "}"
    EOL = "end of line"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    """A word's value (quotes removed, escapes applied); ``{`` or ``}``; empty at end of line."""
    where: Location
    quoted: bool = False


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Logical lines with their first physical line number; a trailing backslash joins lines."""
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _quoted(line: str, i: int, where: Location) -> tuple[str, int]:
    """Read a ``"quoted"`` word starting at ``line[i] == '"'``; return it and the index after it."""
    out: list[str] = []
    i += 1
    while i < len(line):
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise ConvertError.at(where, "unterminated quoted string: a '\"' is missing")


def _split_line(line: str, where: Location) -> list[Token]:
    """The tokens of one logical line (without the end-of-line token)."""
    tokens: list[Token] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c.isspace():
            i += 1
            continue
        if c in "#!":
            break
        word: list[str] = []
        quoted = False
        while i < len(line) and not line[i].isspace() and line[i] not in "#!":
            if line[i] == '"':
                text, i = _quoted(line, i, where)
                word.append(text)
                quoted = True
            else:
                word.append(line[i])
                i += 1
        text = "".join(word)
        if quoted:
            tokens.append(Token(Kind.WORD, text, where, quoted=True))
        else:
            tokens.extend(_unquoted(text, where))
    return tokens


def _unquoted(text: str, where: Location) -> list[Token]:
    if not (_BRACES & set(text)):
        return [Token(Kind.WORD, text, where)]
    if set(text) <= _BRACES:  # "{", "}", "{}", "}}": braces standing on their own
        return [Token(Kind.OPEN if c == "{" else Kind.CLOSE, c, where) for c in text]
    brace = "{" if "{" in text else "}"
    name = text.strip("{}") or text
    if brace == "{":
        hint = f"write '{name} {{' with a space before the brace"
    else:
        hint = f"write '{name} }}' with a space before the brace"
    raise ConvertError.at(
        where,
        f"'{brace}' is glued to '{name}': keepalived 2.2.7 does not read that as a block "
        f"(and says nothing); {hint}",
    )


# -- include ---------------------------------------------------------------------------


def expand_braces(pattern: str) -> list[str]:
    """csh-style ``{a,b}`` expansion (nested braces allowed), left to right, duplicates kept."""
    depth = 0
    start = -1
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts = _split_top_level(inner)
                if len(parts) == 1:  # "{x}" without a comma is literal, as in csh
                    return [pattern[: i + 1] + rest for rest in expand_braces(pattern[i + 1 :])]
                head, tail = pattern[:start], pattern[i + 1 :]
                return [
                    head + middle + rest
                    for part in parts
                    for middle in expand_braces(part)
                    for rest in expand_braces(tail)
                ]
    return [pattern]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for c in text:
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += c == "{"
        depth -= c == "}" and depth > 0
        current.append(c)
    parts.append("".join(current))
    return parts


@dataclass
class _Context:
    files: int = 0


def _include(
    keyword: str, line: str, where: Location, real_dir: Path, shown_dir: str
) -> list[tuple[Path, str]]:
    """The files an include line names: (real path, path as shown in messages)."""
    m = re.match(r"\s*\S+\s+(.*?)\s*$", line.split("#", 1)[0])
    raw = m.group(1) if m else ""
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        raw = raw[1:-1]
    if not raw:
        raise ConvertError.at(where, f"{keyword}: a file name or pattern is required")
    matches: list[tuple[Path, str]] = []
    for pattern in expand_braces(raw):
        absolute = os.path.isabs(pattern)
        base = pattern if absolute else str(real_dir / pattern)
        for found in sorted(glob.glob(base)):
            rel = os.path.relpath(found, real_dir)
            shown = found if absolute else os.path.normpath(os.path.join(shown_dir, rel))
            if os.path.isfile(found) and (Path(found), shown) not in matches:
                matches.append((Path(found), shown))
    if not matches:
        raise ConvertError.at(
            where,
            f"{keyword} {raw}: no file matches (relative patterns are relative to "
            f"the directory of {where.path})",
        )
    return matches


def _refuse_extensions(line: str, where: Location) -> None:
    stripped = line.lstrip()
    if stripped.startswith("@"):
        raise ConvertError.at(
            where,
            "conditional configuration ('@id' lines) is not supported by the converter: "
            "convert each host's file with only the lines that apply to it",
        )
    if stripped.startswith("$") and "=" in stripped.split()[0]:
        raise ConvertError.at(
            where,
            "parameter definitions ($NAME=value) are not supported by the converter: "
            "substitute the values first",
        )
    if stripped.startswith("~SEQ"):
        raise ConvertError.at(where, "~SEQ sequences are not supported by the converter")


def _tokens(
    path: Path, shown: str, depth: int, stack: tuple[Path, ...], ctx: _Context
) -> Iterator[Token]:
    ctx.files += 1
    if ctx.files > MAX_FILES:
        raise ConvertError.at(Location(shown, 1), f"more than {MAX_FILES} files included")
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise ConvertError.at(None, f"{shown}: cannot read: {exc.strerror or exc}") from None
    real = path.resolve()
    yield from tokenize_text(
        text,
        shown,
        include=lambda keyword, line, where: _included(
            keyword, line, where, real, shown, depth, (*stack, real), ctx
        ),
    )


def _included(
    keyword: str,
    line: str,
    where: Location,
    real: Path,
    shown: str,
    depth: int,
    stack: tuple[Path, ...],
    ctx: _Context,
) -> Iterator[Token]:
    if depth >= MAX_INCLUDE_DEPTH:
        raise ConvertError.at(where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
    for target, target_shown in _include(keyword, line, where, real.parent, os.path.dirname(shown)):
        if target.resolve() in stack:
            raise ConvertError.at(where, f"{target_shown} includes itself (through {shown})")
        yield from _tokens(target, target_shown, depth + 1, stack, ctx)


IncludeFn = Callable[[str, str, Location], Iterator[Token]]


def tokenize_text(text: str, shown: str, include: IncludeFn | None = None) -> Iterator[Token]:
    """Tokens of one file's text; ``include(keyword, line, where)`` yields an included file's tokens.

    Without ``include`` an include line is an error (text given directly has no directory).
    """
    for number, line in _lines(text):
        where = Location(shown, number)
        _refuse_extensions(line, where)
        head = line.split(None, 1)
        if head and head[0] in INCLUDE_WORDS:  # before splitting: patterns may hold {a,b}
            if include is None:
                raise ConvertError.at(where, "include is not possible in text without a file")
            yield from include(head[0], line, where)
            continue
        words = _split_line(line, where)
        if not words:
            continue
        yield from words
        yield Token(Kind.EOL, "", where)


def tokenize_file(path: str | Path) -> Iterator[Token]:
    """Tokens of a configuration file and everything it includes, in keepalived's reading order."""
    shown = str(path)
    return _tokens(Path(path), shown, 0, (), _Context())
