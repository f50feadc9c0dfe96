"""keepvip on the real control plane and the real kernel: operator, agents, status, VIP.

The chart's agent RBAC is applied, the operator runs in-process and renders
the one node agent DaemonSet (and per-namespace grants); the pod launcher
runs its pods (the real ``keepvip-agent --kubernetes`` with the operator's
arguments, one per node) inside lab node namespaces on one bridge, each with
the ServiceAccount's token, so the agents have exactly the RBAC the chart and
the operator grant. Only the container runtime is left out (the kind suite
covers it).

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
from pathlib import Path
from typing import Any

import pytest

from keepvip_api.names import vip_lease_name
from keepvip_harness.clusterlab import (
    NAME,
    app_daemonset,
    base_spec,
    client_answer,
    condition,
    deployed,
    events,
    masters,
    status_nodes,
)
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, wait_for
from keepvip_tools.cli import main as keepvip_main
from keepvip_tools.lab.topology import Lab


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
        # The VirtualIP's split-brain Lease, in the agents' namespace (here the test's).
        lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{vip_lease_name(ns, NAME)}"
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
        ds_path = f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent"
        generation = api.get(ds_path)["metadata"]["generation"]
        pods = f"/api/v1/namespaces/{ns}/pods"
        uids = sorted(p["metadata"]["uid"] for p in api.get(pods)["items"])
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
        assert sorted(p["metadata"]["uid"] for p in api.get(pods)["items"]) == uids


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


def test_keepvip_move_hands_the_vip_to_the_chosen_node_or_says_why_not(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16, part 4: ``keepvip move NS/NAME --to NODE`` (the annotation keepvip.io/move-to):
    the agents hand over to that node, the operator ends the request with the condition
    Moved and an Event; a node that cannot take it is refused with the reason."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    kubeconfig = ["--kubeconfig", str(control_plane.admin_kubeconfig)]
    for name, i in index.items():
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])
    with deployed(control_plane, ns, cluster_lab, base_spec(nodes)):
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        # Off once the preferred node is master (three agents starting together with it off:
        # the first timer to run out wins).
        api.merge_patch(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}",
                        {"spec": {"preempt": False}})  # fmt: skip
        wait_for("status.master", lambda: vip_status(api, ns).get("master") == nodes[0], 30)
        capsys.readouterr()
        target = f"{ns}/{NAME}"
        assert keepvip_main(["move", target, "--to", nodes[2], *kubeconfig, "--timeout", "60"]) == 0
        assert f"moved to {nodes[2]} on request" in capsys.readouterr().out
        assert masters(control_plane, ns) == [nodes[2]]
        assert wait_for("the client", lambda: client_answer(lab) == nodes[2], 10)
        vip = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}")
        assert "keepvip.io/move-to" not in (vip["metadata"].get("annotations") or {})
        assert condition(control_plane, ns, "Moved") == "True"
        assert any(nodes[2] in m for m in events(control_plane, ns, "Moved"))
        time.sleep(3)
        assert masters(control_plane, ns) == [nodes[2]], "the move lasts (preempt: false)"
        # Refused, with the reason, and nothing moves.
        assert keepvip_main(["move", target, "--to", "no-such-node", *kubeconfig]) == 1
        assert "no such Node" in capsys.readouterr().err
        assert condition(control_plane, ns, "Moved") == "False"
        assert masters(control_plane, ns) == [nodes[2]]


def vip_status(api: Any, ns: str) -> dict[str, Any]:
    return dict(api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}").get("status") or {})
