"""Issue 15: in a shared cluster, addresses are granted and commands are the admin's choice.

A real ServiceAccount that may only create and update VirtualIPs in its
namespace (``keepvip_harness.tenancy.Tenant``) writes them; the operator runs
in-process trusting no namespace but one labelled ``keepvip.test/trusted=yes``,
with address grants on and no pool; the real agents run in the lab's node
namespaces (the pod launcher). Every VirtualIP carries its own
``virtualRouterID``, so an agent without the acceptance gate would bind it at
once: that nothing is bound, no status entry written and no command run is
checked on the nodes themselves. Then the admin grants a pool and trusts the
namespace (a label), and the same VirtualIPs run; a pool narrowed later keeps
its VIP serving. The chart's ValidatingAdmissionPolicy is proven apart: it
refuses commands at admission, with a message saying how to allow them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

import pytest

from keepvip_api.names import NODE_AGENT_SELECTOR
from keepvip_harness.clusterlab import dump_logs
from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd, wait_for
from keepvip_harness.operatorrun import operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError
from keepvip_harness.tenancy import Tenant, admission_policy
from keepvip_tools.lab.topology import Lab

LABEL = ("keepvip.test/trusted", "yes")
AGENTS = ",".join(f"{k}={v}" for k, v in sorted(NODE_AGENT_SELECTOR.items()))
POOLS = f"{GROUP_PATH}/virtualippools"
FAULT = {"action": "fault"}


def _vip(api: Any, ns: str, name: str) -> dict[str, Any]:
    vip: dict[str, Any] = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}")
    return vip


def _cond(vip: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (vip.get("status") or {}).get("conditions") or ():
        if c["type"] == kind:
            return dict(c)
    return {}


def _events(api: Any, ns: str, name: str) -> dict[str, str]:
    items = api.get(f"/api/v1/namespaces/{ns}/events")["items"]
    return {e["reason"]: e["message"] for e in items if e["involvedObject"]["name"] == name}


def _ready_agents(api: Any, ns: str) -> int:
    pods = api.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=AGENTS)["items"]
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or ())
        for p in pods
    )  # fmt: skip


def _label_namespace(api: Any, ns: str, value: str | None) -> None:
    api.merge_patch(f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {LABEL[0]: value}}})


def test_a_tenant_gets_only_granted_addresses_and_no_commands_until_the_admin_allows(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
    virtualippool_crd: dict[str, Any],
    tmp_path: Path,
) -> None:
    lab, index = cluster_lab
    ns, api, cp = kube_namespace, control_plane.admin_rest(), control_plane
    n1 = lab.node_v4(1)
    marks = {"exec": tmp_path / "exec-ran", "notify": tmp_path / "notify-ran"}
    specs: dict[str, tuple[dict[str, Any], str]] = {
        "outside": ({"addresses": ["192.0.2.50/24"], "virtualRouterID": 51}, "AddressNotGranted"),
        "node": ({"addresses": [f"{n1}/24"], "virtualRouterID": 52}, "NodeAddress"),
        "broadcast": ({"addresses": ["192.0.2.255/24"], "virtualRouterID": 56}, "NetworkAddress"),
        "exec": (
            {"addresses": ["192.0.2.51/24"], "virtualRouterID": 53, "checks": [
                {"name": "run", "exec": {"command": ["touch", str(marks["exec"])]},
                 "onFailure": FAULT}]},
            "CommandsNotAllowed",
        ),
        "notify": (
            {"addresses": ["192.0.2.52/24"], "virtualRouterID": 54,
             "notify": {"master": ["touch", str(marks["notify"])]}},
            "CommandsNotAllowed",
        ),
        "kubelet": (
            {"addresses": ["192.0.2.53/24"], "virtualRouterID": 55, "checks": [
                {"name": "kubelet", "tcpSocket": {"host": str(n1), "port": 10250},
                 "onFailure": {"action": "demote", "weight": 10}}]},
            "CheckTargetNotAllowed",
        ),
    }  # fmt: skip
    addresses = {name: spec["addresses"][0].split("/")[0] for name, (spec, _) in specs.items()}
    ensure_crd(cp)
    settings = replace(
        operator_settings(cp, ns),
        trusted_namespaces=(),
        trusted_namespace_label=LABEL,
        extra_pod_labels={LAUNCH_LABEL: "true"},
    )
    mapping = {n: lab.node_ns(i) for n, i in index.items()}
    with running_operator(settings, ns, cp, grant=False), PodLauncher(cp, mapping) as launcher:
        try:
            tenant = Tenant(cp, ns)
            for name, (spec, _) in specs.items():
                tenant.create(name, spec)
            # The agents are Ready (/readyz: they have read the VirtualIPs), so what they
            # leave alone below is their decision, not their absence.
            wait_for("3 node agents Ready", lambda: _ready_agents(api, ns) == 3, 90)

            # Each refused with its one-line reason, as a condition and as a Warning Event.
            def refused() -> bool:
                return all(
                    (c := _cond(_vip(api, ns, n), "Accepted")).get("status") == "False"
                    and c.get("reason") == reason
                    for n, (_, reason) in specs.items()
                )

            wait_for("every VirtualIP refused", refused, 30)
            named = {**addresses, "exec": "checks[0].exec", "notify": "notify.master",
                     "kubelet": "checks[0].tcpSocket.host"}  # fmt: skip
            for name, (_, reason) in specs.items():
                vip = _vip(api, ns, name)
                message = _cond(vip, "Accepted")["message"]
                assert "\n" not in message and named[name] in message, message
                assert "acceptedGeneration" not in vip["status"]
                wait_for(f"{name}: a {reason} event", lambda n=name, r=reason: r in _events(
                    api, ns, n), 15)  # fmt: skip
            assert "tenancy.trustedNamespaces or label it keepvip.test/trusted=yes" in _cond(
                _vip(api, ns, "exec"), "Accepted")["message"]  # fmt: skip
            assert f"checks[0].tcpSocket.host: {n1} is a node's own address" in _cond(
                _vip(api, ns, "kubelet"), "Accepted")["message"]  # fmt: skip

            # On the nodes: nothing bound, no command run, no agent wrote an entry; the
            # agents did see them (their logs say why each is not run).
            time.sleep(3)  # several advert intervals: an ungated agent would have bound by now
            for name in specs:
                holders = [i for i in lab.holders(_ip(addresses[name])) if i != 1 or name != "node"]
                assert holders == [], f"{name} is bound on {holders}"
                assert not (_vip(api, ns, name)["status"].get("nodes")), name
            assert not any(m.exists() for m in marks.values())
            logs = "".join(launcher.log(ns, p["metadata"]["name"]) for p in api.get(
                f"/api/v1/namespaces/{ns}/pods", labelSelector=AGENTS)["items"])  # fmt: skip
            assert f"{ns}/outside: not run on" in logs and "refused by the operator" in logs

            # The admin grants a pool (not covering the node's own address's refusal) and
            # trusts the namespace: the same VirtualIPs run.
            api.post(POOLS, {
                "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIPPool",
                "metadata": {"name": f"{ns}-grant"},
                "spec": {"addresses": ["192.0.2.0/24"], "namespaces": [ns],
                         "usedBy": ["VirtualIPs"]},
            })  # fmt: skip
            try:
                wait_for("outside accepted and bound", lambda: (
                    _cond(_vip(api, ns, "outside"), "Accepted").get("status") == "True"
                    and len(lab.holders(_ip(addresses["outside"]))) == 1
                ), 30)  # fmt: skip
                outside = _vip(api, ns, "outside")
                assert outside["status"]["acceptedGeneration"] == outside["metadata"]["generation"]
                assert _cond(_vip(api, ns, "exec"), "Accepted")["reason"] == "CommandsNotAllowed"
                node = _cond(_vip(api, ns, "node"), "Accepted")
                assert (node["status"], node["reason"]) == ("False", "NodeAddress"), node
                assert f"{n1} is the address of Node" in node["message"]
                bcast = _cond(_vip(api, ns, "broadcast"), "Accepted")
                assert (bcast["status"], bcast["reason"]) == ("False", "NetworkAddress"), bcast
                assert "192.0.2.255 is the broadcast address of 192.0.2.0/24, a network of Node" in (
                    bcast["message"])  # fmt: skip
                assert lab.holders(_ip(addresses["broadcast"])) == []

                _label_namespace(api, ns, LABEL[1])
                for name in ("exec", "notify", "kubelet"):
                    wait_for(f"{name} accepted and bound", lambda n=name: (
                        _cond(_vip(api, ns, n), "Accepted").get("status") == "True"
                        and len(lab.holders(_ip(addresses[n]))) == 1
                    ), 30)  # fmt: skip
                wait_for("the exec check and the notify hook ran",
                         lambda: all(m.exists() for m in marks.values()), 15)  # fmt: skip

                # Narrowed: outside's address leaves the pool; it keeps serving, and says so.
                api.merge_patch(f"{POOLS}/{ns}-grant", {"spec": {"addresses": ["192.0.2.51/32",
                    "192.0.2.52/32", "192.0.2.53/32"]}})  # fmt: skip
                wait_for("AddressOutsidePool", lambda: _cond(
                    _vip(api, ns, "outside"), "AddressOutsidePool").get("status") == "True", 30)  # fmt: skip
                assert "AddressOutsidePool" in _events(api, ns, "outside")
                for _ in range(10):
                    assert len(lab.holders(_ip(addresses["outside"]))) == 1, "it keeps serving"
                    time.sleep(0.3)
                # ... until its spec changes: the new generation is refused and it stops.
                tenant.update_spec("outside", {**specs["outside"][0], "priority": 90})
                wait_for(
                    "outside stopped", lambda: lab.holders(_ip(addresses["outside"])) == [], 30
                )
                assert _cond(_vip(api, ns, "outside"), "Accepted")["reason"] == "AddressNotGranted"
            finally:
                api.delete(f"{POOLS}/{ns}-grant")
        finally:
            dump_logs(cp, launcher, ns)


def test_commands_are_refused_at_admission_unless_the_namespace_is_trusted(
    control_plane: ControlPlane, kube_namespace: str, virtualip_crd: dict[str, Any]
) -> None:
    ns, api, cp = kube_namespace, control_plane.admin_rest(), control_plane
    tenant = Tenant(cp, ns)
    exec_spec = {"addresses": ["192.0.2.61/24"], "checks": [
        {"name": "run", "exec": {"command": ["true"]}, "onFailure": FAULT}]}  # fmt: skip
    notify_spec = {"addresses": ["192.0.2.62/24"], "notify": {"backup": ["true"]}}
    tenant.create("plain", {"addresses": ["192.0.2.60/24"]})
    tenant.create("earlier", {**exec_spec, "addresses": ["192.0.2.64/24"]})  # before the policy
    with admission_policy(cp, ns, [f"tenancy.trustedNamespaceLabel={LABEL[0]}={LABEL[1]}"]):

        def refusal(name: str, spec: dict[str, Any]) -> str | None:
            try:
                tenant.create(name, spec)
            except ApiError as exc:
                assert exc.status in (403, 422), exc
                return str((exc.body or {}).get("message"))
            api.delete(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}")
            return None  # the policy is not in force yet

        message = wait_for("the policy in force", lambda: refusal("exec", exec_spec), 30)
        assert (
            f"spec.checks[].exec and spec.notify run commands as root on the nodes and are not "
            f"allowed in namespace {ns}: remove them, or ask a cluster admin to add the namespace "
            "to the keepvip chart value tenancy.trustedNamespaces or label it "
            "keepvip.test/trusted=yes"
        ) in message, message
        assert refusal("notify", notify_spec) is not None
        # An object without commands passes, and so does a write that leaves the spec alone
        # (the operator's and kopf's annotations and finalizers on an earlier object).
        tenant.update_spec("plain", {"addresses": ["192.0.2.63/24"]})
        api.merge_patch(f"{GROUP_PATH}/namespaces/{ns}/virtualips/earlier",
                        {"metadata": {"annotations": {"keepvip.test/note": "unchanged spec"}}})  # fmt: skip
        with pytest.raises(ApiError):
            tenant.update_spec("plain", notify_spec)
        _label_namespace(api, ns, LABEL[1])
        wait_for("trusted", lambda: refusal("exec", exec_spec) is None, 30)
        tenant.create("notify", notify_spec)


def _ip(text: str) -> IPv4Address | IPv6Address:
    return ip_address(text)
