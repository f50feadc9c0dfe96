"""LoadBalancer Services of class keepvip.io/vrrp on a real control plane: addresses from
VirtualIPPools, VirtualIPs owned by the Services, errors as Events and conditions, sharing.

The operator runs in-process (``keepvip_harness.operatorrun``) watching only the test's
namespace; the garbage collector of the real kube-controller-manager removes
a deleted Service's VirtualIP. Pools are cluster-scoped: each test's pools
are named uniquely, serve only the test's namespace and are deleted after it.
No agent runs here (kwok plays the agent pods): what is asserted is the API.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.clusterlab import app_daemonset, client_answer, dump_logs
from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane
from keepvip_harness.kubeapi import Vips, wait_for
from keepvip_harness.operatorrun import RunningOperator, operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError, Rest
from keepvip_harness.servicenet import ServiceNet
from keepvip_tools.lab.topology import VIP4
from keepvip_tools.lab.topology import Lab as NetLab

POOLS = "/apis/keepvip.io/v1alpha1/virtualippools"
CLASS = "keepvip.io/vrrp"
CONDITION = "keepvip.io/AddressAssigned"


@dataclass
class Lab:
    """The test's namespace, its pools and Services, through the admin's REST client."""

    api: Rest
    namespace: str
    vips: Vips
    pools: list[str] = field(default_factory=list)

    # -- pools --

    def pool(self, addresses: list[str], **spec: Any) -> str:
        name = f"kvt-lb-{secrets.token_hex(4)}"
        body = {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIPPool",
            "metadata": {"name": name},
            "spec": {"addresses": addresses, "namespaces": [self.namespace], **spec},
        }
        self.api.post(POOLS, body)
        self.pools.append(name)
        return name

    def patch_pool(self, name: str, spec: dict[str, Any]) -> None:
        self.api.merge_patch(f"{POOLS}/{name}", {"spec": spec})

    def pool_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.api.get(f"{POOLS}/{name}").get("status") or {}
        return status

    # -- Services --

    @property
    def services(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/services"

    def service(
        self,
        name: str,
        *,
        ports: tuple[int, ...] = (80,),
        cls: str | None = CLASS,
        type_: str = "LoadBalancer",
        target_port: int | None = None,
        traffic_policy: str | None = None,
        app: str | None = None,
        **annotations: str,
    ) -> dict[str, Any]:
        target = {"targetPort": target_port} if target_port else {}
        spec: dict[str, Any] = {
            "type": type_,
            **({"externalTrafficPolicy": traffic_policy} if traffic_policy else {}),
            "selector": {"app": app or name},
            "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP", **target} for p in ports],
        }
        if cls:
            spec["loadBalancerClass"] = cls
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "annotations": annotations},
            "spec": spec,
        }
        created: dict[str, Any] = self.api.post(self.services, body)
        return created

    def get_service(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.api.get(f"{self.services}/{name}")
        return got

    def delete_service(self, name: str) -> None:
        self.api.delete(f"{self.services}/{name}")

    def condition(self, name: str) -> tuple[str, str, str] | None:
        for c in self.get_service(name).get("status", {}).get("conditions") or []:
            if c["type"] == CONDITION:
                return c["status"], c["reason"], c["message"]
        return None

    def reason(self, name: str) -> str | None:
        c = self.condition(name)
        return c[1] if c else None

    def events(self, name: str, reason: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name},involvedObject.kind=Service,reason={reason}"
        items: list[dict[str, Any]] = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/events", fieldSelector=selector
        )["items"]
        return items

    def vip(self, name: str) -> dict[str, Any] | None:
        try:
            return self.vips.get(name)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def vip_names(self) -> set[str]:
        items = self.api.get(self.vips.base)["items"]
        return {i["metadata"]["name"] for i in items}


@pytest.fixture
def lab(
    control_plane: ControlPlane,
    virtualip_crd: dict[str, Any],
    virtualippool_crd: dict[str, Any],
    kube_namespace: str,
) -> Iterator[Lab]:
    api = control_plane.admin_rest()
    lab = Lab(api, kube_namespace, Vips(api, kube_namespace))
    yield lab
    for name in lab.pools:
        try:
            api.delete(f"{POOLS}/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def operator(control_plane: ControlPlane, lab: Lab) -> Iterator[RunningOperator]:
    settings = operator_settings(control_plane, lab.namespace)
    with running_operator(settings, lab.namespace, control_plane) as op:
        yield op


def assigned(lab: Lab, name: str) -> str:
    """Wait for the Service's address; the address."""
    seen: list[Any] = []

    def check() -> Any:
        seen[:] = [lab.condition(name), sorted(lab.vip_names())]
        c = seen[0]
        return c and c[0] == "True" and c

    try:
        cond = wait_for(f"{name} to get an address", check)
    except pytest.fail.Exception:
        pytest.fail(f"{name} got no address; its condition and the VirtualIPs: {seen}")
    vip = lab.vip(cond[2].rsplit("VirtualIP ", 1)[1].rstrip(")"))
    assert vip is not None
    address: str = vip["spec"]["addresses"][0]
    return address


def waiting(lab: Lab, name: str, reason: str) -> str:
    """Wait for the Service's failure condition and its Warning Event; the message."""
    cond = wait_for(
        f"{name}: {reason}", lambda: (c := lab.condition(name)) and c[1] == reason and c
    )
    assert cond[0] == "False"
    events = wait_for(f"a {reason} Event on {name}", lambda: lab.events(name, reason))
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == cond[2]
    message: str = cond[2]
    return message


# -- tests --------------------------------------------------------------------------------------


def test_a_service_of_the_class_gets_an_address_and_a_virtualip_with_the_pools_defaults(
    control_plane: ControlPlane, lab: Lab, operator: RunningOperator
) -> None:
    pool = lab.pool(
        ["192.0.2.20-192.0.2.21"],
        advertInterval="100ms",
        priority=90,
        nodes=[{"name": "kv-node-1", "priority": 150}],
        preempt=True,
        fencing="strict",
    )
    svc = lab.service("web", ports=(80, 443))
    assert assigned(lab, "web") == "192.0.2.20"
    vip = lab.vip("lb-web")
    assert vip is not None
    assert vip["spec"]["addresses"] == ["192.0.2.20"]
    for key, value in {
        "advertInterval": "100ms",
        "priority": 90,
        "nodes": [{"name": "kv-node-1", "priority": 150}],
        "preempt": True,
        "fencing": "strict",
        "serviceRef": {"name": "web", "sharedWith": None},
    }.items():
        got = vip["spec"][key]
        if isinstance(value, dict):
            got = {k: got.get(k) for k in value}
        assert got == value, key
    meta = vip["metadata"]
    assert meta["labels"]["keepvip.io/pool"] == pool
    assert meta["labels"]["keepvip.io/service"] == "web"
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Service",
        "web",
        svc["metadata"]["uid"],
        True,
    )
    # A hand edit of the operator's VirtualIP is put back (the pool's settings rule).
    lab.vips.patch_spec("lb-web", {"priority": 10})
    wait_for(
        "the pool's priority back on lb-web",
        lambda: (v := lab.vip("lb-web")) and v["spec"].get("priority") == 90,
    )
    events = wait_for("an AddressAssigned Event", lambda: lab.events("web", "AddressAssigned"))
    assert events[0]["type"] == "Normal" and "192.0.2.20" in events[0]["message"]
    # The VirtualIP is an ordinary one for the rest of the operator: the node agents run it.
    wait_for(
        "the node agent DaemonSet",
        lambda: lab.api.get(f"/apis/apps/v1/namespaces/{lab.namespace}/daemonsets/keepvip-agent"),
    )
    wait_for(
        "lb-web judged free of conflicts",
        lambda: any(
            c["type"] == "Conflict" and c["status"] == "False"
            for c in (lab.vip("lb-web").get("status") or {}).get("conditions") or []
        ),
    )
    status = wait_for(
        "the pool's status", lambda: (s := lab.pool_status(pool)).get("assigned") == 1 and s
    )
    assert status == {"assigned": 1, "available": 1, "services": [f"{lab.namespace}/web"]}
    # Published on the Service by the VirtualIP's serviceRef (issue 7 part 1).
    wait_for(
        "the address in status.loadBalancer.ingress",
        lambda: [i.get("ip") for i in lab.get_service("web")["status"]
                 .get("loadBalancer", {}).get("ingress") or []] == ["192.0.2.20"],
    )  # fmt: skip


def test_other_classes_and_types_are_ignored(lab: Lab, operator: RunningOperator) -> None:
    lab.pool(["192.0.2.30-192.0.2.39"])
    lab.service("theirs", cls="example.com/other-lb")
    lab.service("classless", cls=None)  # we are not the default load balancer here
    lab.service("internal", cls=None, type_="ClusterIP")
    lab.service("ours")  # created last: once it has its address, the others were judged
    assigned(lab, "ours")
    time.sleep(1.0)
    assert lab.vip_names() == {"lb-ours"}
    for name in ("theirs", "classless", "internal"):
        assert lab.condition(name) is None, name
    # A Service that stops being a LoadBalancer loses its VirtualIP and the condition.
    lab.api.merge_patch(f"{lab.services}/ours", {"spec": {"type": "ClusterIP"}})
    wait_for("lb-ours gone", lambda: lab.vip_names() == set())
    wait_for("the condition withdrawn", lambda: lab.condition("ours") is None)


def test_exhausted_pool_then_the_freed_address_goes_to_the_waiting_service(
    lab: Lab, operator: RunningOperator
) -> None:
    pool = lab.pool(["192.0.2.40"])
    lab.service("first")
    assert assigned(lab, "first") == "192.0.2.40"
    lab.service("second")
    message = waiting(lab, "second", "PoolExhausted")
    assert pool in message and "in use" in message
    assert lab.vip("lb-second") is None
    # Deleting the first Service frees the address (the garbage collector deletes its
    # VirtualIP); the waiting Service gets it without any edit of its own.
    lab.delete_service("first")
    assert assigned(lab, "second") == "192.0.2.40"
    wait_for("lb-first to be gone", lambda: lab.vip("lb-first") is None)
    assert lab.vip_names() == {"lb-second"}
    wait_for(
        "the pool's status",
        lambda: lab.pool_status(pool).get("services") == [f"{lab.namespace}/second"],
    )


def test_requested_addresses_outside_the_pools_or_taken_are_refused(
    lab: Lab, operator: RunningOperator
) -> None:
    lab.pool(["192.0.2.50-192.0.2.52"])
    lab.service("outside", **{"keepvip.io/load-balancer-ips": "198.51.100.200"})
    message = waiting(lab, "outside", "AddressNotInPool")
    assert "198.51.100.200" in message
    # An address of the pool held by a VirtualIP written by hand.
    lab.vips.create("manual", addresses=["192.0.2.50/24"])
    lab.service("wants-manual", **{"keepvip.io/load-balancer-ips": "192.0.2.50"})
    message = waiting(lab, "wants-manual", "AddressInUse")
    assert f"VirtualIP {lab.namespace}/manual" in message
    # Requested and free: granted; automatic assignment skips what is taken.
    lab.service("requested", **{"keepvip.io/load-balancer-ips": "192.0.2.52"})
    assert assigned(lab, "requested") == "192.0.2.52"
    lab.service("auto")
    assert assigned(lab, "auto") == "192.0.2.51"
    # Taken by another Service that does not share.
    lab.service("copycat", ports=(8080,), **{"keepvip.io/load-balancer-ips": "192.0.2.52"})
    message = waiting(lab, "copycat", "AddressInUse")
    assert f"Service {lab.namespace}/requested" in message and "allow-shared-ip" in message
    # The hand-written VirtualIP goes: the Service waiting for its address gets it.
    lab.vips.delete("manual")
    assert assigned(lab, "wants-manual") == "192.0.2.50"


def test_a_pool_shrunk_under_a_live_service(lab: Lab, operator: RunningOperator) -> None:
    pool = lab.pool(["192.0.2.60-192.0.2.61"])
    lab.service("live")
    assert assigned(lab, "live") == "192.0.2.60"
    before = lab.vip("lb-live")
    assert before is not None
    lab.patch_pool(pool, {"addresses": ["192.0.2.61"]})
    cond = wait_for(
        "AddressOutsidePool",
        lambda: (c := lab.condition("live")) and c[1] == "AddressOutsidePool" and c,
    )
    assert cond[0] == "True"  # it keeps serving
    events = wait_for("a Warning Event", lambda: lab.events("live", "AddressOutsidePool"))
    assert events[0]["type"] == "Warning"
    after = lab.vip("lb-live")
    assert after is not None and after["spec"] == before["spec"]
    wait_for("pool status without it", lambda: lab.pool_status(pool).get("assigned") == 0)
    # Deleting its VirtualIP re-allocates from the pool as it is now.
    lab.vips.delete("lb-live")
    wait_for("a new address", lambda: (c := lab.condition("live")) and c[1] == "AddressAssigned")
    assert assigned(lab, "live") == "192.0.2.61"


def test_services_share_one_virtualip_on_distinct_ports(
    lab: Lab, operator: RunningOperator
) -> None:
    lab.pool(["192.0.2.70-192.0.2.71"])
    share = {"keepvip.io/allow-shared-ip": "team-a", "keepvip.io/load-balancer-ips": "192.0.2.70"}
    http = lab.service("http", ports=(80,), **share)
    dns = lab.service("dns", ports=(53, 8053), **share)
    assert assigned(lab, "http") == assigned(lab, "dns") == "192.0.2.70"
    vip = wait_for(
        "one VirtualIP for both",
        lambda: (
            (v := lab.vip("lb-http") or lab.vip("lb-dns"))
            and v["spec"]["serviceRef"].get("sharedWith")
            and v
        ),
    )
    name = vip["metadata"]["name"]
    assert lab.vip_names() == {name}
    assert {k: vip["spec"]["serviceRef"].get(k) for k in ("name", "sharedWith")} == {
        "name": "dns",
        "sharedWith": ["http"],
    }
    owners = {o["uid"]: o["controller"] for o in vip["metadata"]["ownerReferences"]}
    assert owners == {http["metadata"]["uid"]: False, dns["metadata"]["uid"]: False}
    # Overlapping ports, or another key, are refused with the reason.
    lab.service("web", ports=(80,), **share)
    assert "port 80/TCP overlaps" in waiting(lab, "web", "AddressInUse")
    other = {**share, "keepvip.io/allow-shared-ip": "team-b"}
    lab.service("other", ports=(9000,), **other)
    assert "sharing key" in waiting(lab, "other", "AddressInUse")
    lab.delete_service("other")  # created in the same second as web, and first by name
    # One leaves: the VirtualIP stays for the other, which is no longer shared.
    lab.delete_service("dns")
    wait_for(
        "serviceRef without dns",
        lambda: (v := lab.vip(name)) and v["spec"]["serviceRef"] == {
            **v["spec"]["serviceRef"], "name": "http"} and "sharedWith" not in v["spec"]["serviceRef"],
    )  # fmt: skip
    assert lab.vip(name)["spec"]["addresses"] == ["192.0.2.70"]  # type: ignore[index]
    # http (80) and web (80) overlap: web still waits; the last sharer leaving frees it for web.
    lab.delete_service("http")
    assert assigned(lab, "web") == "192.0.2.70"
    wait_for(f"{name} gone, lb-web alone", lambda: lab.vip_names() == {"lb-web"})


# -- end to end: agents, the kube-proxy stand-in, a client ----------------------------------------


def test_end_to_end_the_pool_address_is_elected_and_reaches_the_backend(
    control_plane: ControlPlane,
    lab: Lab,
    cluster_lab: tuple[NetLab, dict[str, int]],
    tmp_path: Path,
) -> None:
    """A LoadBalancer Service gets the lab's VIP from a pool; the operator's agents (real
    processes in the lab's node namespaces, via the pod launcher) elect a master, which holds
    the address; the client reaches the app behind the Service through VIP:8080.

    kube-proxy cannot run here: servicenet.ServiceNet DNATs each node namespace's traffic
    for the Service's status.loadBalancer.ingress address and port 8080 to the Service's
    Ready endpoints, the way kube-proxy would. The app answers on port 80 only, so an
    answer on 8080 went through that DNAT.
    """
    netlab, index = cluster_lab
    ns, api, nodes = lab.namespace, lab.api, list(index)
    lab.pool(
        [str(VIP4)],
        advertInterval="100ms",
        preempt=True,
        nodes=[{"name": n, "priority": p} for n, p in zip(nodes, (150, 120, 100), strict=True)],
    )
    flags = tmp_path / "ready"
    flags.mkdir()
    for n in nodes:
        (flags / n).touch()
    settings = replace(
        operator_settings(control_plane, ns), extra_pod_labels={LAUNCH_LABEL: "true"}
    )
    mapping = {n: netlab.node_ns(i) for n, i in index.items()}
    with (
        running_operator(settings, ns, control_plane),
        PodLauncher(control_plane, mapping) as launcher,
    ):
        try:
            api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", app_daemonset(ns, flags))
            lab.service("web", ports=(8080,), target_port=80, traffic_policy="Local")
            assert assigned(lab, "web") == str(VIP4)
            with ServiceNet(api, ns, ["web"], mapping):
                wait_for(
                    "the VIP in status.loadBalancer.ingress",
                    lambda: [i.get("ip") for i in lab.get_service("web")["status"]
                             .get("loadBalancer", {}).get("ingress") or []] == [str(VIP4)],
                )  # fmt: skip

                def masters() -> list[str]:
                    vip = lab.vip("lb-web") or {}
                    entries = (vip.get("status") or {}).get("nodes") or []
                    return sorted(e["name"] for e in entries if e["state"] == "Master")

                wait_for(f"{nodes[0]} master", lambda: masters() == [nodes[0]], 90)
                assert netlab.holders() == [index[nodes[0]]]
                # Local: the master's node serves from its own endpoint.
                answer = wait_for(
                    "the client through VIP:8080", lambda: client_answer(netlab, 8080), 20
                )
                assert answer == nodes[0], answer

                # The master's node loses its only Ready endpoint: the VIP moves to a node
                # that has one, and comes back (preempt) when it is Ready again.
                failed_at = time.monotonic()
                (flags / nodes[0]).unlink()
                moved = wait_for(
                    f"{nodes[1]} answering through VIP:8080",
                    lambda: client_answer(netlab, 8080) == nodes[1] and time.monotonic(),
                    20,
                )
                print(f"app not Ready on {nodes[0]} -> {nodes[1]} answering: "
                      f"{moved - failed_at:.2f}s (includes the 1 s readiness probe)")  # fmt: skip
                assert netlab.holders() == [index[nodes[1]]]
                (flags / nodes[0]).touch()
                wait_for(f"{nodes[0]} master again", lambda: masters() == [nodes[0]], 30)
                assert wait_for("the client", lambda: client_answer(netlab, 8080) == nodes[0], 15)
        finally:
            dump_logs(control_plane, launcher, ns)


def client_answer_at(netlab: NetLab, address: str, port: int) -> str | None:
    """The node that answers ``address:port`` for the lab's client; None if none does."""
    out = netlab.exec(
        netlab.client_ns, sys.executable, "-m", "keepvip_tools.lab.probe", address,
        "--port", str(port), "--duration", "0.01", check=False,
    )  # fmt: skip
    who = [line.split()[1] for line in out.splitlines() if line.strip()]
    return who[-1] if who and who[-1] != "-" else None


def test_cluster_policy_services_share_one_router_and_each_answers_on_its_own_address(
    control_plane: ControlPlane,
    lab: Lab,
    cluster_lab: tuple[NetLab, dict[str, int]],
    tmp_path: Path,
) -> None:
    """Eight Services (externalTrafficPolicy Cluster) of a pool with sharedRouter: one
    VirtualIP, one VRID, one set of agents; the master holds all eight addresses; each
    Service is published with its own address only, and the client reaches each Service
    through its own address and port (ServiceNet DNATs only what a Service publishes, so
    another Service's port on that address gets no answer)."""
    netlab, index = cluster_lab
    ns, api, nodes = lab.namespace, lab.api, list(index)
    count = 8
    addresses = [f"192.0.2.{60 + i}" for i in range(count)]
    pool = lab.pool([f"{addresses[0]}-{addresses[-1]}"], sharedRouter=True, advertInterval="100ms")
    flags = tmp_path / "ready"
    flags.mkdir()
    for n in nodes:
        (flags / n).touch()
    settings = replace(
        operator_settings(control_plane, ns), extra_pod_labels={LAUNCH_LABEL: "true"}
    )
    mapping = {n: netlab.node_ns(i) for n, i in index.items()}
    names = [f"s{i}" for i in range(count)]
    with (
        running_operator(settings, ns, control_plane),
        PodLauncher(control_plane, mapping) as launcher,
    ):
        try:
            api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", app_daemonset(ns, flags))
            for i, name in enumerate(names):
                lab.service(name, ports=(8081 + i,), target_port=80, app="web")

            def ingress(name: str) -> list[str]:
                lb = lab.get_service(name).get("status", {}).get("loadBalancer", {})
                return [i.get("ip") for i in lb.get("ingress") or []]

            published = wait_for(
                "each Service published with one address of its own",
                lambda: (
                    (got := {n: ingress(n) for n in names})
                    and all(len(v) == 1 for v in got.values())
                    and got
                ),
                60,
            )
            assert sorted(a for (a,) in published.values()) == addresses
            router = f"lb-pool-{pool}-ipv4-0"
            assert lab.vip_names() == {router}
            vip = lab.vip(router) or {}
            assert vip["spec"]["serviceRef"]["addressPerService"] is True
            assert len(vip["spec"]["addresses"]) == count
            for name in names:
                assert lab.reason(name) == "AddressAssigned"
                assert router in (lab.condition(name) or ("", "", ""))[2]

            def masters() -> list[str]:
                entries = ((lab.vip(router) or {}).get("status") or {}).get("nodes") or []
                return sorted(e["name"] for e in entries if e["state"] == "Master")

            (master,) = wait_for("one master for the router", masters, 90)
            vrid = (lab.vip(router) or {})["status"]["virtualRouterID"]
            print(f"{count} Services on one router, VRID {vrid}, master {master}")
            for address in addresses:
                assert netlab.holders(ip_address(address)) == [index[master]], address
            with ServiceNet(api, ns, names, mapping):
                for i, name in enumerate(names):
                    address = published[name][0]
                    wait_for(
                        f"{name} through {address}:{8081 + i}",
                        lambda a=address, p=8081 + i: client_answer_at(netlab, a, p),
                        20,
                    )
                    other = 8081 + (i + 1) % count  # another Service's port: not published here
                    assert client_answer_at(netlab, address, other) is None, (name, other)

                # s0 turns Local: it leaves the router with its address, for a VirtualIP
                # (and VRID) of its own gated on its node's endpoints; the others stay.
                moved = published["s0"][0]
                lab.api.merge_patch(
                    f"{lab.services}/s0", {"spec": {"externalTrafficPolicy": "Local"}}
                )
                own = wait_for(
                    "s0 on a VirtualIP of its own",
                    lambda: (v := lab.vip("lb-s0")) and v["spec"]["addresses"] == [moved] and v,
                    30,
                )
                ref = own["spec"]["serviceRef"]
                assert ref["name"] == "s0" and "sharedWith" not in ref
                assert not ref.get("addressPerService")
                wait_for(
                    "the router without s0",
                    lambda: moved not in ((lab.vip(router) or {}).get("spec") or {})["addresses"],
                )
                wait_for(
                    "lb-s0 with its own VRID and a master",
                    lambda: (
                        (st := (lab.vip("lb-s0") or {}).get("status") or {})
                        and st.get("virtualRouterID") not in (None, vrid)
                        and any(e["state"] == "Master" for e in st.get("nodes") or [])
                    ),
                    90,
                )
                assert ingress("s0") == [moved]
                wait_for(
                    f"s0 through {moved}:8081", lambda: client_answer_at(netlab, moved, 8081), 20
                )
                assert wait_for(
                    "s1 still through its address",
                    lambda: client_answer_at(netlab, published["s1"][0], 8082),
                    20,
                )
        finally:
            dump_logs(control_plane, launcher, ns)
