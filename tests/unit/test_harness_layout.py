"""The test layout's rules (docs/testing.md, "The test harness"), read from the source.

Test modules import the harness (``keepvip_harness``) and keepvip, never
another test module, a conftest or a tier folder; the benchmarks import no
test module and leave ``sys.path`` alone; the harness imports nothing from
the tests and is not part of the shipped package. import-linter cannot say
this: ``tests/`` and ``benchmarks/`` are folders of scripts, not packages, so
the rule is checked on the syntax tree instead.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
HARNESS = TESTS / "harness"
BENCHMARKS = REPO / "benchmarks"


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if HARNESS not in p.parents)


def local_names() -> set[str]:
    """Top-level names a ``tests/`` file could be imported by, were ``tests/`` on sys.path."""
    names = {"tests"}
    for path in _test_files():
        names.add(path.stem)
        names.update(part for part in path.relative_to(TESTS).parts[:-1])
    return names - {"__init__"}


def imports(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, dotted module, relative level) of every import in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    local = local_names()
    found = [
        f"{path.relative_to(REPO)}:{line}: {'.' * level}{module}"
        for path in _test_files()
        for line, module, level in imports(path)
        if level > 0 or module.split(".")[0] in local
    ]
    assert not found, "import the harness (keepvip_harness) instead:\n" + "\n".join(found)


def test_benchmarks_import_no_test_module_and_leave_sys_path_alone() -> None:
    local = local_names()
    found = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        found += [
            f"{path.relative_to(REPO)}:{line}: {module}"
            for line, module, level in imports(path)
            if level > 0 or module.split(".")[0] in local
        ]
        found += [
            f"{path.relative_to(REPO)}:{node.lineno}: sys.path"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ]
    assert not found, "\n".join(found)


def test_the_harness_imports_nothing_from_the_tests() -> None:
    local = local_names() - {"harness"}
    found = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted(HARNESS.rglob("*.py"))
        for line, module, level in imports(path)
        if level == 0 and module.split(".")[0] in local
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", ["pyproject.toml", ".dockerignore"])
def test_the_harness_is_not_shipped(source: str) -> None:
    """keepvip's packages are found under agent/ and operator/ only; the image's context has no tests/."""
    if source == "pyproject.toml":
        config = tomllib.loads((REPO / source).read_text())
        where = config["tool"]["setuptools"]["packages"]["find"]["where"]
        assert not [w for w in where if Path(w).parts[0] == "tests"], where
    else:
        allowed = [
            line[1:].strip()
            for line in (REPO / source).read_text().splitlines()
            if line.startswith("!")
        ]
        assert not [a for a in allowed if a.startswith("tests")], allowed
