"""What the operator is told at start-up: the agent's image and pod shape, and what to watch.

Parsed once, at the process edge (:func:`parse`, from the command line over
``KEEPVIP_*`` environment variables); everything inside takes the frozen
:class:`OperatorSettings`. Rendering reads only these settings and the
VirtualIP model, so changing a setting is the one way besides placement to
change the agents' pod template (and so to restart them).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from keepvip_api.acceptance import Trust, parse_label
from keepvip_api.names import NODE_AGENT_METRICS_PORT
from keepvip_api.status import STALE_AFTER
from keepvip_operator import __version__

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
LogLevel = Literal["debug", "info", "warning", "error"]
ENV_PREFIX = "KEEPVIP_"


@dataclass(frozen=True)
class AgentResources:
    """Requests and limits of the agent container.

    No CPU limit by default: CFS throttling stalls the advertisement timer of
    a busy node, and a late advertisement is a spurious failover. The memory
    limit comes from ``benchmarks/cluster_scale.py``: a node agent carrying 250
    VirtualIPs and 13 shared routers peaked at 90 MiB (263 instances of one
    family, about 0.17 MiB each above 46 MiB of code); 192Mi leaves room for the
    other family's 255 VRIDs, about 135 MiB in all (an agent killed for memory
    fails over every VirtualIP of its node).
    """

    cpu_request: str | None = "10m"
    memory_request: str | None = "32Mi"
    memory_limit: str | None = "192Mi"
    cpu_limit: str | None = None

    def render(self) -> dict[str, dict[str, str]]:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {"cpu": self.cpu_limit, "memory": self.memory_limit}
        out = {
            "requests": {k: v for k, v in requests.items() if v},
            "limits": {k: v for k, v in limits.items() if v},
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class OperatorSettings:
    agent_image: str = f"ghcr.io/keepvip/keepvip:{__version__}"
    """Image of the agent container; it must provide the ``keepvip-agent`` command."""
    agent_image_pull_policy: PullPolicy = "IfNotPresent"
    """imagePullPolicy of the agent container."""
    agent_namespace: str | None = None
    """Namespace of the node agent DaemonSet, its ServiceAccount and Leases; default
    ``$POD_NAMESPACE``, else the in-cluster service account's namespace (the operator's own)."""
    agent_metrics_port: int = NODE_AGENT_METRICS_PORT
    """The node agent's one port (/metrics, /healthz, /readyz, /status) in the host
    network: it must be free on every node that runs an agent."""
    agent_tolerations: tuple[Mapping[str, Any], ...] = ({"operator": "Exists"},)
    """Tolerations of the agent pods (JSON list on the command line). Default: every taint,
    like node networking agents; each VirtualIP's own tolerations are judged by the agent."""
    agent_node_selector: Mapping[str, str] = field(default_factory=dict)
    """nodeSelector of the agent pods: the nodes that may carry VirtualIPs at all."""
    agent_image_pull_secrets: tuple[str, ...] = ()
    """Names of Secrets (agents' namespace) the agent pods pull their image with."""
    agent_max_unavailable: int | str = 1
    """The DaemonSet's rollingUpdate.maxUnavailable (a number or a percentage)."""
    agent_log_level: LogLevel = "info"
    """``--log-level`` of the agents."""
    priority_class_name: str | None = "system-node-critical"
    """priorityClassName of the agent pods, so they are not evicted before the workloads they
    front; empty for none."""
    agent_resources: AgentResources = field(default_factory=AgentResources)
    """Requests and limits of the agent container (no CPU limit by default)."""
    termination_grace_period_seconds: int = 30
    """How long an agent gets to hand over (priority-0 advertisement, Lease release) on
    deletion; well above the few advertisement intervals a clean handover needs."""
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)
    """Added to the agent pods' labels (the tests add the pod launcher's label this way).
    They never enter the DaemonSet's selector, which is immutable."""
    extra_pod_annotations: Mapping[str, str] = field(default_factory=dict)
    """Added to the agent pods' annotations."""
    watch_namespaces: tuple[str, ...] = ()
    """Namespaces whose VirtualIPs this operator reconciles; empty means the whole cluster.
    VRID allocation and conflict detection see only these namespaces."""
    default_load_balancer: bool = False
    """Also serve LoadBalancer Services that name no ``loadBalancerClass`` (as the cluster's
    default load balancer), not only those of class ``keepvip.io/vrrp``. Leave off when another
    load balancer (a cloud's, MetalLB) serves the class-less ones."""
    address_grants: bool = True
    """A VirtualIP's addresses must lie in a VirtualIPPool granted to its namespace (``usedBy``
    VirtualIPs) and be no Node's own address; the agents run only what the operator accepted.
    Off: any address (a single-tenant cluster)."""
    trusted_namespaces: tuple[str, ...] = ()
    """Namespaces whose VirtualIPs may run commands on the nodes (``exec`` checks, notify hooks)
    and aim TCP and HTTP checks at the node itself (loopback, link-local, node addresses)."""
    trusted_namespace_label: tuple[str, str] | None = None
    """``key=value``: namespaces with this label are trusted the same way."""
    kubeconfig: str | None = None
    """A kubeconfig file; default: in-cluster service account, else ``$KUBECONFIG``."""
    peering_name: str | None = None
    """kopf peering object (KopfPeering CRD) for running several replicas with one active;
    None runs standalone (one replica)."""
    resync_interval: float = 5.0
    """How often every VirtualIP's status is re-judged without an event (stale heartbeats,
    conflicts released by another object)."""
    heartbeat_timeout: float = STALE_AFTER
    """A node whose agent has not renewed its node Lease for this long is dead: its entries
    are ignored and pruned (keepvip_api.status.node_alive, the rule ``keepvip status``
    flags by)."""
    liveness_endpoint: str | None = None
    """kopf's liveness endpoint, e.g. ``http://0.0.0.0:8080/healthz``; None for none."""
    log_level: LogLevel = "info"
    """The operator's own log level."""
    leader_election: bool = False
    """Run kopf only while holding a Lease, so that several replicas are safe (one reconciles,
    the others wait as standby). On the command line the default is on inside a cluster
    (``KUBERNETES_SERVICE_HOST`` set) and off elsewhere; embedded (``main.run``), off."""
    leader_election_namespace: str | None = None
    """Namespace of the Lease; default ``$POD_NAMESPACE``, else the in-cluster service
    account's namespace."""
    leader_election_lease_name: str = "keepvip-operator"
    """Name of the Lease (coordination.k8s.io/v1)."""
    leader_election_lease_duration: int = 15
    """Seconds a standby waits, after it last saw the Lease change, before taking it over."""
    leader_election_renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew before it stops and exits (non-zero)."""
    leader_election_retry_period: float = 2.0
    """Seconds between attempts to acquire or renew."""
    leader_election_identity: str | None = None
    """holderIdentity in the Lease; default ``$POD_NAME``, else ``<hostname>_<pid>``."""

    @property
    def trust(self) -> Trust:
        """What tenants may make the nodes do (keepvip_api.acceptance), for the judgement."""
        return Trust(
            address_grants=self.address_grants,
            trusted_namespaces=frozenset(self.trusted_namespaces),
            trusted_label=self.trusted_namespace_label,
        )


# -- parsing, at the process edge only ------------------------------------------------------


def _labels(text: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"{part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _names(text: str) -> tuple[str, ...]:
    return tuple(filter(None, (p.strip() for p in text.split(","))))


def _tolerations(text: str) -> tuple[dict[str, Any], ...]:
    value = json.loads(text) if text.strip() else []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("not a JSON list of tolerations")
    return tuple(value)


def _count_or_percent(text: str) -> int | str:
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text.endswith("%") and text[:-1].isdigit():
        return text
    raise ValueError(f"{text!r} is neither a number nor a percentage")


def _optional(text: str) -> str | None:
    return text or None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not true or false")


_PARSERS: dict[str, Callable[[str], object]] = {
    "agent_metrics_port": int,
    "agent_namespace": _optional,
    "agent_tolerations": _tolerations,
    "agent_node_selector": _labels,
    "agent_image_pull_secrets": _names,
    "agent_max_unavailable": _count_or_percent,
    "termination_grace_period_seconds": int,
    "resync_interval": float,
    "heartbeat_timeout": float,
    "extra_pod_labels": _labels,
    "extra_pod_annotations": _labels,
    "watch_namespaces": _names,
    "priority_class_name": _optional,
    "kubeconfig": _optional,
    "peering_name": _optional,
    "liveness_endpoint": _optional,
    "default_load_balancer": _bool,
    "address_grants": _bool,
    "trusted_namespaces": _names,
    "trusted_namespace_label": parse_label,
    "leader_election": _bool,
    "leader_election_namespace": _optional,
    "leader_election_lease_duration": int,
    "leader_election_renew_deadline": float,
    "leader_election_retry_period": float,
    "leader_election_identity": _optional,
}
# The in-cluster service account's namespace (the kubelet mounts it in every pod).
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_CHOICES = {
    "agent_image_pull_policy": get_args(PullPolicy),
    "agent_log_level": get_args(LogLevel),
    "log_level": get_args(LogLevel),
}
_RESOURCES = {
    "agent_cpu_request": "cpu_request",
    "agent_memory_request": "memory_request",
    "agent_memory_limit": "memory_limit",
    "agent_cpu_limit": "cpu_limit",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="keepvip-operator",
        description="Reconciles VirtualIPs into one node agent DaemonSet and aggregates their status.",
        epilog=f"Every option can also be set as an environment variable: {ENV_PREFIX}<OPTION> "
        "(upper case, _ for -). Lists are comma separated; labels are k=v,k2=v2.",
    )
    for f in fields(OperatorSettings):
        if f.name == "agent_resources":
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, choices=_CHOICES.get(f.name))
    for flag in _RESOURCES:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag)
    p.add_argument("--version", action="version", version=__version__)
    return p


def parse(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """Settings from the command line, then ``KEEPVIP_*`` variables, then the defaults.

    Raises ``SystemExit`` (argparse's usage error) on a bad value. ``agent_namespace``
    may stay unknown here (a laptop, a test); :func:`keepvip_operator.main.main` refuses
    to start without it.
    """
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for name, value in args.items():
        from_env = env.get(ENV_PREFIX + name.upper())
        chosen = value if value is not None else from_env
        if chosen is not None:
            raw[name] = chosen
    values: dict[str, object] = {}
    resources: dict[str, str | None] = {}
    for name, text in raw.items():
        try:
            if name in _RESOURCES:
                resources[_RESOURCES[name]] = text or None
            elif name in _CHOICES and text not in _CHOICES[name]:
                raise ValueError(f"{text!r} is not one of {', '.join(_CHOICES[name])}")
            else:
                values[name] = _PARSERS.get(name, str)(text)
        except ValueError as exc:
            parser.error(f"{name.replace('_', '-')}: {exc}")
    if resources:
        values["agent_resources"] = AgentResources(**resources)
    values.update(_leader_election_defaults(values, env))
    settings = OperatorSettings(**values)  # type: ignore[arg-type]
    if not 1 <= settings.agent_metrics_port <= 65535:
        parser.error("agent-metrics-port: must be in 1..65535")
    if settings.leader_election:
        if not settings.leader_election_namespace:
            parser.error(
                "leader-election-namespace: unknown (set it, or POD_NAMESPACE from the downward API)"
            )
        s = settings
        retry, renew = s.leader_election_retry_period, s.leader_election_renew_deadline
        if not 0 < retry < renew < s.leader_election_lease_duration:
            parser.error("leader election: need 0 < retry period < renew deadline < lease duration")
    return settings


def _leader_election_defaults(
    values: Mapping[str, object], env: Mapping[str, str]
) -> dict[str, object]:
    """What the pod says about itself, for settings not given: in a cluster, and which pod."""
    in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST"))
    out: dict[str, object] = {}
    if "leader_election" not in values:
        out["leader_election"] = in_cluster
    if values.get("leader_election_identity") is None and env.get("POD_NAME"):
        out["leader_election_identity"] = env["POD_NAME"]
    namespace = env.get("POD_NAMESPACE")
    if not namespace and in_cluster and os.path.exists(SERVICE_ACCOUNT_NAMESPACE):
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            namespace = f.read().strip()
    for name in ("leader_election_namespace", "agent_namespace"):
        if values.get(name) is None and namespace:
            out[name] = namespace
    return out
