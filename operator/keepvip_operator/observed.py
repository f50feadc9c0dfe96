"""One VirtualIP as the operator last saw it: the validated model plus what the API adds.

This is the only place in the reconciler that reads a raw VirtualIP object.
The spec goes through the API's :func:`~keepvip_api.from_api_object` (the
one reading of an object, as the agent reads it); metadata and status fields
the model does not cover (uid, generation, creation time, the operator's and
agents' status) are copied out here, and everything downstream takes
:class:`Observed`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keepvip_api import SpecError, VirtualIP, from_api_object
from keepvip_api.names import MOVE_ANNOTATION
from keepvip_api.times import EPOCH, parse_time
from keepvip_operator.lbmodel import is_managed
from keepvip_operator.names import Target


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
    move_to: str | None = None
    """The node a manual move asks for (annotation ``keepvip.io/move-to``), if any."""
    managed: bool = False
    """Made by this operator for LoadBalancer Services (labelled so): judged against the pools
    used by Services (:mod:`grants`)."""

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
    vip: VirtualIP | None = None
    problems: list[str] = []
    try:
        vip = from_api_object(body)
    except SpecError as exc:
        problems = exc.problems
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
        move_to=str((meta.get("annotations") or {}).get(MOVE_ANNOTATION) or "") or None,
        managed=is_managed(meta.get("labels") or {}),
    )
