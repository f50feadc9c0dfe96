"""The operator's decisions live in pure modules: no kopf, no Kubernetes client, no event loop.

(The same rule as an import-linter contract would need a change to
pyproject.toml; this test keeps it meanwhile, including imports made inside
functions.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "keepvip_operator"
PURE = [
    "aggregate", "allocate", "conditions", "meta", "names", "observed", "rbac", "render",
    "settings", "statusplan", "pools", "lbmodel", "publish",
]  # fmt: skip
FORBIDDEN = ("kopf", "kubernetes", "urllib3", "aiohttp", "asyncio", "threading", "socket")
ALLOWED_INTERNAL = {f"keepvip_operator.{m}" for m in PURE} | {"keepvip_operator"}


def imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    for name in imports(module):
        assert name.split(".")[0] not in FORBIDDEN, f"{module} imports {name}"
        if name.startswith("keepvip_operator"):
            assert name in ALLOWED_INTERNAL, f"{module} imports the impure {name}"
        if name.startswith("keepvip_agent"):
            assert name.startswith(("keepvip_agent.spec", "keepvip_agent.kube.pods")), name


def test_every_module_is_classified() -> None:
    impure = {"handlers", "kube", "leader", "main", "reconcile", "resync", "services", "__init__"}
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(PURE) | impure


@pytest.mark.parametrize("module", sorted(p.stem for p in PACKAGE.glob("*.py")))
def test_every_module_says_why(module: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / f"{module}.py").read_text()))
    assert doc and len(doc) > 40, f"{module} has no docstring worth the name"
