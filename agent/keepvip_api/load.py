"""Read VirtualIP documents from YAML text or API objects into the frozen model.

Documents go through JSON before validation so a YAML file is judged exactly
as the API server judges the same object (no YAML-only types, and strict
types: ``virtualRouterID: "51"`` is an error in both places).

An object read from the API enters through :func:`from_api_object` (a
VirtualIPPool through :func:`pool_from_api_object`), on every side: the agent,
the operator and the tools judge one object by one reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keepvip_api.errors import SpecError, problems_of
from keepvip_api.model import VirtualIP
from keepvip_api.pool import VirtualIPPool, parse_pool


def parse_virtualip(
    obj: Mapping[str, Any], *, prefix: str = "", standalone: bool = False
) -> VirtualIP:
    """Validate one document (a mapping); raise :class:`SpecError` listing every problem."""
    spec = obj.get("spec")
    missing_vrid = standalone and isinstance(spec, Mapping) and spec.get("virtualRouterID") is None
    required = [f"{prefix}spec.virtualRouterID: required in standalone mode (1..255)"]
    try:
        vip = VirtualIP.model_validate_json(json.dumps(obj, default=str))
    except ValidationError as exc:
        # Report the standalone-only rule together with the model's findings,
        # so the user sees every problem in one run.
        raise SpecError(problems_of(exc, prefix) + (required if missing_vrid else [])) from None
    if missing_vrid:
        raise SpecError(required)
    return vip


def from_api_object(obj: Mapping[str, Any], *, allocated_vrid: bool = False) -> VirtualIP:
    """A VirtualIP object as the API returns it, as the model; raise :class:`SpecError`.

    Only apiVersion, kind, metadata.name and .namespace and spec are the
    model's; the rest of metadata (uid, labels, managedFields) and the status
    are the reader's to take. ``allocated_vrid``: a spec without
    virtualRouterID takes status.virtualRouterID, the VRID the operator
    allocated (what an agent runs with).
    """
    spec = obj.get("spec")
    if allocated_vrid:
        spec = dict(spec or {})
        status = obj.get("status") or {}
        if spec.get("virtualRouterID") is None and status.get("virtualRouterID") is not None:
            spec["virtualRouterID"] = status["virtualRouterID"]
    meta = obj.get("metadata") or {}
    doc = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": spec,
    }
    return parse_virtualip(doc)


def pool_from_api_object(obj: Mapping[str, Any]) -> VirtualIPPool:
    """A VirtualIPPool object as the API returns it, as the model (status left out)."""
    return parse_pool({k: obj.get(k) for k in ("apiVersion", "kind", "metadata", "spec")})


def load_documents(
    text: str, *, source: str = "<input>", standalone: bool = True
) -> list[VirtualIP]:
    """Every VirtualIP in a multi-document YAML text; all problems of all documents at once."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise SpecError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not docs:
        raise SpecError([f"{source}: no VirtualIP document found"])
    problems: list[str] = []
    vips: list[VirtualIP] = []
    for index, doc in enumerate(docs):
        # metadata may be anything in a bad document; its own problem is reported below.
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        label = f"{source}" if len(docs) == 1 else f"{source}[{index}]"
        prefix = f"{label} ({name}): " if name and len(docs) > 1 else f"{label}: "
        if not isinstance(doc, dict):
            problems.append(f"{prefix}a document must be a mapping")
            continue
        try:
            vips.append(parse_virtualip(doc, prefix=prefix, standalone=standalone))
        except SpecError as exc:
            problems += exc.problems
    keys = [v.key for v in vips]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"{source}: metadata.name {key!r} is used by more than one document")
    if standalone:
        by_vrid: dict[tuple[str | None, int | None, int], str] = {}
        for v in vips:
            k = (v.spec.interface, v.spec.virtual_router_id, v.spec.addresses[0].version)
            if k in by_vrid:
                problems.append(
                    f"{source}: {v.key}: spec.virtualRouterID: {k[1]} is already used by "
                    f"{by_vrid[k]} on the same interface and address family"
                )
            by_vrid[k] = v.key
    if problems:
        raise SpecError(problems)
    return vips


def load_file(path: str | Path) -> list[VirtualIP]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError([f"{p}: cannot read: {exc.strerror}"]) from None
    return load_documents(text, source=str(p))
