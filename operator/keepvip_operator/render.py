"""The operator settings in, the one node agent DaemonSet out (pure).

One agent per node carries every VirtualIP whose placement selects that
node: it reads VirtualIPs live from the API and judges placement against
its own Node, so nothing about any VirtualIP shapes the pod template. Only
the operator settings do, and changing one is the one way to restart the
agents (one node at a time, ``maxUnavailable: 1``).

The agents' own tolerations and nodeSelector are an installation setting:
tolerant of every taint by default, like node networking agents, so a
VirtualIP's tolerations (judged by the agent) are the ones that matter.
"""

from __future__ import annotations

from typing import Any

from keepvip_operator import names
from keepvip_operator.settings import OperatorSettings

CONTAINER = "agent"
READINESS_PATH = "/readyz"
LIVENESS_PATH = "/healthz"


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def agent_args(settings: OperatorSettings) -> list[str]:
    """The command line the agent's Kubernetes mode implements (keepvip_agent.cli)."""
    args = [
        "--kubernetes",
        "--node",
        "$(NODE_NAME)",
        "--agent-namespace",
        "$(POD_NAMESPACE)",
        "--metrics-port",
        str(settings.agent_metrics_port),
    ]
    if settings.watch_namespaces:
        args += ["--watch-namespaces", ",".join(settings.watch_namespaces)]
    # The agents obey the same trust as the operator's judgement (defence in depth).
    args += ["--address-grants", "on" if settings.address_grants else "off"]
    if settings.trusted_namespaces:
        args += ["--trusted-namespaces", ",".join(settings.trusted_namespaces)]
    if settings.trusted_namespace_label:
        args += ["--trusted-namespace-label", "=".join(settings.trusted_namespace_label)]
    return [*args, "--log-level", settings.agent_log_level]


def agent_container(settings: OperatorSettings) -> dict[str, Any]:
    port = settings.agent_metrics_port
    probe = {"port": port, "scheme": "HTTP"}
    return {
        "name": CONTAINER,
        "image": settings.agent_image,
        "imagePullPolicy": settings.agent_image_pull_policy,
        "command": ["keepvip-agent"],
        "args": agent_args(settings),
        "env": [
            _field_env("NODE_NAME", "spec.nodeName"),
            _field_env("NODE_IP", "status.hostIP"),
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            # glibc gives every thread that allocates its own malloc arena; the
            # watch threads decode large JSON lists, and their arenas kept
            # megabytes each. Two arenas bound that (issue 12: RSS per node).
            {"name": "MALLOC_ARENA_MAX", "value": "2"},
        ],
        # Declared so the scheduler sees the host port (hostNetwork: hostPort == containerPort).
        "ports": [{"name": "metrics", "containerPort": port, "hostPort": port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, **probe},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # Lenient: killing an agent moves its VIPs, so only a hung agent should be restarted.
        "livenessProbe": {
            "httpGet": {"path": LIVENESS_PATH, **probe},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": settings.agent_resources.render(),
        "securityContext": {
            # Root for the raw VRRP socket and netlink: the capabilities must be in the
            # effective set, which a non-root process without file capabilities lacks.
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - a private emptyDir
    }


def render_daemonset(settings: OperatorSettings, namespace: str) -> dict[str, Any]:
    """The node agent DaemonSet in the agents' namespace (not owned: it serves every VirtualIP)."""
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.NODE_AGENT_NAME,
        "automountServiceAccountToken": True,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [agent_container(settings)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
        "tolerations": [dict(t) for t in settings.agent_tolerations],
    }
    if settings.priority_class_name:
        pod_spec["priorityClassName"] = settings.priority_class_name
    if settings.agent_node_selector:
        pod_spec["nodeSelector"] = dict(settings.agent_node_selector)
    if settings.agent_image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in settings.agent_image_pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": names.NODE_AGENT_NAME,
            "namespace": namespace,
            "labels": dict(names.NODE_AGENT_SELECTOR),
        },
        "spec": {
            "selector": {"matchLabels": dict(names.NODE_AGENT_SELECTOR)},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": settings.agent_max_unavailable, "maxSurge": 0},
            },
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": {**settings.extra_pod_labels, **names.NODE_AGENT_SELECTOR},
                    "annotations": {
                        "kubectl.kubernetes.io/default-container": CONTAINER,
                        **settings.extra_pod_annotations,
                    },
                },
                "spec": pod_spec,
            },
        },
    }
