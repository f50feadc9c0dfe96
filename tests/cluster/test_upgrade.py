"""Upgrading from the per-VirtualIP layout (keepvip before 0.2) to the node agents, with clients probing.

The previous release really runs: its operator (a process, from git, see
``keepvip_harness.previous``) renders one DaemonSet per VirtualIP and the pod
launcher runs its agents (``keepvip-agent --virtualip``) in the lab's node
namespaces. Then, as ``helm upgrade`` does, the old operator stops and this
operator starts; a client probes every VIP every 20 ms throughout and a
sampler records which nodes hold each address.

Proven: the upgrade completes by itself (no old DaemonSet, pod, Role or
RoleBinding left; one node agent pod per node; every VirtualIP Ready with a
master and no ``Upgrading`` condition); no address is ever held by two nodes;
each VIP answers from at most two nodes in sequence (it moves at most once);
and the longest gap a client sees is printed (asserted generously: it is
about one master-down interval plus the operator's reaction, see
docs/operator.md).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from keepvip_harness import previous
from keepvip_harness.clusterlab import dump_logs
from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd, wait_for
from keepvip_harness.labdaemons import answerers, read_probe, unanswered
from keepvip_harness.nodeagents import answer, masters_of, post_vip, vip_spec
from keepvip_harness.operatorrun import operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError
from keepvip_tools.lab.topology import Lab

VIPS = {"web": 71, "db": 72, "cache": 73}
OLD_PORTS = 30000
PROBE_EVERY = 0.02
LONGEST_GAP = 10.0
"""Generous: measured gaps are about a master-down interval (0.7 s at 200 ms adverts) plus the
operator noticing the last old pod gone (its resync runs every second here)."""


def address(name: str) -> IPv4Address:
    return IPv4Address(f"192.0.2.{VIPS[name]}")


def old_objects(api: object, ns: str, plural: str, group: str = "/api/v1") -> list[str]:
    items = api.get(  # type: ignore[attr-defined]
        f"{group}/namespaces/{ns}/{plural}", labelSelector=previous.VIRTUALIP_LABEL
    )["items"]
    return sorted(o["metadata"]["name"] for o in items)


@contextlib.contextmanager
def holders_sampled(lab: Lab, every: float = 0.25) -> Iterator[dict[str, int]]:
    """The most nodes that held each address at one sample, while the block runs."""
    most = dict.fromkeys(VIPS, 0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            for name in VIPS:
                most[name] = max(most[name], len(lab.holders(address(name))))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield most
    finally:
        stop.set()
        thread.join(10)


def assert_old_rbac_gone(api: object, ns: str) -> None:
    for kind in ("roles", "rolebindings"):
        for name in VIPS:
            with pytest.raises(ApiError) as gone:
                api.get(  # type: ignore[attr-defined]
                    f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}/"
                    f"{previous.old_name(name)}"
                )
            assert gone.value.status == 404


def assert_moved_at_most_once(logs: dict[str, Path], most: dict[str, int], master: str) -> None:
    report = {}
    for name, log in logs.items():
        seen = read_probe(log)
        report[name] = (answerers(seen), round(max(unanswered(seen), default=0.0), 3))
    print(f"per VIP (answering nodes, longest gap s): {report}")
    print(f"most holders of each address at once: {most}")
    for name, (nodes_seen, gap) in report.items():
        assert nodes_seen and nodes_seen[-1] == master, f"{name}: {nodes_seen}"
        assert len(nodes_seen) <= 2, f"{name} moved more than once: {nodes_seen}"
        assert gap < LONGEST_GAP, f"{name}: the client saw no answer for {gap}s"
    assert max(most.values()) == 1, f"an address was held by two nodes at once: {most}"


def test_the_upgrade_replaces_per_virtualip_agents_and_moves_each_vip_at_most_once(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    ensure_crd(control_plane)
    bin_dir = previous.extract(tmp_path / "previous")
    for name, i in index.items():
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])
    old_settings = {
        "kubeconfig": str(control_plane.admin_kubeconfig),
        "watch_namespaces": ns,
        "agent_image": previous.IMAGE,
        "extra_pod_labels": f"{LAUNCH_LABEL}=true",
        "agent_metrics_port": str(OLD_PORTS + (int(ns[-4:], 16) % 500) * 8),
        "agent_metrics_ports": "8",
        "resync_interval": "1",
    }
    mapping = {n: lab.node_ns(i) for n, i in index.items()}
    old_log = tmp_path / "previous-operator.log"
    with PodLauncher(control_plane, mapping, image_paths={previous.IMAGE: bin_dir}) as launcher:
        try:
            # -- the previous release, serving three VirtualIPs ------------------------------
            with previous.operator_process(bin_dir, old_settings, old_log):
                for name, vrid in VIPS.items():
                    post_vip(api, ns, name, vip_spec(address(name), vrid, nodes))
                for name in VIPS:
                    wait_for(
                        f"{name}: {nodes[0]} master under the previous release",
                        lambda name=name: masters_of(api, ns, name) == [nodes[0]],
                        120,
                    )
                    assert wait_for(f"{name} answers", lambda n=name: answer(lab, address(n)), 20)
                assert old_objects(api, ns, "daemonsets", "/apis/apps/v1") == sorted(
                    previous.old_name(n) for n in VIPS
                )
                assert len(old_objects(api, ns, "pods")) == 3 * len(VIPS)
            # The old operator is gone (as after `helm upgrade` replaced it); its agents serve on.

            # -- the upgrade, with clients probing every VIP ---------------------------------
            logs = {name: tmp_path / f"probe-{name}.log" for name in VIPS}
            probes = []
            for name, log in logs.items():
                out = log.open("w")
                probes.append(out)
                lab.spawn(
                    lab.client_ns,
                    [sys.executable, "-m", "keepvip_tools.lab.probe", str(address(name)),
                     "--every", str(PROBE_EVERY), "--timeout", "0.1"],
                    stdout=out,
                )  # fmt: skip
            settings = replace(
                operator_settings(control_plane, ns),
                extra_pod_labels={LAUNCH_LABEL: "true"},
                agent_log_level="info",
            )
            started = time.monotonic()
            with holders_sampled(lab) as most, running_operator(settings, ns, control_plane):
                wait_for(
                    "no per-VirtualIP DaemonSet or pod left",
                    lambda: (
                        not old_objects(api, ns, "daemonsets", "/apis/apps/v1")
                        and not old_objects(api, ns, "pods")
                    ),
                    180,
                )

                def done(name: str) -> bool:
                    vip = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}")
                    status = vip.get("status") or {}
                    conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
                    return bool(
                        status.get("master")
                        and conds.get("Ready") == "True"
                        and "Upgrading" not in conds
                    )

                for name in VIPS:
                    wait_for(f"{name}: Ready under the node agents", lambda n=name: done(n), 60)
                took = time.monotonic() - started
                time.sleep(2)  # the probes see the settled state too
                pods = api.get(
                    f"/api/v1/namespaces/{ns}/pods",
                    labelSelector="app.kubernetes.io/component=node-agent",
                )["items"]
                assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes)
                assert_old_rbac_gone(api, ns)
                # Deleting works after the upgrade (the old operator's finalizer is released).
                for name in VIPS:
                    api.delete(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}")
                for name in VIPS:
                    wait_for(
                        f"{name} deleted",
                        lambda n=name: (
                            not any(
                                v["metadata"]["name"] == n
                                for v in api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips")[
                                    "items"
                                ]
                            )
                        ),
                        30,
                    )
                    wait_for(f"{name} released", lambda n=name: not lab.holders(address(n)), 15)
            for out in probes:
                out.close()
            print(f"upgrade took {took:.1f}s")
            assert_moved_at_most_once(logs, most, nodes[0])
        finally:
            dump_logs(control_plane, launcher, ns)
            print("----- the previous operator\n" + old_log.read_text()[-3000:])
