"""The agent's Kubernetes mode, end to end on the real control plane and the real kernel.

Agents run as the DaemonSet's pods: the pod launcher starts each pod's
command inside a lab node namespace (the same bridge topology as the netns
tier), with the pod's ServiceAccount token, so the agents see exactly the
RBAC written here. The objects are rendered by hand to the operator's
contract (docs/operator.md); the operator's own tests render them for real.

Proven here: agents read their VirtualIP and write their status entries;
the highest priority wins and the client reaches the VIP; pod readiness
gates the node (the VIP moves when the app's pod turns not Ready); a
partition of the node network with the API still reachable is settled by
the Lease (one master steps down with a split-brain fault, and rejoins after
healing); deleting the VirtualIP releases the VIP everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_agent.lab.topology import VIP4, Lab

from .controlplane import LAUNCH_LABEL, ControlPlane
from .podlauncher import PodLauncher
from .rest import ApiError

ROOT = Path(__file__).resolve().parents[2]
GROUP_PATH = "/apis/keepvip.io/v1alpha1"
NAME = "web"
METRICS_PORT = 9650


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as exc:
            last = exc
        if last and not isinstance(last, ApiError):
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def ensure_crd(cp: ControlPlane) -> None:
    api = cp.admin_rest()
    crd = yaml.safe_load((ROOT / "crds" / "keepvip.io_virtualips.yaml").read_text())
    with contextlib.suppress(ApiError):
        api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    wait_for("the CRD to be served", lambda: api.get(f"{GROUP_PATH}/virtualips"))


def field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def owner(vip: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "name": vip["metadata"]["name"],
            "uid": vip["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def agent_objects(ns: str, vip: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """ServiceAccount, Role, RoleBinding and DaemonSet as the operator renders them."""
    sa = f"keepvip-agent-{NAME}"
    meta = {"namespace": ns, "ownerReferences": owner(vip)}
    labels = {"app.kubernetes.io/name": "keepvip-agent", "keepvip.io/virtualip": NAME}
    rules = [
        {
            "apiGroups": ["keepvip.io"],
            "resources": ["virtualips"],
            "resourceNames": [NAME],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["keepvip.io"],
            "resources": ["virtualips/status"],
            "resourceNames": [NAME],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [f"keepvip-{NAME}"],
            "verbs": ["get", "update", "patch"],
        },
    ]
    container = {
        "name": "agent",
        "image": "keepvip:test",
        "command": ["keepvip-agent"],
        "args": [
            "--virtualip",
            f"$(POD_NAMESPACE)/{NAME}",
            "--node",
            "$(NODE_NAME)",
            "--metrics-port",
            str(METRICS_PORT),
        ],
        "env": [
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("NODE_IP", "status.hostIP"),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": METRICS_PORT},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": f"keepvip-{NAME}", **meta, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, LAUNCH_LABEL: "true"}},
                "spec": {
                    "serviceAccountName": sa,
                    "hostNetwork": True,
                    "terminationGracePeriodSeconds": 10,
                    "containers": [container],
                },
            },
        },
    }
    return [
        (
            f"/api/v1/namespaces/{ns}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, **meta}},
        ),
        (
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": sa, **meta},
                "rules": rules,
            },
        ),
        (
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": sa, **meta},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
            },
        ),
        (f"/apis/apps/v1/namespaces/{ns}/daemonsets", ds),
    ]


def app_daemonset(ns: str, flags: Path) -> dict[str, Any]:
    """The tracked app: an HTTP responder per node, Ready while its flag file exists."""
    labels = {"app": "web"}
    container = {
        "name": "web",
        "image": "web:test",
        "command": [sys.executable, "-m", "keepvip_agent.lab.responder", "$(NODE_NAME)", "80"],
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


@pytest.fixture
def cluster_lab(control_plane: ControlPlane) -> Iterator[tuple[Lab, dict[str, int]]]:
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


def client_answer(lab: Lab) -> str | None:
    out = lab.exec(
        lab.client_ns,
        sys.executable,
        "-m",
        "keepvip_agent.lab.probe",
        str(VIP4),
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
) -> Iterator[tuple[dict[str, Any], PodLauncher]]:
    """The VirtualIP, its agents (and optionally an app) running in the lab; logs on failure."""
    lab, index = cluster_lab
    api = cp.admin_rest()
    ensure_crd(cp)
    vip = api.post(
        f"{GROUP_PATH}/namespaces/{ns}/virtualips",
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": NAME},
            "spec": spec,
        },
    )
    mapping = {n: lab.node_ns(i) for n, i in index.items()}
    with PodLauncher(cp, mapping) as launcher:
        if app is not None:
            api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", app)
        for path, body in agent_objects(ns, vip):
            api.post(path, body)
        try:
            wait_for("3 status entries", lambda: len(status_nodes(cp, ns)) == 3, 60)
            yield vip, launcher
        finally:
            dump_logs(cp, launcher, ns)


def base_spec(nodes: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "addresses": [f"{VIP4}/24"],
        "virtualRouterID": 51,
        "advertInterval": "100ms",
        "preempt": True,
        "nodes": [{"name": n, "priority": p} for n, p in zip(nodes, (150, 120, 100), strict=True)],
        **extra,
    }


def test_agents_elect_gate_on_readiness_and_release_on_delete(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    lab, index = cluster_lab
    ns, api = kube_namespace, control_plane.admin_rest()
    nodes = list(index)
    flags = tmp_path / "ready"
    flags.mkdir()
    for n in nodes:
        (flags / n).touch()
    track = {
        "selector": {"matchLabels": {"app": "web"}},
        "onFailure": {"action": "fault"},
        "roleLabel": True,
    }
    spec = base_spec(nodes, trackPods=track)
    with deployed(control_plane, ns, cluster_lab, spec, app_daemonset(ns, flags)):
        # Every agent wrote its own entry; the highest priority is master.
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        assert lab.holders() == [index[nodes[0]]]
        assert wait_for("the client", lambda: client_answer(lab), 10) == nodes[0]
        entry = status_nodes(control_plane, ns)[nodes[0]]
        assert entry["effectivePriority"] == 150 and entry["address"] == str(lab.node_v4(1))
        # The role label follows mastership.
        wait_for(
            "role labels",
            lambda: (
                {
                    p["spec"]["nodeName"]: p["metadata"]["labels"].get("keepvip.io/role")
                    for p in api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector="app=web")[
                        "items"
                    ]
                }
                == {n: ("master" if n == nodes[0] else "backup") for n in nodes}
            ),
            20,
        )

        # Readiness gating: the app on the master turns not Ready; the VIP moves.
        (flags / nodes[0]).unlink()
        wait_for(f"{nodes[1]} master", lambda: masters(control_plane, ns) == [nodes[1]], 15)
        assert wait_for("the client", lambda: client_answer(lab) == nodes[1], 10)
        assert status_nodes(control_plane, ns)[nodes[0]]["state"] == "Fault"
        assert lab.holders() == [index[nodes[1]]]
        # Back to Ready: preempt is on, so the preferred node takes it back.
        (flags / nodes[0]).touch()
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 15)

        # Deleting the VirtualIP releases the VIP on every node.
        api.delete(
            f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}", {"propagationPolicy": "Foreground"}
        )
        wait_for("no node holding the VIP", lambda: lab.holders() == [] or None, 30)


def test_split_brain_is_settled_by_the_lease(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """Node network partitioned, API reachable by all: the Lease's live holder keeps the VIP."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    with deployed(control_plane, ns, cluster_lab, base_spec(nodes)):
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/keepvip-{NAME}"
        api = control_plane.admin_rest()
        wait_for("the lease", lambda: api.get(lease)["spec"].get("holderIdentity") == nodes[0], 15)
        lab.cut(index[nodes[0]])  # the others stop hearing it; everybody still reaches the API
        cut_at = time.monotonic()

        def settled() -> bool:
            entries = status_nodes(control_plane, ns)
            fenced = [
                n
                for n in nodes[1:]
                if entries[n]["state"] == "Fault"
                and any("split brain" in f for f in entries[n].get("faults", []))
            ]
            return masters(control_plane, ns) == [nodes[0]] and len(fenced) == 2

        wait_for("the backups to step down for the lease holder", settled, 30)
        settle_time = time.monotonic() - cut_at
        assert lab.holders() == [index[nodes[0]]], "only the lease holder keeps the VIP"
        print(f"split brain settled {settle_time:.1f}s after the partition")
        lab.heal(index[nodes[0]])
        wait_for(
            "the fenced nodes to rejoin as backups",
            lambda: (
                {e["state"] for n, e in status_nodes(control_plane, ns).items() if n != nodes[0]}
                == {"Backup"}
            ),
            20,
        )
        assert masters(control_plane, ns) == [nodes[0]]


@contextlib.contextmanager
def api_server_frozen(cp: ControlPlane) -> Iterator[None]:
    """SIGSTOP the kube-apiserver (connections hang, as with a dead or overloaded server)."""
    pid = cp.pid("kube-apiserver")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_data_plane_does_not_depend_on_the_api(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """API server frozen: the VIP stays, failover still works, status catches up afterwards."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    for name, i in index.items():
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_agent.lab.responder", name])
    with deployed(control_plane, ns, cluster_lab, base_spec(nodes)):
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        with api_server_frozen(control_plane):
            time.sleep(3)
            assert lab.holders() == [index[nodes[0]]], "the VIP stays while the API is away"
            lab.link_down(index[nodes[0]])
            lab.wait_for(lambda: lab.holders() == [index[nodes[1]]], 5)
            assert wait_for("the client", lambda: client_answer(lab) == nodes[1], 5)
            time.sleep(2)
        wait_for("status to catch up", lambda: masters(control_plane, ns) == [nodes[1]], 30)
        lab.link_up(index[nodes[0]])
