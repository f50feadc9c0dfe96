"""The node agent DaemonSet and its static RBAC, deployed by a test without the operator.

What the chart (and, for per-namespace rights, the operator) will render for
issue 12's one-agent-per-node layout, written here by hand so the agent side
can be proven on its own: the ServiceAccount ``keepvip-agent``, a ClusterRole
(VirtualIPs read, their status patched, Nodes read, Events), a Role in the
agents' namespace (Leases; pods list/watch for peers), a Role in the
VirtualIPs' namespace (tracked pods, with patch for the role label), and the
DaemonSet with the launcher's label, so the pod launcher runs the real
``keepvip-agent --kubernetes`` in the lab's node namespaces with exactly these
rights. Cluster-scoped objects are named after the test's namespace and
removed on the way out.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

from keepvip_api.names import NODE_AGENT_METRICS_PORT, NODE_AGENT_NAME, NODE_AGENT_SELECTOR
from keepvip_tools.lab.topology import Lab

from .clusterlab import dump_logs, field_env
from .controlplane import LAUNCH_LABEL, ControlPlane
from .kubeapi import GROUP_PATH, ensure_crd
from .podlauncher import PodLauncher
from .rest import ApiError, Rest

DS_PATH = "/apis/apps/v1/namespaces/{ns}/daemonsets/" + NODE_AGENT_NAME
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def agent_rbac(ns: str) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) for the agents' static RBAC in namespace ``ns``."""
    subject = [{"kind": "ServiceAccount", "name": NODE_AGENT_NAME, "namespace": ns}]
    cluster_role = f"{ns}-agent"
    read = ["get", "list", "watch"]
    return [
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NODE_AGENT_NAME}},
        ),
        (
            f"{RBAC}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": cluster_role},
                "rules": [
                    _rule(["keepvip.io"], ["virtualips"], read),
                    _rule(["keepvip.io"], ["virtualips/status"], ["get", "patch"]),
                    _rule([""], ["nodes"], read),
                    _rule([""], ["events"], ["create", "patch"]),
                    _rule(["events.k8s.io"], ["events"], ["create", "patch"]),
                ],
            },
        ),
        (
            f"{RBAC}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": cluster_role},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_role,
                },
                "subjects": subject,
            },
        ),
        (
            f"{RBAC}/namespaces/{ns}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": NODE_AGENT_NAME},
                "rules": [
                    _rule(
                        ["coordination.k8s.io"],
                        ["leases"],
                        ["get", "list", "watch", "create", "update", "patch", "delete"],
                    ),
                    # Peers; and, as the operator would grant where VirtualIPs track pods
                    # in this namespace with roleLabel, tracked pods and their label.
                    _rule([""], ["pods"], ["get", "list", "watch", "patch"]),
                ],
            },
        ),
        (
            f"{RBAC}/namespaces/{ns}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": NODE_AGENT_NAME},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": NODE_AGENT_NAME,
                },
                "subjects": subject,
            },
        ),
    ]


def node_agent_daemonset(ns: str, log_level: str = "info") -> dict[str, Any]:
    """The one agent DaemonSet, as the contract of issue 12 fixes its container."""
    port = NODE_AGENT_METRICS_PORT
    probe = {"port": port, "scheme": "HTTP"}
    container = {
        "name": "agent",
        "image": "keepvip:test",
        "command": ["keepvip-agent"],
        "args": [
            "--kubernetes",
            "--node",
            "$(NODE_NAME)",
            "--agent-namespace",
            "$(POD_NAMESPACE)",
            # Only this test's namespace: the control plane is shared by the whole
            # session, and VirtualIPs other tests left behind must not run here.
            "--watch-namespaces",
            "$(POD_NAMESPACE)",
            "--metrics-port",
            str(port),
            # No operator here to accept anything: the agents run what they read, and
            # this namespace's exec checks (a test's own) are trusted.
            "--address-grants",
            "off",
            "--trusted-namespaces",
            "$(POD_NAMESPACE)",
            "--log-level",
            log_level,
        ],
        "env": [
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "ports": [{"name": "metrics", "containerPort": port, "hostPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe}, "periodSeconds": 2},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NODE_AGENT_NAME, "namespace": ns, "labels": dict(NODE_AGENT_SELECTOR)},
        "spec": {
            "selector": {"matchLabels": dict(NODE_AGENT_SELECTOR)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {**NODE_AGENT_SELECTOR, LAUNCH_LABEL: "true"}},
                "spec": {
                    "serviceAccountName": NODE_AGENT_NAME,
                    "hostNetwork": True,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [container],
                },
            },
        },
    }


def agent_pods(api: Rest, ns: str) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in sorted(NODE_AGENT_SELECTOR.items()))
    return list(api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"])


@contextlib.contextmanager
def node_agents(
    cp: ControlPlane, ns: str, cluster_lab: tuple[Lab, dict[str, int]]
) -> Iterator[PodLauncher]:
    """The node agents running in the lab's node namespaces (logs printed on the way out)."""
    lab, index = cluster_lab
    api = cp.admin_rest()
    ensure_crd(cp)
    created: list[str] = []
    mapping = {n: lab.node_ns(i) for n, i in index.items()}
    try:
        for path, obj in agent_rbac(ns):
            api.post(path, obj)
            if "/namespaces/" not in path:
                created.append(f"{path}/{obj['metadata']['name']}")
        with PodLauncher(cp, mapping) as launcher:
            api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", node_agent_daemonset(ns))
            try:
                yield launcher
            finally:
                dump_logs(cp, launcher, ns)
    finally:
        for path in created:
            with contextlib.suppress(ApiError):
                api.delete(path)


# -- VirtualIPs and what the agents wrote --------------------------------------------------


def vip_spec(
    address: IPv4Address | str, vrid: int, nodes: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "addresses": [f"{address}/24"],
        "virtualRouterID": vrid,
        "advertInterval": "200ms",
        "preempt": True,
        "nodes": [{"name": n, "priority": p} for n, p in zip(nodes, (150, 120, 100), strict=True)],
        **extra,
    }


def post_vip(api: Rest, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": spec,
    }
    return dict(api.post(f"{GROUP_PATH}/namespaces/{ns}/virtualips", body))


def entries(api: Rest, ns: str, name: str) -> dict[str, dict[str, Any]]:
    vip = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}")
    return {n["name"]: n for n in (vip.get("status") or {}).get("nodes", [])}


def masters_of(api: Rest, ns: str, name: str) -> list[str]:
    return sorted(n for n, e in entries(api, ns, name).items() if e["state"] == "Master")


def answer(lab: Lab, address: IPv4Address | str, port: int = 80) -> str | None:
    """Who answers a client's HTTP request to ``address`` (None: nobody)."""
    out = lab.exec(
        lab.client_ns,
        sys.executable,
        "-m",
        "keepvip_tools.lab.probe",
        str(address),
        "--port",
        str(port),
        "--duration",
        "0.01",
        check=False,
    )
    who = [line.split()[1] for line in out.splitlines() if line.strip()]
    return who[-1] if who and who[-1] != "-" else None


@contextlib.contextmanager
def api_server_frozen(cp: ControlPlane) -> Iterator[None]:
    """SIGSTOP the kube-apiserver (connections hang, as with a dead or overloaded server)."""
    pid = cp.pid("kube-apiserver")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
