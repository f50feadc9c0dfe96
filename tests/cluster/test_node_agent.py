"""The node agent (issue 12): one ``keepvip-agent --kubernetes`` per node carries every VirtualIP.

No operator here: the test renders what the chart and the operator will (the
agents' ServiceAccount, RBAC and the one DaemonSet, ``keepvip_harness.nodeagents``)
and gives every VirtualIP its VRID in the spec; the pod launcher runs the
real agents in the lab's node namespaces with exactly those rights. Every
assertion reads what the agents wrote in the API (``status.nodes[]``, Leases)
or what a client sees through the VIPs.
"""

from __future__ import annotations

import sys
import time
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from keepvip_api.names import ROLE_LABEL, node_lease_name, vip_lease_name
from keepvip_api.subnets import NETWORKS_ANNOTATION, parse_networks
from keepvip_harness.clusterlab import app_daemonset
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, wait_for
from keepvip_harness.labdaemons import read_probe, unanswered
from keepvip_harness.nodeagents import (
    agent_pods,
    answer,
    api_server_frozen,
    entries,
    masters_of,
    node_agents,
    post_vip,
    vip_spec,
)
from keepvip_tools.cli import main as keepvip_main
from keepvip_tools.lab.topology import Lab

VIPS = 10


def address(i: int) -> IPv4Address:
    return IPv4Address(f"192.0.2.{50 + i}")


def responders(lab: Lab, index: dict[str, int]) -> None:
    """An HTTP responder on every node answering with the node's name (any local address)."""
    for name, i in index.items():
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])


def test_one_agent_per_node_carries_every_virtualip_and_faults_alone(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    responders(lab, index)
    with node_agents(control_plane, ns, cluster_lab):
        for i in range(VIPS):
            post_vip(api, ns, f"vip{i}", vip_spec(address(i), 60 + i, nodes))
        wait_for("3 agent pods Running", lambda: len(agent_pods(api, ns)) == 3, 30)
        for i in range(VIPS):
            wait_for(
                f"vip{i}: {nodes[0]} master",
                lambda i=i: masters_of(api, ns, f"vip{i}") == [nodes[0]],
                60,
            )
            wait_for(f"vip{i}: 3 entries", lambda i=i: len(entries(api, ns, f"vip{i}")) == 3, 30)
        for i in range(VIPS):
            assert (
                wait_for(f"the client via {address(i)}", lambda i=i: answer(lab, address(i)), 10)
                == nodes[0]
            )
        pods = agent_pods(api, ns)
        assert len(pods) == 3 and {p["spec"]["nodeName"] for p in pods} == set(nodes)
        uids = {p["metadata"]["uid"] for p in pods}
        before = {
            f"vip{i}": {
                n: e.get("lastTransitionTime") for n, e in entries(api, ns, f"vip{i}").items()
            }
            for i in range(VIPS)
        }

        # Adding a VirtualIP starts no pod and restarts no instance.
        post_vip(api, ns, "added", vip_spec(address(VIPS), 60 + VIPS, nodes))
        wait_for("added: master", lambda: masters_of(api, ns, "added") == [nodes[0]], 30)
        assert (
            wait_for("the client via the new VIP", lambda: answer(lab, address(VIPS)), 10)
            == nodes[0]
        )
        assert {p["metadata"]["uid"] for p in agent_pods(api, ns)} == uids
        after = {
            f"vip{i}": {
                n: e.get("lastTransitionTime") for n, e in entries(api, ns, f"vip{i}").items()
            }
            for i in range(VIPS)
        }
        assert after == before, "no other instance transitioned"

        # Three broken VirtualIPs fault alone, each with its cause in its own entries.
        post_vip(api, ns, "no-iface", vip_spec(address(20), 90, nodes, interface="eth9"))
        post_vip(api, ns, "off-net", vip_spec("203.0.113.9", 91, nodes))
        check = {
            "name": "gone",
            "exec": {"command": ["/nonexistent/keepvip-check"]},
            "onFailure": {"action": "fault"},
        }
        post_vip(api, ns, "no-check", vip_spec(address(21), 92, nodes, checks=[check]))
        post_vip(api, ns, "bcast", vip_spec("192.0.2.255", 93, nodes))

        def faulted(name: str, word: str) -> bool:
            found = entries(api, ns, name)
            return len(found) == 3 and all(
                e["state"] == "Fault"
                and word in " ".join([*e.get("faults", []), e.get("reason", "")])
                for e in found.values()
            )

        wait_for("no-iface: Fault naming eth9", lambda: faulted("no-iface", "eth9"), 30)
        wait_for("off-net: Fault naming the address", lambda: faulted("off-net", "203.0.113.9"), 30)
        wait_for("no-check: Fault naming the check", lambda: faulted("no-check", "gone"), 30)
        wait_for("bcast: Fault naming the broadcast address", lambda: faulted(
            "bcast", "192.0.2.255 is the broadcast address of 192.0.2.0/24"), 30)  # fmt: skip
        print({n: entries(api, ns, n) for n in ("no-iface", "off-net", "no-check", "bcast")})
        assert lab.holders(address(20)) == [] and lab.holders(address(21)) == []
        assert lab.holders(ip_address("192.0.2.255")) == []
        # Each node Lease publishes the node's connected networks (the operator's judgement).
        for n in nodes:
            lease = api.get(
                f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{node_lease_name(n)}"
            )
            published = parse_networks(lease["metadata"]["annotations"][NETWORKS_ANNOTATION])
            assert ip_network("192.0.2.0/24") in published, published
        assert answer(lab, address(0)) == nodes[0], "a healthy VIP on the same agents still serves"
        assert {p["metadata"]["uid"] for p in agent_pods(api, ns)} == uids

        # Steady state: no status write at all (nothing else writes these objects here),
        # while every node Lease renews.

        def versions() -> dict[str, str]:
            items = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips")["items"]
            return {v["metadata"]["name"]: v["metadata"]["resourceVersion"] for v in items}

        def renewals() -> dict[str, str]:
            path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
            return {n: api.get(f"{path}/{node_lease_name(n)}")["spec"]["renewTime"] for n in nodes}

        time.sleep(3)
        rv, renewed = versions(), renewals()
        time.sleep(20)
        assert versions() == rv, "status entries are written on change only"
        later = renewals()
        assert all(later[n] != renewed[n] for n in nodes), "every node Lease renews"
        # Long past the probes' failure threshold (3 x 2 s): the agents stayed Ready.
        for pod in agent_pods(api, ns):
            ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True", (
                "a faulted VirtualIP leaves /readyz alone"
            )


def test_placement_by_node_selector_and_taints(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """nodeSelector and tolerations are judged by each agent against its own Node object."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    label, taint_key = f"keepvip.test/{ns}", f"keepvip.test/{ns}"
    responders(lab, index)
    try:
        with node_agents(control_plane, ns, cluster_lab):
            api.merge_patch(f"/api/v1/nodes/{nodes[1]}", {"metadata": {"labels": {label: "yes"}}})
            api.merge_patch(
                f"/api/v1/nodes/{nodes[2]}",
                {"spec": {"taints": [{"key": taint_key, "value": "x", "effect": "NoSchedule"}]}},
            )
            tolerate = [{"key": taint_key, "operator": "Exists", "effect": "NoSchedule"}]
            post_vip(api, ns, "everywhere", vip_spec(address(0), 70, nodes))
            post_vip(
                api, ns, "selected", vip_spec(address(1), 71, nodes, nodeSelector={label: "yes"})
            )
            post_vip(api, ns, "tolerant", vip_spec(address(2), 72, nodes, tolerations=tolerate))
            wait_for(
                "everywhere: all but the tainted node",
                lambda: set(entries(api, ns, "everywhere")) == {nodes[0], nodes[1]},
                40,
            )
            wait_for(
                "selected: the labelled node only",
                lambda: set(entries(api, ns, "selected")) == {nodes[1]},
                30,
            )
            wait_for(
                "tolerant: every node", lambda: set(entries(api, ns, "tolerant")) == set(nodes), 30
            )
            wait_for(
                "selected: master on the one node",
                lambda: masters_of(api, ns, "selected") == [nodes[1]],
                20,
            )
            assert wait_for("the client", lambda: answer(lab, address(1)), 10) == nodes[1]
            assert lab.holders(address(1)) == [index[nodes[1]]]
            time.sleep(2)
            assert set(entries(api, ns, "everywhere")) == {nodes[0], nodes[1]}

            # Untainting brings the VirtualIP to the node; unlabelling withdraws it (entry gone).
            api.merge_patch(f"/api/v1/nodes/{nodes[2]}", {"spec": {"taints": None}})
            wait_for(
                "everywhere: every node",
                lambda: set(entries(api, ns, "everywhere")) == set(nodes),
                30,
            )
            api.merge_patch(f"/api/v1/nodes/{nodes[1]}", {"metadata": {"labels": {label: None}}})
            wait_for("selected: no node", lambda: entries(api, ns, "selected") == {}, 30)
            wait_for("the VIP released", lambda: lab.holders(address(1)) == [] or None, 15)
    finally:
        api.merge_patch(f"/api/v1/nodes/{nodes[1]}", {"metadata": {"labels": {label: None}}})
        api.merge_patch(f"/api/v1/nodes/{nodes[2]}", {"spec": {"taints": None}})


def test_readiness_gating_by_tracked_pods(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    """trackPods through the namespace's shared pod watch: readiness moves the VIP, roles label."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    flags = tmp_path / "ready"
    flags.mkdir()
    for n in nodes:
        (flags / n).touch()
    track = {
        "selector": {"matchLabels": {"app": "web"}},
        "onFailure": {"action": "fault"},
        "roleLabel": True,
    }
    with node_agents(control_plane, ns, cluster_lab):
        api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", app_daemonset(ns, flags))
        post_vip(api, ns, "web", vip_spec(address(0), 80, nodes, trackPods=track))
        post_vip(api, ns, "plain", vip_spec(address(1), 81, nodes))
        wait_for(f"{nodes[0]} master", lambda: masters_of(api, ns, "web") == [nodes[0]], 40)
        assert wait_for("the client", lambda: answer(lab, address(0)), 10) == nodes[0]

        def roles() -> dict[str, str | None]:
            pods = api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector="app=web")["items"]
            return {p["spec"]["nodeName"]: p["metadata"]["labels"].get(ROLE_LABEL) for p in pods}

        want = {n: ("master" if n == nodes[0] else "backup") for n in nodes}
        wait_for("role labels", lambda: roles() == want, 20)

        (flags / nodes[0]).unlink()
        wait_for(f"{nodes[1]} master", lambda: masters_of(api, ns, "web") == [nodes[1]], 15)
        assert wait_for("the client", lambda: answer(lab, address(0)) == nodes[1], 10)
        assert entries(api, ns, "web")[nodes[0]]["state"] == "Fault"
        assert masters_of(api, ns, "plain") == [nodes[0]], "an untracking VirtualIP stays put"
        (flags / nodes[0]).touch()
        wait_for(f"{nodes[0]} master again", lambda: masters_of(api, ns, "web") == [nodes[0]], 15)


def test_split_brain_is_settled_by_the_moved_lease(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """Node network partitioned, API reachable: the VirtualIP Lease's holder keeps the VIP.

    The Lease is in the agents' namespace, written on transitions only; the
    holder's liveness is its node Lease.
    """
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{vip_lease_name(ns, 'web')}"
    with node_agents(control_plane, ns, cluster_lab):
        post_vip(api, ns, "web", vip_spec(address(0), 85, nodes))
        wait_for(f"{nodes[0]} master", lambda: masters_of(api, ns, "web") == [nodes[0]], 40)
        wait_for("the lease", lambda: api.get(lease)["spec"].get("holderIdentity") == nodes[0], 15)
        version = api.get(lease)["metadata"]["resourceVersion"]
        time.sleep(5)
        assert api.get(lease)["metadata"]["resourceVersion"] == version, "no renewal while held"

        lab.cut(index[nodes[0]])  # the others stop hearing it; everybody still reaches the API
        cut_at = time.monotonic()

        def settled() -> bool:
            found = entries(api, ns, "web")
            fenced = [
                n
                for n in nodes[1:]
                if found[n]["state"] == "Fault"
                and any("split brain" in f for f in found[n].get("faults", []))
            ]
            return masters_of(api, ns, "web") == [nodes[0]] and len(fenced) == 2

        wait_for("the backups to step down for the lease holder", settled, 30)
        print(f"split brain settled {time.monotonic() - cut_at:.1f}s after the partition")
        assert lab.holders(address(0)) == [index[nodes[0]]], "only the lease holder keeps the VIP"
        lab.heal(index[nodes[0]])
        wait_for(
            "the fenced nodes to rejoin as backups",
            lambda: (
                {e["state"] for n, e in entries(api, ns, "web").items() if n != nodes[0]}
                == {"Backup"}
            ),
            20,
        )
        assert masters_of(api, ns, "web") == [nodes[0]]


def test_strict_fencing_drops_the_vip_when_the_node_lease_cannot_be_renewed(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    """fencing: strict: a master whose node Lease is not renewed for 6 s drops the VIP.

    A VirtualIP without fencing on the same agents keeps serving throughout.
    """
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    with node_agents(control_plane, ns, cluster_lab):
        post_vip(api, ns, "strict", vip_spec(address(0), 86, nodes, fencing="strict"))
        post_vip(api, ns, "lenient", vip_spec(address(1), 87, nodes))
        for name in ("strict", "lenient"):
            wait_for(
                f"{name}: {nodes[0]} master",
                lambda n=name: masters_of(api, ns, n) == [nodes[0]],
                40,
            )
        with api_server_frozen(control_plane):
            time.sleep(3)
            assert lab.holders(address(0)) == [index[nodes[0]]], "within the Lease it serves"
            lab.wait_for(lambda: lab.holders(address(0)) == [] or None, 20)
            assert lab.holders(address(1)) == [index[nodes[0]]], "fencing none keeps serving"
        wait_for(
            "the VIP back on the preferred node",
            lambda: lab.holders(address(0)) == [index[nodes[0]]],
            30,
        )
        wait_for(
            f"{nodes[0]} master in status", lambda: masters_of(api, ns, "strict") == [nodes[0]], 30
        )


def test_a_cordoned_node_hands_over_without_a_gap_and_stays_a_last_resort(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    """Issue 16, part 1: cordon (and the exclude-from-external-load-balancers label) with
    ``onCordon: yield`` moves the VIP make-before-break whatever ``preempt`` says; the node
    keeps priority 1; uncordon brings it back under ``preempt`` only; ``ignore`` stays."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    responders(lab, index)
    node0 = f"/api/v1/nodes/{nodes[0]}"
    sticky, back, ignoring = address(30), address(31), address(32)
    log = tmp_path / "probe.log"
    try:
        with node_agents(control_plane, ns, cluster_lab), log.open("w") as out:
            post_vip(api, ns, "sticky", vip_spec(sticky, 80, nodes))
            post_vip(api, ns, "back", vip_spec(back, 81, nodes))
            post_vip(api, ns, "ignoring", vip_spec(ignoring, 82, nodes, onCordon="ignore"))
            for name in ("sticky", "back", "ignoring"):
                wait_for(f"{name}: {nodes[0]} master",
                         lambda n=name: masters_of(api, ns, n) == [nodes[0]], 60)  # fmt: skip
            preempt_off(api, ns, "sticky")
            lab.spawn(
                lab.client_ns,
                [sys.executable, "-m", "keepvip_tools.lab.probe", str(sticky),
                 "--every", "0.01", "--timeout", "0.1"],
                stdout=out,
            )  # fmt: skip
            time.sleep(1)
            api.merge_patch(node0, {"spec": {"unschedulable": True}})
            wait_for("sticky moved off the cordoned node (no preempt)",
                     lambda: masters_of(api, ns, "sticky") == [nodes[1]], 20)  # fmt: skip
            wait_for("back moved too", lambda: masters_of(api, ns, "back") == [nodes[1]], 20)
            wait_for(
                f"{nodes[0]} is a backup at priority 1",
                lambda: (
                    entries(api, ns, "sticky")[nodes[0]].get("effectivePriority") == 1
                    and entries(api, ns, "sticky")[nodes[0]]["state"] == "Backup"
                ),
                20,
            )
            said = entries(api, ns, "sticky")[nodes[0]].get("demotions") or []
            assert any("cordoned" in d for d in said), f"status says why: {said}"
            time.sleep(1)
            assert masters_of(api, ns, "ignoring") == [nodes[0]], "onCordon: ignore stays"
            assert answer(lab, sticky) == nodes[1]
            # Uncordon: preempt brings "back" home, "sticky" stays where it is.
            api.merge_patch(node0, {"spec": {"unschedulable": None}})
            wait_for("back returns", lambda: masters_of(api, ns, "back") == [nodes[0]], 20)
            time.sleep(2)
            assert masters_of(api, ns, "sticky") == [nodes[1]]
            # The exclude label counts as a cordon.
            label = {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}
            api.merge_patch(node0, {"metadata": {"labels": label}})
            wait_for("back moves off the excluded node",
                     lambda: masters_of(api, ns, "back") == [nodes[1]], 20)  # fmt: skip
        seen = read_probe(log)
        gaps = unanswered(seen)
        print(f"client through the cordon: {len(seen)} probes, gaps {gaps}")
        assert {b for _a, b in seen} >= {nodes[0], nodes[1]}
        assert max(gaps, default=0.0) < 0.3, "the handover left the client without an answer"
    finally:
        api.merge_patch(
            node0,
            {
                "spec": {"unschedulable": None},
                "metadata": {
                    "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": None}
                },
            },
        )


def test_keepvip_drain_moves_every_vip_off_a_node_and_undrain_ends_it(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 16, part 4: ``keepvip drain NODE`` (no cordon, no eviction) and ``undrain``."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    kubeconfig = ["--kubeconfig", str(control_plane.admin_kubeconfig)]
    responders(lab, index)
    try:
        with node_agents(control_plane, ns, cluster_lab):
            post_vip(api, ns, "one", vip_spec(address(40), 83, nodes))
            post_vip(api, ns, "two", vip_spec(address(41), 84, nodes))
            for name in ("one", "two"):
                wait_for(f"{name}: {nodes[0]} master",
                         lambda n=name: masters_of(api, ns, n) == [nodes[0]], 60)  # fmt: skip
            preempt_off(api, ns, "two")
            capsys.readouterr()
            # -n: the shared control plane holds other tests' VirtualIPs, whose stale entries
            # name this node (each test's agents watch only its own namespace).
            drain = ["drain", nodes[0], "-n", ns, *kubeconfig, "--timeout", "30"]
            assert keepvip_main(drain) == 0
            said = capsys.readouterr().out
            print(said)
            assert f"{ns}/one: {nodes[0]} -> {nodes[1]}" in said
            assert f"{ns}/two: {nodes[0]} -> {nodes[1]}" in said
            labels = api.get(f"/api/v1/nodes/{nodes[0]}")["metadata"]["labels"]
            assert labels.get("keepvip.io/maintenance") == "true"
            assert not api.get(f"/api/v1/nodes/{nodes[0]}")["spec"].get("unschedulable")
            assert answer(lab, address(40)) == nodes[1]
            assert keepvip_main(["undrain", nodes[0], *kubeconfig]) == 0
            assert "keepvip.io/maintenance" not in (
                api.get(f"/api/v1/nodes/{nodes[0]}")["metadata"].get("labels") or {}
            )
            wait_for("one (preempt) returns", lambda: masters_of(api, ns, "one") == [nodes[0]], 20)
            assert masters_of(api, ns, "two") == [nodes[1]]
    finally:
        api.merge_patch(
            f"/api/v1/nodes/{nodes[0]}", {"metadata": {"labels": {"keepvip.io/maintenance": None}}}
        )


def test_deleting_the_masters_agent_pod_hands_over_before_it_exits(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    """Issue 16, part 2: SIGTERM (pod deleted, node shutting down, DaemonSet rolling) hands
    the node's VIPs over before the agent exits: the client sees the next node answer with
    no gap beyond the graceful handover, and the DaemonSet's new pod takes the VIP back
    (preempt)."""
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    responders(lab, index)
    log = tmp_path / "probe.log"
    with node_agents(control_plane, ns, cluster_lab), log.open("w") as out:
        post_vip(api, ns, "web", vip_spec(address(45), 85, nodes))
        wait_for(f"web: {nodes[0]} master", lambda: masters_of(api, ns, "web") == [nodes[0]], 60)
        lab.spawn(
            lab.client_ns,
            [sys.executable, "-m", "keepvip_tools.lab.probe", str(address(45)),
             "--every", "0.01", "--timeout", "0.1"],
            stdout=out,
        )  # fmt: skip
        time.sleep(1)
        (pod,) = [p for p in agent_pods(api, ns) if p["spec"]["nodeName"] == nodes[0]]
        api.delete(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
        wait_for(
            "a new agent pod on the node",
            lambda: any(
                p["spec"].get("nodeName") == nodes[0]
                and p["metadata"]["uid"] != pod["metadata"]["uid"]
                for p in agent_pods(api, ns)
            ),
            30,
        )
        wait_for("web back on the node (preempt)",
                 lambda: masters_of(api, ns, "web") == [nodes[0]], 60)  # fmt: skip
        time.sleep(1)
    seen = read_probe(log)
    gaps = [round(g, 3) for g in unanswered(seen)]
    answered = [b for _a, b in seen if b != "-"]
    print(f"client through the agent's SIGTERM and restart: gaps {gaps}")
    assert nodes[1] in answered and answered[-1] == nodes[0]
    assert max(gaps, default=0.0) < 0.3, "the handover left the client without an answer"


def preempt_off(api: Any, ns: str, name: str) -> None:
    """Turn preempt off once the preferred node is master: created with it off, the first
    master of three agents starting together is whichever timer runs out first."""
    api.merge_patch(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}", {"spec": {"preempt": False}})
    time.sleep(1)  # the agents apply it in place (no transition)
