"""Election settings that a VirtualIP and a VirtualIPPool share: each one's type, bounds and default.

A pool hands these to the VirtualIPs made from it (the operator copies the
pool's values into their spec, :data:`POOL_FIELDS`), so both kinds must
accept the same values and mean the same default. Each is defined here once,
as an ``Annotated`` type that carries its default; the two models declare
the fields with these types and keep their own docstrings, because the CRD
descriptions are written per kind and the CRD lists the properties in each
model's own field order (a shared base class would put these fields first).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keepvip_api.base import BY_NAME, Model
from keepvip_api.cluster import Toleration
from keepvip_api.types import Duration, duration_in, int_in

MAX_NODES = 256


class NodePriority(Model):
    name: str = Field(min_length=1, max_length=253)
    priority: int_in(1, 255)  # type: ignore[valid-type]
    """255 makes this node the address owner: master at once on start-up (RFC 9568 5.2.4)."""


Interface = Annotated[str | None, Field(default=None, min_length=1, max_length=15)]
NodeSelector = Annotated[dict[str, str], Field(default_factory=dict, max_length=32)]
Tolerations = Annotated[tuple[Toleration, ...], Field(default=(), max_length=32)]
AdvertInterval = Annotated[Duration, Field(default=1.0)]
Priority = Annotated[int_in(1, 254), Field(default=100)]  # type: ignore[valid-type]
Nodes = Annotated[
    tuple[NodePriority, ...], Field(default=(), max_length=MAX_NODES, json_schema_extra=BY_NAME)
]
Preempt = Annotated[bool, Field(default=False)]
PreemptDelay = Annotated[duration_in(0, 3600), Field(default=0.0)]  # type: ignore[valid-type]
Fencing = Annotated[Literal["none", "strict"], Field(default="none")]
OnCordon = Annotated[
    Literal["yield", "ignore"],
    # Added in 0.2: defaulted by keepvip, not the API server (see keepvip_api.crd.AGENT_DEFAULT).
    Field(default="yield", json_schema_extra={"x-keepvip-agent-default": True}),
]

POOL_FIELDS = (
    "interface",
    "nodeSelector",
    "tolerations",
    "advertInterval",
    "priority",
    "nodes",
    "preempt",
    "preemptDelay",
    "fencing",
    "onCordon",
)
"""The spec fields (wire names) that a pool sets on the VirtualIPs made from it: those above."""
