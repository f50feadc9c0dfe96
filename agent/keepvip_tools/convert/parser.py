"""Build keepalived's block structure from tokens: statements, each with an optional block.

A statement is the words of one line (``priority 100``, ``vrrp_instance VI_1``);
when its line ends with ``{`` the statement owns the block up to the matching
``}``. One-line blocks (``virtual_ipaddress { 192.0.2.50 }``) and a ``{`` alone
on the next line (Allman style) work too. The parser knows no keywords: the
reader (:mod:`keepvip_tools.convert.reader`) decides what a statement means,
so the syntax and the vocabulary can be tested apart.

Unbalanced braces are reported where they are detected *and* where the
unmatched brace was opened, which is the line the user needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keepvip_tools.convert.errors import ConvertError, Location, Problem
from keepvip_tools.convert.lexer import Kind, Token, tokenize_file, tokenize_text

__all__ = ["Statement", "parse_file", "parse_text", "parse_tokens"]

MAX_DEPTH = 64
"""keepalived nests four levels deep at most; far deeper nesting is a broken file, not a config."""


@dataclass
class Statement:
    words: list[Token]
    block: list[Statement] | None = None
    block_where: Location | None = None
    """Where the block's ``{`` is."""
    end_where: Location | None = None
    """Where the block's ``}`` is."""

    @property
    def keyword(self) -> str:
        return self.words[0].text

    @property
    def args(self) -> list[str]:
        return [w.text for w in self.words[1:]]

    @property
    def where(self) -> Location:
        return self.words[0].where


class _Stream:
    def __init__(self, tokens: Iterable[Token]) -> None:
        self._it: Iterator[Token] = iter(tokens)
        self._peeked: Token | None = None

    def peek(self) -> Token | None:
        if self._peeked is None:
            self._peeked = next(self._it, None)
        return self._peeked

    def next(self) -> Token | None:
        tok = self.peek()
        self._peeked = None
        return tok


def _block(
    stream: _Stream, opened: Location | None, depth: int = 0
) -> tuple[list[Statement], Location | None]:
    """Statements up to the ``}`` that closes ``opened`` (or to the end when ``opened`` is None)."""
    if depth > MAX_DEPTH:
        raise ConvertError.at(opened, f"blocks nested deeper than {MAX_DEPTH} levels")
    items: list[Statement] = []
    last_line_ended = True  # whether the previous statement's line ended (for Allman braces)
    while True:
        tok = stream.next()
        if tok is None:
            if opened is not None:
                raise ConvertError(
                    [
                        Problem(
                            opened,
                            "this '{' is never closed: a '}' is missing before the end of the file",
                        )
                    ]
                )
            return items, None
        if tok.kind is Kind.EOL:
            last_line_ended = True
            continue
        if tok.kind is Kind.CLOSE:
            if opened is None:
                raise ConvertError.at(tok.where, "'}' without a matching '{'")
            return items, tok.where
        if tok.kind is Kind.OPEN:
            prev = items[-1] if items else None
            if prev is None or prev.block is not None or not last_line_ended:
                raise ConvertError.at(tok.where, "'{' does not follow a keyword")
            prev.block, prev.end_where = _block(stream, tok.where, depth + 1)
            prev.block_where = tok.where
            last_line_ended = False
            continue
        stmt = Statement([tok])
        while (nxt := stream.peek()) is not None and nxt.kind is Kind.WORD:
            stmt.words.append(nxt)
            stream.next()
        items.append(stmt)
        nxt = stream.peek()
        last_line_ended = False
        if nxt is not None and nxt.kind is Kind.OPEN:
            stream.next()
            stmt.block_where = nxt.where
            stmt.block, stmt.end_where = _block(stream, nxt.where, depth + 1)


def parse_tokens(tokens: Iterable[Token]) -> list[Statement]:
    items, _ = _block(_Stream(tokens), None)
    return items


def parse_text(text: str, path: str = "<text>") -> list[Statement]:
    """Statements of configuration text (no includes: text has no directory)."""
    return parse_tokens(tokenize_text(text, path))


def parse_file(path: str) -> list[Statement]:
    """Statements of a configuration file with its includes expanded in place."""
    return parse_tokens(tokenize_file(path))
