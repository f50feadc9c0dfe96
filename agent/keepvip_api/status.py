"""The VirtualIP status: written by the agents (their own ``nodes[]`` entry) and the operator.

``nodes`` is a list map keyed by node name, so each agent applies only its own
entry with server-side apply under its own field manager, and the operator
owns ``master``, ``conditions``, ``virtualRouterID`` and ``observedGeneration``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keepvip_api.base import Model

BY_NAME = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
BY_TYPE = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


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
    heartbeat_time: str | None = None
    """When the agent last wrote this entry; a stale heartbeat means a dead or cut-off agent."""


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = None


class VirtualIPStatus(Model):
    observed_generation: int | None = None
    virtual_router_id: int | None = Field(default=None, alias="virtualRouterID")
    """The VRID in use: the spec's, or the one the operator allocated."""
    master: str | None = None
    """The node that holds the VIP, as its agent reports."""
    nodes: tuple[NodeStatus, ...] = Field(default=(), json_schema_extra=BY_NAME)  # type: ignore[arg-type]
    conditions: tuple[Condition, ...] = Field(default=(), json_schema_extra=BY_TYPE)  # type: ignore[arg-type]
    """Ready (exactly one master), Degraded (no backup left), SplitBrain, Conflict."""
