"""docs/reference.md is the CRD schema's field reference, and it is current.

The page is generated (``python -m keepvip_api.reference``) from the
CRD, which is generated from the model; if the model changes and the page
is not regenerated, this fails with the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keepvip_api.crd import virtualip_crd
from keepvip_api.reference import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_reference_page_is_current() -> None:
    assert PAGE.read_text() == render(), (
        "docs/reference.md is stale: run "
        "`python -m keepvip_api.reference > docs/reference.md` and commit it"
    )


def _paths(node: dict[str, Any], prefix: str) -> list[str]:
    children, suffix = node, ""
    if node.get("type") == "array" and node.get("items", {}).get("type") == "object":
        children, suffix = node["items"], "[]"
    out = []
    for name, child in children.get("properties", {}).items():
        path = f"{prefix}{suffix}.{name}" if prefix else name
        out += [path, *_paths(child, path)]
    return out


def test_every_schema_field_has_a_row() -> None:
    root = virtualip_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    page = render()
    for section in ("spec", "status"):
        for path in _paths(root[section], ""):
            assert f"| `{path}` |" in page, path
