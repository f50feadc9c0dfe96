"""A VirtualIP and the operator settings in, the agents' objects out (pure).

The design choice that is not obvious: the DaemonSet's pod template does not
embed the VirtualIP's spec. Agents read their VirtualIP live from the API
(``--virtualip NAMESPACE/NAME``) and reconfigure in place, so a spec change
(priorities, interval, checks, addresses) reaches them without a pod restart
and moves the VIP at most once. Only placement (nodeSelector, tolerations),
the operator settings and the allocated metrics port shape the template.

Every object is owned by the VirtualIP (controller, blockOwnerDeletion), so
deleting it garbage-collects them; the agents' grace period lets them hand
over on the way out.
"""

from __future__ import annotations

from typing import Any

from keepvip_api.model import VirtualIP
from keepvip_operator import names
from keepvip_operator.meta import metadata
from keepvip_operator.names import Target
from keepvip_operator.rbac import render_rbac
from keepvip_operator.settings import OperatorSettings

CONTAINER = "agent"
READINESS_PATH = "/readyz"
LIVENESS_PATH = "/healthz"


def render_service_account(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(t, names.child_name(t.name)),
    }


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def agent_container(t: Target, settings: OperatorSettings, port: int) -> dict[str, Any]:
    """The container contract the agent's Kubernetes mode implements (keepvip_agent.cli)."""
    probe = {"port": port, "scheme": "HTTP"}
    return {
        "name": CONTAINER,
        "image": settings.agent_image,
        "imagePullPolicy": settings.agent_image_pull_policy,
        "command": ["keepvip-agent"],
        "args": [
            "--virtualip",
            f"$(POD_NAMESPACE)/{t.name}",
            "--node",
            "$(NODE_NAME)",
            "--metrics-port",
            str(port),
            "--log-level",
            settings.agent_log_level,
        ],
        "env": [
            _field_env("NODE_NAME", "spec.nodeName"),
            _field_env("NODE_IP", "status.hostIP"),
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        # Declared so the scheduler sees the host port (hostNetwork: hostPort == containerPort).
        "ports": [{"name": "metrics", "containerPort": port, "hostPort": port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": READINESS_PATH, **probe},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # Lenient: killing an agent moves the VIP, so only a hung agent should be restarted.
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


def render_daemonset(
    vip: VirtualIP, t: Target, settings: OperatorSettings, port: int
) -> dict[str, Any]:
    spec = vip.spec
    pod_spec: dict[str, Any] = {
        "serviceAccountName": names.child_name(t.name),
        "automountServiceAccountToken": True,
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [agent_container(t, settings, port)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
    }
    if settings.priority_class_name:
        pod_spec["priorityClassName"] = settings.priority_class_name
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [
            tol.model_dump(by_alias=True, exclude_none=True) for tol in spec.tolerations
        ]
    meta = metadata(t, names.child_name(t.name))
    meta["annotations"] = {names.METRICS_PORT_ANNOTATION: str(port)}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": names.agent_selector(t.name)},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": {**settings.extra_pod_labels, **names.common_labels(t.name)},
                    "annotations": {
                        "kubectl.kubernetes.io/default-container": CONTAINER,
                        **settings.extra_pod_annotations,
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def render_namespaced(
    vip: VirtualIP, t: Target, settings: OperatorSettings, port: int
) -> list[dict[str, Any]]:
    """Everything in the VirtualIP's namespace, in the order to apply it.

    The ServiceAccount and its grants come first so the agents never start
    without their permissions.
    """
    return [
        render_service_account(t),
        *render_rbac(vip, t),
        render_daemonset(vip, t, settings, port),
    ]
