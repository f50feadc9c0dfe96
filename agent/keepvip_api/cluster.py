"""Fields of a VirtualIP that only the Kubernetes mode reads: placement, pod and Service tracking.

Standalone agents accept and ignore them, so one file can serve both modes.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import Field, model_validator

from keepvip_api.base import Model
from keepvip_api.errors import field_problems
from keepvip_api.types import int_in

T = TypeVar("T")


class OnFailure(Model):
    """What a failing check does: lower this node's priority, or take it out of the election."""

    action: Literal["demote", "fault"]
    """demote: subtract weight from the priority; fault: leave the election and drop the VIP."""
    weight: int_in(1, 254) | None = None  # type: ignore[valid-type]
    """With demote: subtract this from the node's priority (never below 1). Not allowed with fault."""

    @model_validator(mode="after")
    def _weight_goes_with_demote(self) -> OnFailure:
        if self.action == "demote" and self.weight is None:
            raise field_problems([("weight", "required when action is demote")])
        if self.action == "fault" and self.weight is not None:
            raise field_problems(
                [("weight", "not allowed when action is fault (fault leaves the election)")]
            )
        return self

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.action != 'demote' || has(self.weight)",
                    "message": "weight: required when action is demote",
                },
                {
                    "rule": "self.action != 'fault' || !has(self.weight)",
                    "message": "weight: not allowed when action is fault (fault leaves the election)",
                },
            ]
        }
    }


class LabelSelectorRequirement(Model):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = Field(default=(), max_length=64)


class LabelSelector(Model):
    """A Kubernetes label selector; empty selects every pod of the namespace."""

    match_labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(default=(), max_length=32)


class TrackPods(Model):
    """Gate each node on the readiness of the selected pods running on it."""

    namespace: str | None = Field(default=None, max_length=63)
    """Namespace of the pods; default: the VirtualIP's own namespace."""
    selector: LabelSelector
    """Which pods to track. A node is healthy while at least one of them on it is Ready."""
    on_failure: OnFailure
    """What happens on a node where no selected pod is Ready."""
    role_label: bool = False
    """Label the tracked pods keepvip.io/role=master on the master's node and backup elsewhere."""


class Toleration(Model):
    key: str | None = Field(default=None, max_length=317)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
ServiceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


MAX_SHARED_WITH = 239
"""sharedWith's limit: with serviceRef.name, 240 Services, one per address of a full router
(keepvip_api.model.MAX_ADDRESSES)."""


class ServiceRef(Model):
    """The Service (same namespace) this VirtualIP fronts.

    The operator adds the addresses to the Service (``status.loadBalancer.ingress``
    for type LoadBalancer, ``spec.externalIPs`` otherwise) and removes them when
    the VirtualIP goes; the agents gate each node on the Service's endpoints.
    """

    name: ServiceName
    """The Service's name."""
    shared_with: tuple[ServiceName, ...] = Field(default=(), max_length=MAX_SHARED_WITH)
    """More Services of the namespace on the same addresses (on other ports): a shared address;
    with addressPerService, on one address each."""
    address_per_service: bool = False
    """Each Service gets one address of its own, in order: name gets addresses[0], sharedWith[i]
    addresses[i+1] (a pool's shared VRRP router); there must be as many addresses as Services.
    False: every Service gets every address."""
    track_endpoints: bool = True
    """Gate each node on the Services' Ready endpoints. externalTrafficPolicy Local: a Ready
    endpoint on the node; Cluster: a Ready endpoint anywhere (kube-proxy forwards)."""
    on_failure: OnFailure = OnFailure(action="fault")
    """What happens on a node that cannot serve the Service (default: fault)."""

    @model_validator(mode="after")
    def _names(self) -> ServiceRef:
        everyone = [self.name, *self.shared_with]
        problems = [
            ("sharedWith", f"{n!r} is listed more than once")
            for n in sorted({n for n in everyone if everyone.count(n) > 1})
        ]
        if problems:
            raise field_problems(problems)
        return self

    @property
    def services(self) -> tuple[str, ...]:
        """Every Service on these addresses, the named one first."""
        return (self.name, *self.shared_with)

    def addresses_for(self, service: str, addresses: tuple[T, ...]) -> tuple[T, ...]:
        """The addresses Service ``service`` is published with (of the VirtualIP's ``addresses``)."""
        if service not in self.services:
            return ()
        if not self.address_per_service:
            return addresses
        i = self.services.index(service)
        return addresses[i : i + 1]

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.sharedWith) || (self.sharedWith.all(n, n != self.name && "
                    "self.sharedWith.exists_one(m, m == n)))",
                    "message": "sharedWith: a Service is listed more than once",
                },
            ]
        }
    }
