"""A VirtualIP in front of a Service (``spec.serviceRef``), on the real control plane and kernel.

The operator runs in-process and publishes the VirtualIP's address on the
Service; the agents run as real ``keepvip-agent`` processes in lab node
namespaces (the pod launcher, as in ``test_agent_kubernetes.py``) and gate
each node on the Service's EndpointSlices, which the real
kube-controller-manager derives from the app pods' readiness. kube-proxy is
not running (it cannot here): ``servicenet.ServiceNet`` DNATs VIP:8080 to
the endpoints in each node namespace the way kube-proxy would. The app
answers on port 80 only, so an answer on 8080 went through that DNAT.

Proven here: (a) the address goes into ``spec.externalIPs`` next to the
user's own, the client reaches the backend through VIP:port, and deleting
the VirtualIP takes it off the Service and off every node; (b) with
``externalTrafficPolicy: Local`` the VIP leaves a node whose endpoint turns
not Ready for one that has a Ready endpoint (timed; the benchmark
``benchmarks/cluster.py --only service`` gives medians); (c) a Service that
does not exist yet is a condition and an Event, and a LoadBalancer Service
created later gets the address in ``status.loadBalancer.ingress``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from keepvip_harness.appservice import PORT, SliceWatch, service
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
from keepvip_harness.kubeapi import GROUP_PATH, Vips, forbidden, wait_for
from keepvip_harness.operatorrun import RunningOperator
from keepvip_harness.rest import ApiError
from keepvip_harness.servicenet import ServiceNet
from keepvip_tools.lab.topology import VIP4, Lab

CLAIM = f"published.keepvip.io/{NAME}"
USERS_OWN = "198.51.100.77"


def svc_path(ns: str, name: str = "web") -> str:
    return f"/api/v1/namespaces/{ns}/services/{name}"


def ready_flags(tmp_path: Path, nodes: list[str]) -> Path:
    flags = tmp_path / "ready"
    flags.mkdir()
    for n in nodes:
        (flags / n).touch()
    return flags


def lab_netns(lab: Lab, index: dict[str, int]) -> dict[str, str]:
    return {n: lab.node_ns(i) for n, i in index.items()}


def ready_endpoints(cp: ControlPlane, ns: str, name: str = "web") -> dict[str, bool]:
    """nodeName -> Ready, from the Service's EndpointSlices."""
    slices = cp.admin_rest().get(
        f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
        labelSelector=f"kubernetes.io/service-name={name}",
    )["items"]
    return {
        ep.get("nodeName"): bool((ep.get("conditions") or {}).get("ready"))
        for s in slices
        for ep in s.get("endpoints") or []
    }


# -- (a) externalIPs, Cluster policy, end to end ----------------------------------------------


def test_vip_in_front_of_a_service_published_reached_and_withdrawn(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    lab, index = cluster_lab
    ns, api, nodes = kube_namespace, control_plane.admin_rest(), list(index)
    api.post(f"/api/v1/namespaces/{ns}/services", service(externalIPs=[USERS_OWN]))
    app = app_daemonset(ns, ready_flags(tmp_path, nodes))
    spec = base_spec(nodes, serviceRef={"name": "web"})
    with (
        ServiceNet(api, ns, ["web"], lab_netns(lab, index)) as net,
        deployed(control_plane, ns, cluster_lab, spec, app),
    ):
        # The operator adds the address next to the user's own and says it did.
        wait_for(
            "the VIP in spec.externalIPs",
            lambda: api.get(svc_path(ns))["spec"].get("externalIPs") == [USERS_OWN, str(VIP4)],
            20,
        )
        meta = api.get(svc_path(ns))["metadata"]
        assert meta["annotations"][CLAIM] == str(VIP4) and meta["labels"][CLAIM] == "true"
        wait_for("ServicePublished", lambda: condition(control_plane, ns, "ServicePublished"), 20)
        assert condition(control_plane, ns, "ServicePublished") == "True"
        assert events(control_plane, ns, "ServicePublished")

        # Agents gate on the endpoints: all three Ready, so the preferred node is master.
        wait_for("3 Ready endpoints", lambda: all(ready_endpoints(control_plane, ns).values())
                 and len(ready_endpoints(control_plane, ns)) == 3, 60)  # fmt: skip
        wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
        assert lab.holders() == [index[nodes[0]]]
        answer = wait_for("the client through VIP:8080", lambda: client_answer(lab, PORT), 15)
        assert answer in nodes, answer
        assert net.rules(nodes[0]), "the kube-proxy stand-in programmed the master's node"
        # Cluster policy: every node may answer behind the VIP (kube-proxy spreads).
        seen = {client_answer(lab, PORT) for _ in range(30)}
        assert seen - {None} <= set(nodes) and len(seen - {None}) >= 2, seen

        # The agent's RBAC: its own Service by name, nothing else.
        agent_rbac_reaches_only_the_named_service(control_plane, ns)

        # Deleting the VirtualIP: off the Service (the user's entry stays), off every node.
        api.delete(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{NAME}")
        wait_for(
            "the VIP off the Service",
            lambda: api.get(svc_path(ns))["spec"].get("externalIPs") == [USERS_OWN],
            30,
        )
        meta = api.get(svc_path(ns))["metadata"]
        assert CLAIM not in (meta.get("annotations") or {})
        assert CLAIM not in (meta.get("labels") or {})
        wait_for("no node holding the VIP", lambda: lab.holders() == [] or None, 30)
        # The client's ARP entry may still name the old master, whose kube-proxy stand-in
        # keeps the Service's externalIPs rule until it sees the update (a CI run saw it).
        wait_for("no answer through the VIP", lambda: client_answer(lab, PORT) is None, 10)


def agent_rbac_reaches_only_the_named_service(cp: ControlPlane, ns: str) -> None:
    """The node agents read Services and EndpointSlices only in the namespace of a VirtualIP
    that fronts one (the operator's per-namespace grant: one Role for every VirtualIP
    there, so Services are not narrowed by name), and write none."""
    from kubernetes import client

    with cp.service_account_client(ns, "keepvip-agent") as sa:
        core, discovery = client.CoreV1Api(sa), client.DiscoveryV1Api(sa)
        listed = core.list_namespaced_service(ns, field_selector="metadata.name=web")
        assert [s.metadata.name for s in listed.items] == ["web"]
        assert core.read_namespaced_service("web", ns).metadata.name == "web"
        discovery.list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name in (web)"
        )
        assert forbidden(core.read_namespaced_service, "kubernetes", "default")
        assert forbidden(
            core.patch_namespaced_service, "web", ns, {"spec": {"externalIPs": ["192.0.2.99"]}}
        )
        assert forbidden(discovery.list_endpoint_slice_for_all_namespaces)


# -- (b) externalTrafficPolicy Local: the VIP follows the Ready endpoints ---------------------


def test_local_policy_moves_the_vip_to_a_node_with_a_ready_endpoint(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    tmp_path: Path,
) -> None:
    lab, index = cluster_lab
    ns, api, nodes = kube_namespace, control_plane.admin_rest(), list(index)
    # Local needs an externally reachable type to be accepted before externalIPs exist.
    api.post(
        f"/api/v1/namespaces/{ns}/services",
        service(type_="NodePort", externalTrafficPolicy="Local"),
    )
    flags = ready_flags(tmp_path, nodes)
    spec = base_spec(nodes, serviceRef={"name": "web"})
    watch = SliceWatch(control_plane, ns)
    try:
        with (
            ServiceNet(api, ns, ["web"], lab_netns(lab, index)),
            deployed(control_plane, ns, cluster_lab, spec, app_daemonset(ns, flags)),
        ):
            wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 60)
            assert wait_for("the client", lambda: client_answer(lab, PORT), 15) == nodes[0]

            failed_at = time.monotonic()
            (flags / nodes[0]).unlink()  # the master's endpoint turns not Ready
            moved = wait_for(
                f"{nodes[1]} answering",
                lambda: client_answer(lab, PORT) == nodes[1] and time.monotonic(),
                20,
            )
            seen = watch.first_not_ready(nodes[0], failed_at)
            assert seen is not None, "the EndpointSlice update was seen"
            print(
                f"endpoint not Ready in the API -> new node answering: {moved - seen:.2f}s "
                f"(app failed -> answering: {moved - failed_at:.2f}s; bound 10s)"
            )
            assert moved - seen < 10
            entry = status_nodes(control_plane, ns)[nodes[0]]
            assert entry["state"] == "Fault"
            assert any("serviceRef: Service web: 0 Ready endpoint(s)" in f for f in entry["faults"])
            assert lab.holders() == [index[nodes[1]]]

            # Ready again: preempt brings it back to the preferred node.
            (flags / nodes[0]).touch()
            wait_for(f"{nodes[0]} master", lambda: masters(control_plane, ns) == [nodes[0]], 30)
            assert wait_for("the client", lambda: client_answer(lab, PORT) == nodes[0], 15)
    finally:
        watch.stop()


# -- (c) a Service that does not exist yet -----------------------------------------------------


def test_a_missing_service_is_a_condition_until_it_appears(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    """No agents needed: only the operator's side (kwok plays the agent pods)."""
    ns, api = vips.namespace, control_plane.admin_rest()
    vips.create("web", addresses=["192.0.2.90/24"], serviceRef={"name": "late"})

    def published() -> dict[str, Any] | None:
        return vips.condition("web", "ServicePublished")

    cond = wait_for("ServicePublished", published, 20)
    assert (cond["status"], cond["reason"]) == ("False", "ServiceNotFound"), cond
    assert "Service late not found" in cond["message"]
    assert wait_for("a ServiceNotFound Event", lambda: vips.events("web", "ServiceNotFound"), 10)
    assert vips.condition("web", "Ready") is not None, "the rest of the status is written"

    api.post(f"/api/v1/namespaces/{ns}/services", service("late", type_="LoadBalancer"))
    wait_for(
        "the address in status.loadBalancer.ingress",
        lambda: (
            (api.get(svc_path(ns, "late")).get("status") or {})
            .get("loadBalancer", {})
            .get("ingress")
            == [{"ip": "192.0.2.90", "ipMode": "VIP"}]
        ),
        20,
    )
    wait_for("ServicePublished=True", lambda: (published() or {}).get("status") == "True", 20)
    assert "externalIPs" not in api.get(svc_path(ns, "late"))["spec"]

    vips.delete("web")
    wait_for(
        "the ingress entry withdrawn",
        lambda: (
            not (api.get(svc_path(ns, "late")).get("status") or {})
            .get("loadBalancer", {})
            .get("ingress")
        ),
        20,
    )
    meta = api.get(svc_path(ns, "late"))["metadata"]
    assert CLAIM not in (meta.get("annotations") or {})
    wait_for("the VirtualIP gone (finalizer released)", lambda: _gone(vips), 20)


def _gone(vips: Vips) -> bool:
    try:
        vips.get("web")
    except ApiError as exc:
        return exc.status == 404
    return False
