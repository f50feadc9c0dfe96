"""Agents and an app deployed for real into lab namespaces that stand for the fake nodes.

The cluster tests of the agent and of Services, and ``benchmarks/cluster.py``,
share this: the control plane's fake nodes get the InternalIPs of a
``keepvip_tools.lab`` topology (:func:`lab_on_nodes`), the operator runs
in-process and renders the agents' DaemonSet with the pod launcher's label,
and the launcher runs the agents (the real ``keepvip-agent``) and the app
(``keepvip_tools.lab.responder``, Ready while a flag file exists) in the
node namespaces. :func:`client_answer` asks the VIP from the lab's client
who answers; the status helpers read what the agents and the operator wrote.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from keepvip_tools.lab.topology import VIP4, Lab

from .controlplane import LAUNCH_LABEL, ControlPlane
from .kubeapi import GROUP_PATH, ensure_crd, wait_for
from .operatorrun import operator_settings, running_operator
from .podlauncher import PodLauncher
from .rest import ApiError

NAME = "web"
"""The VirtualIP's name (and so ``keepvip-web`` for its agents and Lease)."""


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def app_daemonset(ns: str, flags: Path) -> dict[str, Any]:
    """The tracked app: an HTTP responder per node, Ready while its flag file exists."""
    labels = {"app": "web"}
    container = {
        "name": "web",
        "image": "web:test",
        "command": [sys.executable, "-m", "keepvip_tools.lab.responder", "$(NODE_NAME)", "80"],
        "env": [field_env("NODE_NAME", "spec.nodeName")],
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", f"test -f {flags}/$NODE_NAME"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, LAUNCH_LABEL: "true"}},
                "spec": {"hostNetwork": True, "containers": [container]},
            },
        },
    }


@contextlib.contextmanager
def lab_on_nodes(control_plane: ControlPlane) -> Iterator[tuple[Lab, dict[str, int]]]:
    """Lab namespaces on one bridge for the fake nodes; node InternalIPs set to the lab's."""
    nodes = [n.name for n in control_plane.nodes]
    originals = {n.name: n.internal_ip for n in control_plane.nodes}
    with Lab(nodes=len(nodes)) as lab:
        index = {name: i for i, name in enumerate(nodes, start=1)}
        try:
            for name, i in index.items():
                control_plane.set_node_address(name, str(lab.node_v4(i)))
            yield lab, index
        finally:
            for name, ip in originals.items():
                control_plane.set_node_address(name, ip)


def status_nodes(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    vip = cp.admin_rest().get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}")
    return {n["name"]: n for n in (vip.get("status") or {}).get("nodes", [])}


def masters(cp: ControlPlane, ns: str) -> list[str]:
    return sorted(n for n, e in status_nodes(cp, ns).items() if e["state"] == "Master")


def client_answer(lab: Lab, port: int = 80) -> str | None:
    out = lab.exec(
        lab.client_ns,
        sys.executable,
        "-m",
        "keepvip_tools.lab.probe",
        str(VIP4),
        "--port",
        str(port),
        "--duration",
        "0.01",
        check=False,
    )
    who = [line.split()[1] for line in out.splitlines() if line.strip()]
    return who[-1] if who and who[-1] != "-" else None


def dump_logs(cp: ControlPlane, launcher: PodLauncher, ns: str) -> None:
    """Print every launched pod's log; pytest shows it when the test fails."""
    with contextlib.suppress(ApiError):
        for pod in cp.admin_rest().get(f"/api/v1/namespaces/{ns}/pods")["items"]:
            name = pod["metadata"]["name"]
            print(f"----- {name} on {pod['spec'].get('nodeName')}")
            print(launcher.log(ns, name)[-4000:])


@contextlib.contextmanager
def deployed(
    cp: ControlPlane,
    ns: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    spec: dict[str, Any],
    app: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """The operator, the VirtualIP and its agents (and optionally an app) in the lab.

    The operator renders the agents' ServiceAccount, Role and DaemonSet (with the
    launcher's label added through its settings), so the agents run with exactly
    the RBAC the operator grants. Logs of every pod are printed on the way out.
    """
    lab, index = cluster_lab
    api = cp.admin_rest()
    ensure_crd(cp)
    settings = replace(
        operator_settings(cp, ns), extra_pod_labels={LAUNCH_LABEL: "true"}, agent_log_level="info"
    )
    mapping = {n: lab.node_ns(i) for n, i in index.items()}
    with running_operator(settings, ns, cp), PodLauncher(cp, mapping) as launcher:
        if app is not None:
            api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", app)
        vip = api.post(
            f"{GROUP_PATH}/namespaces/{ns}/virtualips",
            {
                "apiVersion": "keepvip.io/v1alpha1",
                "kind": "VirtualIP",
                "metadata": {"name": NAME},
                "spec": spec,
            },
        )
        try:
            wait_for("3 status entries", lambda: len(status_nodes(cp, ns)) == 3, 90)
            yield vip
        finally:
            dump_logs(cp, launcher, ns)


def condition(cp: ControlPlane, ns: str, kind: str) -> str | None:
    vip = cp.admin_rest().get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}")
    for c in (vip.get("status") or {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return None


def events(cp: ControlPlane, ns: str, reason: str) -> list[str]:
    items = cp.admin_rest().get(f"/api/v1/namespaces/{ns}/events")["items"]
    return [e["message"] for e in items if e.get("reason") == reason]


def base_spec(nodes: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "addresses": [f"{VIP4}/24"],
        "virtualRouterID": 51,
        "advertInterval": "100ms",
        "preempt": True,
        "nodes": [{"name": n, "priority": p} for n, p in zip(nodes, (150, 120, 100), strict=True)],
        **extra,
    }
