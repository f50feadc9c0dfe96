"""keepvip on the real control plane and the real kernel: operator, agents, status, VIP.

The operator runs in-process and renders the agents' ServiceAccount, Role and
DaemonSet; the pod launcher runs the DaemonSet's pods (the real
``keepvip-agent`` command with the operator's arguments) inside lab node
namespaces on one bridge, each with its ServiceAccount's token, so the agents
have exactly the RBAC the operator grants. Only the container runtime is
left out (the kind suite covers it).

Proven here: agents read their VirtualIP and write their status entries and
the operator turns them into ``master`` and conditions; the highest priority
wins and the client reaches the VIP; pod readiness gates the node (the VIP
moves when the app's pod turns not Ready); a spec change is applied without
moving the VIP; a partition of the node network with the API still reachable
is settled by the Lease (one master steps down, ``SplitBrain`` is set, and
cleared after healing); with the API server frozen the VIP stays and failover
still works; deleting the VirtualIP releases the VIP everywhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_tools.lab.topology import VIP4, Lab

from .controlplane import LAUNCH_LABEL, ControlPlane
from .operator_fixtures import operator_settings, running_operator, wait_for
from .podlauncher import PodLauncher
from .rest import ApiError

ROOT = Path(__file__).resolve().parents[2]
GROUP_PATH = "/apis/keepvip.io/v1alpha1"
NAME = "web"


def ensure_crd(cp: ControlPlane) -> None:
    api = cp.admin_rest()
    crd = yaml.safe_load((ROOT / "crds" / "keepvip.io_virtualips.yaml").read_text())
    with contextlib.suppress(ApiError):
        api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    wait_for("the CRD to be served", lambda: api.get(f"{GROUP_PATH}/virtualips"))


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
    with running_operator(settings, ns), PodLauncher(cp, mapping) as launcher:
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
        wait_for(
            "Ready and status.master",
            lambda: (
                condition(control_plane, ns, "Ready") == "True"
                and api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}")["status"].get(
                    "master"
                )
                == nodes[0]
            ),
            20,
        )
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
        wait_for(
            "a MasterChanged event naming the new master",
            lambda: any(nodes[1] in m for m in events(control_plane, ns, "MasterChanged")),
            20,
        )
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
        wait_for(
            "SplitBrain=True", lambda: condition(control_plane, ns, "SplitBrain") == "True", 20
        )
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
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])
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


def test_spec_changes_move_the_vip_at_most_once(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """Spec edits apply in place: no pod restart, and the VIP moves at most once.

    Changes that keep the master the best node (interval, checks, higher
    priorities) leave it master; lowering the master below a backup moves the
    VIP once (the backup sees the master's priority fall) and it stays there.
    """
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    path = f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}"

    def priorities(*ps: int) -> list[dict[str, Any]]:
        return [{"name": n, "priority": p} for n, p in zip(nodes, ps, strict=True)]

    # Preempt on at first so the preferred node wins whatever order the pods start in.
    with deployed(control_plane, ns, cluster_lab, base_spec(nodes)):
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        before = status_nodes(control_plane, ns)[nodes[0]]["lastTransitionTime"]
        ds_path = f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-{NAME}"
        generation = api.get(ds_path)["metadata"]["generation"]
        check = {"name": "always", "exec": {"command": ["true"]}, "onFailure": {"action": "fault"}}
        api.merge_patch(
            path,
            {
                "spec": {
                    "advertInterval": "200ms",
                    "nodes": priorities(160, 130, 100),
                    "checks": [check],
                }
            },
        )
        wait_for(
            "the new priorities in status",
            lambda: status_nodes(control_plane, ns)[nodes[1]]["configuredPriority"] == 130,
            20,
        )
        time.sleep(2)  # several advertisement intervals at the new rate
        assert masters(control_plane, ns) == [nodes[0]]
        assert status_nodes(control_plane, ns)[nodes[0]]["lastTransitionTime"] == before
        assert lab.holders() == [index[nodes[0]]]

        # The master is now configured below a backup: the VIP moves, once.
        api.merge_patch(path, {"spec": {"nodes": priorities(110, 140, 100)}})
        wait_for(f"{nodes[1]} master", lambda: masters(control_plane, ns) == [nodes[1]], 20)
        moved = status_nodes(control_plane, ns)[nodes[1]]["lastTransitionTime"]
        time.sleep(3)
        entries = status_nodes(control_plane, ns)
        assert masters(control_plane, ns) == [nodes[1]]
        assert entries[nodes[1]]["lastTransitionTime"] == moved, "no flapping after the move"
        assert entries[nodes[0]]["state"] == "Backup"
        assert lab.holders() == [index[nodes[1]]]
        assert api.get(ds_path)["metadata"]["generation"] == generation, "no pod was restarted"


def test_strict_fencing_drops_the_vip_when_the_api_is_gone(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """fencing: strict: a master cut off from the API longer than the Lease (6 s) drops the VIP.

    With every agent cut off, each one that becomes master fences itself in turn,
    so no node keeps the VIP: two writers are worse than none. When the API
    answers again, the election resumes and a node takes the VIP back.
    """
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    with deployed(control_plane, ns, cluster_lab, base_spec(nodes, fencing="strict")):
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        with api_server_frozen(control_plane):
            time.sleep(3)
            assert lab.holders() == [index[nodes[0]]], "within the Lease duration it keeps serving"
            lab.wait_for(lambda: lab.holders() == [] or None, 20)
        wait_for(
            "the VIP back on the preferred node", lambda: lab.holders() == [index[nodes[0]]], 30
        )
        wait_for(
            f"{nodes[0]} master in status", lambda: masters(control_plane, ns) == [nodes[0]], 30
        )
