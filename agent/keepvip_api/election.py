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

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.config import JsonDict

from keepvip_api.base import BY_NAME, Model
from keepvip_api.cluster import Toleration
from keepvip_api.errors import field_problems
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

_AGENT_DEFAULT: JsonDict = {"x-keepvip-agent-default": True}
"""Fields added after 0.1 get no API-server default (see keepvip_api.crd.AGENT_DEFAULT)."""
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _absolute(value: str) -> str:
    if not value.startswith("/") or len(value) < 2:
        raise ValueError(f"{value!r} is not an absolute file path")
    return value


AbsolutePath = Annotated[
    str,
    AfterValidator(_absolute),
    WithJsonSchema({"type": "string", "minLength": 2, "maxLength": 4096, "pattern": "^/"}),
    Field(max_length=4096),
]


class AuthHMAC(Model):
    """HMAC-SHA256 authentication of VRRP advertisements: keepalived 2.4's auth_hmac
    (draft-cassen-vrrp-auth-hmac), byte-compatible. Adverts without a valid trailer, replayed,
    stale or signed with an unknown key are dropped and counted. Every node of the router needs
    the same keys: name exactly one of secretName (Kubernetes) and keyFile (standalone)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secretName) != has(self.keyFile)",
                    "message": "name exactly one of secretName (Kubernetes) and keyFile "
                    "(standalone)",
                }
            ]
        }
    )

    secret_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN
    )
    """Kubernetes: a Secret in the agents' namespace whose data entry ``keys`` holds the key
    lines (keyFile's format). The agents may read only the Secrets that VirtualIPs and pools
    name; a change is picked up without leaving the election (key rotation)."""
    key_file: AbsolutePath | None = None
    """Standalone: a file of keepalived auth_hmac key lines, ``key ID hex:HEX`` (or ``key ID
    TEXT``; 32 to 64 bytes, ids 1..255) and ``active_key ID`` (the key that signs; every listed
    key is accepted). Re-read when it changes. Keep it mode 0600."""
    mode: Literal["enforce", "permissive", "receiveOnly"] = Field(
        default="enforce", json_schema_extra=_AGENT_DEFAULT
    )
    """enforce (default): adverts need a valid trailer. For a roll-out, first receiveOnly on
    every node (verify trailers, send none), then permissive (sign, still accept unsigned
    adverts), then enforce."""
    anti_replay: Literal["time", "monotonic"] = Field(
        default="time", json_schema_extra=_AGENT_DEFAULT
    )
    """time (default): refuse adverts stamped more than timeWindow from this node's clock (the
    nodes' clocks must agree, NTP) and any whose sequence does not grow; monotonic: only the
    growing sequence, no shared clock needed."""
    time_window: duration_in(1, 300) | None = None  # type: ignore[valid-type]
    """time mode: how far a sender's clock may be from ours. Default max(3 x advertInterval,
    5s)."""
    key_grace: duration_in(0, 3600) = Field(  # type: ignore[valid-type]
        default=60.0, json_schema_extra=_AGENT_DEFAULT
    )
    """How long a key that left the key set (or changed) is still accepted, so agents that
    read a rotated key set seconds apart never refuse each other (default 60s)."""

    @model_validator(mode="after")
    def _one_source(self) -> AuthHMAC:
        if (self.secret_name is None) == (self.key_file is None):
            raise field_problems(
                [("", "name exactly one of secretName (Kubernetes) and keyFile (standalone)")]
            )
        return self


AuthHMACField = Annotated[AuthHMAC | None, Field(default=None, alias="authHMAC")]


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
    "authHMAC",
)
"""The spec fields (wire names) that a pool sets on the VirtualIPs made from it: those above."""
