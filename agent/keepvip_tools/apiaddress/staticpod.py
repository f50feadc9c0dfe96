"""The static Pod that holds the Kubernetes API address on a control-plane node.

Placed in ``/etc/kubernetes/manifests/``, it is started by the kubelet
before the API server exists, which is why it asks nothing of the API: no
ServiceAccount token, no kubeconfig (kube-vip's static pod needed
``admin.conf`` for its leader election, and broke when kubeadm 1.29 stopped
binding that file to cluster-admin before the cluster was up). VRRP elects
on the wire; the agent reads its VirtualIP from a host file (hostPath) or
from the manifest itself (``--inline``: an environment variable).

The container runs as root with every capability dropped but NET_ADMIN and
NET_RAW (a raw VRRP socket and netlink need them in the effective set), on a
read-only root filesystem, in the host network. SIGTERM (the kubelet
removing the pod, e.g. when the file is moved away before an upgrade) makes
the agent hand over with a priority-0 advertisement before it exits.
"""

from __future__ import annotations

from typing import Any

import yaml

from keepvip_api.model import VirtualIP
from keepvip_tools.apiaddress.config import Options, to_yaml

__all__ = ["CONFIG_ENV", "render_pod", "render_pod_yaml"]

CONFIG_ENV = "KEEPVIP_CONFIG"
_LABELS = {"app.kubernetes.io/name": "keepvip", "app.kubernetes.io/component": "api-address"}


def _host_file(name: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A read-only mount of one host file at the same path, and its volume."""
    mount = {"name": name, "mountPath": path, "readOnly": True}
    return mount, {"name": name, "hostPath": {"path": path, "type": "File"}}


def _files(vip: VirtualIP) -> list[str]:
    """The host files the check reads (CA, client certificate and key)."""
    out: list[str] = []
    for check in vip.spec.checks:
        h = check.http_get
        if h is not None:
            out += [p for p in (h.ca_file, h.client_cert_file, h.client_key_file) if p]
    return list(dict.fromkeys(out))


def render_pod(
    vip: VirtualIP,
    options: Options,
    *,
    image: str,
    config_path: str | None,
    namespace: str = "kube-system",
) -> dict[str, Any]:
    """The Pod; ``config_path`` None carries the VirtualIP inline in the manifest."""
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - emptyDir
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    ]
    env: list[dict[str, Any]] = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    ]
    if config_path is None:
        env.append({"name": CONFIG_ENV, "value": to_yaml(vip)})
        source = ["--config-env", CONFIG_ENV]
    else:
        mount, volume = _host_file("config", config_path)
        mounts.append(mount)
        volumes.append(volume)
        source = ["--config", config_path]
    for i, path in enumerate(_files(vip)):
        mount, volume = _host_file(f"check-file-{i}", path)
        mounts.append(mount)
        volumes.append(volume)
    port = options.metrics_port
    container = {
        "name": "keepvip",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["keepvip-agent"],
        "args": [*source, "--node", "$(NODE_NAME)", "--metrics-port", str(port)],
        "env": env,
        "ports": [{"name": "metrics", "containerPort": port, "hostPort": port, "protocol": "TCP"}],
        # Lenient: a restart moves the VIP, so only a hung agent should be restarted.
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "keepvip-api-address",
            "namespace": namespace,
            "labels": dict(_LABELS),
        },
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # The agent hands over within about one advertisement interval; the rest is margin.
            "terminationGracePeriodSeconds": 30,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": volumes,
        },
    }


def render_pod_yaml(
    vip: VirtualIP, options: Options, *, image: str, config_path: str | None
) -> str:
    pod = render_pod(vip, options, image=image, config_path=config_path)
    header = (
        f"# keepvip holding the Kubernetes API address {vip.spec.addresses[0]} "
        f"(VRID {vip.spec.virtual_router_id}).\n"
        "# Generated by `keepvip static-pod`; place in /etc/kubernetes/manifests/ on each\n"
        "# control-plane node. See docs/api-address.md.\n"
    )
    return header + yaml.dump(pod, Dumper=_Dumper, sort_keys=False, width=100)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (an inline VirtualIP) as readable ``|`` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
