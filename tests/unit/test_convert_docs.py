"""docs/migrating-from-keepalived.md shows real input, real output and real errors.

The worked example's blocks are marked ``<!-- example: CASE/FILE -->``
(the corpus file without its source header), ``<!-- output: ... -->`` and
``<!-- report: ... -->`` (the pinned results, themselves checked against
the converter by the corpus test); every line of the Errors block is an
error the error table or a published broken configuration produces. So
the page cannot drift from what the command does.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating-from-keepalived.md"
CORPUS = Path(__file__).with_name("convert_corpus")
MARKED = re.compile(r"<!-- (example|output|report): (\S+) -->\n```[a-z]*\n(.*?)```", re.S)


def without_source_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def test_marked_blocks_are_the_corpus_files() -> None:
    blocks = MARKED.findall(PAGE.read_text())
    assert {kind for kind, _, _ in blocks} == {"example", "output", "report"}
    for kind, name, body in blocks:
        text = (CORPUS / name).read_text()
        expected = without_source_header(text) if kind == "example" else text
        assert body == expected, f"the {kind} block for {name} differs from the file"


def _error_table() -> list[str]:
    path = Path(__file__).with_name("test_convert_errors.py")
    spec = importlib.util.spec_from_file_location("keepvip_convert_errors_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    lines = [v.error for v in module.VARIANTS]
    for expected in (CORPUS / "broken").glob("*/expected-error.txt"):
        lines += expected.read_text().splitlines()
    return lines


def test_the_errors_shown_are_real() -> None:
    page = PAGE.read_text()
    block = page.split("## Errors", 1)[1].split("```\n", 2)[1]
    known = _error_table()
    for line in block.splitlines():
        assert line in known, line
