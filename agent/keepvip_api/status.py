"""The VirtualIP status: written by the agents (their own ``nodes[]`` entry) and the operator.

``nodes`` is a list map keyed by node name, so each agent applies only its own
entry with server-side apply under its own field manager, and the operator
owns ``master``, ``conditions``, ``virtualRouterID`` and ``observedGeneration``
(the managers are named in :mod:`keepvip_api.names`).

A node agent writes its entries on change only and proves it lives by its
node Lease, renewed every few seconds: a Lease not renewed within
:data:`STALE_AFTER` belongs to a dead or cut-off agent. :func:`node_alive` is
that rule, for the operator and for ``keepvip status`` alike (which falls back
to an entry's own write time, :func:`is_stale`, where it may not read Leases).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError

from keepvip_api.base import BY_NAME, BY_TYPE, Model
from keepvip_api.times import parse_time

HEARTBEAT = 10.0
"""Seconds between an agent's writes of its entry when nothing changes."""
STALE_AFTER = 3 * HEARTBEAT
"""Seconds after which an entry's heartbeat is stale: three missed heartbeats."""


def node_alive(renew_time: datetime | None, now: datetime, after: float = STALE_AFTER) -> bool:
    """Whether a node agent is alive: its node Lease was renewed within ``after`` seconds of ``now``.

    The node agent writes a ``status.nodes[]`` entry on change only, so the entry's
    ``heartbeatTime`` says when it was written, not whether the agent lives: that is its node
    Lease (``keepvip_api.names.node_lease_name``, renewed every ``NODE_RENEW`` = 2 s). The bound
    stays :data:`STALE_AFTER` (30 s, fifteen renewals): an API server slow for a few seconds must
    not make every node's entries stale at once. A Lease never renewed (None) is not alive.
    """
    return renew_time is not None and not is_stale(renew_time, now, after)


def is_stale(heartbeat: datetime, now: datetime, after: float = STALE_AFTER) -> bool:
    """A heartbeat more than ``after`` seconds before ``now`` (exactly ``after`` still counts)."""
    return now - heartbeat > timedelta(seconds=after)


class NodeStatus(Model):
    """One node's view, written by the agent on that node."""

    name: str
    """The node's name."""
    state: Literal["Initialize", "Backup", "Master", "Fault"]
    """The node's VRRP state."""
    configured_priority: int | None = None
    effective_priority: int | None = None
    """Priority after checks and pod readiness: what the node advertises."""
    address: str | None = None
    """The node's VRRP source address."""
    last_transition_time: str | None = None
    reason: str | None = None
    """Why the node entered its state."""
    faults: tuple[str, ...] = ()
    """What keeps the node out of the election, in state Fault."""
    demotions: tuple[str, ...] | None = None
    """Why effectivePriority is below configuredPriority: each failing demote source (a check,
    pod readiness, a cordon or a move) with its detail."""
    heartbeat_time: str | None = None
    """When the agent last wrote this entry; a stale heartbeat means a dead or cut-off agent."""

    @property
    def heartbeat(self) -> datetime | None:
        """``heartbeatTime`` as a time; None when absent or unreadable."""
        return parse_time(self.heartbeat_time)

    @property
    def last_transition(self) -> datetime | None:
        return parse_time(self.last_transition_time)

    def to_api(self) -> dict[str, Any]:
        """The entry as the agent applies it: API field names, absent fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_api(cls, raw: Any) -> NodeStatus | None:
        """One ``status.nodes[]`` item as read from the API; None if it is not an agent's entry.

        Through JSON, as :func:`~keepvip_api.load.parse_virtualip` reads a spec: the
        strict model takes JSON arrays for tuples. The CRD schema makes None unreachable
        for objects read from the API server.
        """
        try:
            return cls.model_validate_json(json.dumps(raw))
        except (ValidationError, TypeError, ValueError):
            return None


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = None


class VirtualIPStatus(Model):
    observed_generation: int | None = None
    accepted_generation: int | None = None
    """The generation the operator last accepted (condition Accepted): with address grants on,
    the node agents run a VirtualIP only at this generation (keepvip_api.grants)."""
    virtual_router_id: int | None = Field(default=None, alias="virtualRouterID")
    """The VRID in use: the spec's, or the one the operator allocated."""
    master: str | None = None
    """The node that holds the VIP, as its agent reports."""
    nodes: tuple[NodeStatus, ...] = Field(default=(), json_schema_extra=BY_NAME)
    conditions: tuple[Condition, ...] = Field(default=(), json_schema_extra=BY_TYPE)
    """Ready (exactly one master), Degraded (no backup left), SplitBrain, Conflict."""
