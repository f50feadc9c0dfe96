"""One VirtualIP as the operator last saw it: the validated model plus what the API adds.

This is the only place that reads a raw VirtualIP object. The spec goes
through the agent's :func:`parse_virtualip` (the one reading of a spec);
metadata and status fields the model does not cover (uid, generation,
creation time, the operator's and agents' status) are copied out here,
and everything downstream takes :class:`Observed`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keepvip_api import SpecError, VirtualIP, parse_virtualip
from keepvip_operator.names import Target, name_problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: Any) -> datetime | None:
    """RFC 3339 (the API's and the agents' timestamps) to an aware datetime; None if not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(at: datetime) -> str:
    """The API's own form: whole seconds, UTC, Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Observed:
    target: Target
    generation: int
    created: datetime
    deleting: bool
    vip: VirtualIP | None
    """The validated model; None when the spec is invalid (see ``problems``)."""
    problems: tuple[str, ...]
    raw_spec_vrid: int | None
    """spec.virtualRouterID even of an invalid spec, so allocation never hands it out."""
    status: Mapping[str, Any]
    """The object's status as read (operator and agent fields); treat as read-only."""

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def status_vrid(self) -> int | None:
        value = self.status.get("virtualRouterID")
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def observe(body: Mapping[str, Any]) -> Observed:
    """Read a VirtualIP object (a mapping as the API returns it)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec")
    status = body.get("status") or {}
    target = Target(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
    )
    doc = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "spec": spec,
    }
    vip: VirtualIP | None = None
    problems: list[str] = []
    try:
        vip = parse_virtualip(doc)
    except SpecError as exc:
        problems = exc.problems
    too_long = name_problem(target.name)
    if too_long:
        vip, problems = None, [*problems, too_long]
    raw_vrid = spec.get("virtualRouterID") if isinstance(spec, Mapping) else None
    return Observed(
        target=target,
        generation=int(meta.get("generation") or 0),
        created=parse_time(meta.get("creationTimestamp")) or EPOCH,
        deleting=bool(meta.get("deletionTimestamp")),
        vip=vip,
        problems=tuple(problems),
        raw_spec_vrid=raw_vrid
        if isinstance(raw_vrid, int) and not isinstance(raw_vrid, bool)
        else None,
        # A deep, plain copy: kopf's bodies are live views that change under us.
        status=json.loads(json.dumps(dict(status), default=str)),
    )
