"""Every operator module is classified pure or I/O, and every module of every package says why.

The rule itself (pure modules import no kopf, no Kubernetes client, no event
loop and no I/O module) is an import-linter contract in pyproject.toml, run by
``make lint``. This test keeps the contract's list complete: a new operator
module must be put on one side.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator" / "keepvip_operator"
IMPURE = {"handlers", "kube", "leader", "main", "reconcile", "resync", "services", "__init__"}
PACKAGES = [
    REPO / "agent" / "keepvip_api",
    REPO / "agent" / "keepvip_agent",
    REPO / "agent" / "keepvip_tools",
    OPERATOR,
]


def pure_contract() -> dict[str, list[str]]:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    (pure,) = [c for c in contracts if c["name"].startswith("The operator's decisions are pure")]
    return pure


def test_every_operator_module_is_classified() -> None:
    contract = pure_contract()
    pure = {m.removeprefix("keepvip_operator.") for m in contract["source_modules"]}
    forbidden_internal = {
        m.removeprefix("keepvip_operator.")
        for m in contract["forbidden_modules"]
        if m.startswith("keepvip_operator.")
    }
    assert forbidden_internal == IMPURE - {"__init__"}
    assert not pure & IMPURE
    assert {p.stem for p in OPERATOR.glob("*.py")} == pure | IMPURE


@pytest.mark.parametrize(
    "path",
    sorted(p for pkg in PACKAGES for p in pkg.rglob("*.py")),
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_every_module_says_why(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    if path.name == "__init__.py" and not path.read_text().strip():
        return
    assert doc and len(doc) > 40, f"{path} has no docstring worth the name"
