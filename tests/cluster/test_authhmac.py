"""authHMAC in Kubernetes mode: keys from a Secret the agents may read by name, and nothing else.

The real node agents run in the lab's node namespaces with the agents'
ServiceAccount token; the per-namespace Role is exactly what the operator
renders for these VirtualIPs (``plan_namespace_rbac``: ``get`` on the named
Secrets, ``resourceNames``). A VirtualIP keyed by a Secret elects and serves;
one naming a Secret that does not exist faults alone, with the Secret's name
in its own status entries; a rotated Secret moves no VIP.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from ipaddress import IPv4Address
from typing import Any

from keepvip_api import parse_virtualip
from keepvip_api.names import NODE_AGENT_METRICS_PORT, NODE_AGENT_NAME
from keepvip_harness.agentlab import http_get
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import forbidden, wait_for
from keepvip_harness.nodeagents import answer, entries, masters_of, node_agents, post_vip, vip_spec
from keepvip_operator.rbac import plan_namespace_rbac, render_plan
from keepvip_tools.lab.topology import Lab

KEY1 = bytes(range(32)).hex()
KEY2 = bytes(range(100, 140)).hex()


def _secret(name: str, keys: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"keys": base64.b64encode(keys.encode()).decode()},
    }


def _agent_status(lab: Lab, i: int) -> dict[str, Any]:
    body = http_get(lab.node_ns(i), "/status", port=NODE_AGENT_METRICS_PORT)
    return json.loads(body) if body else {}


def _auth_of(lab: Lab, i: int, key: str) -> dict[str, Any] | None:
    for inst in _agent_status(lab, i).get("instances", []):
        if inst["name"] == key:
            return inst.get("authHMAC")  # type: ignore[no-any-return]
    return None


def test_secret_keys_elect_a_missing_secret_faults_only_its_virtualip_and_rotation_moves_nothing(
    control_plane: ControlPlane,
    kube_namespace: str,
    cluster_lab: tuple[Lab, dict[str, int]],
) -> None:
    lab, index = cluster_lab
    ns, nodes = kube_namespace, list(index)
    api = control_plane.admin_rest()
    for name, i in index.items():
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", name])
    specs = {
        "signed": vip_spec(
            IPv4Address("192.0.2.60"), 60, nodes, authHMAC={"secretName": "web-keys"}
        ),
        "unkeyed": vip_spec(
            IPv4Address("192.0.2.61"), 61, nodes, authHMAC={"secretName": "gone-keys"}
        ),
        "plain": vip_spec(IPv4Address("192.0.2.62"), 62, nodes),
    }
    parsed = [
        (ns, parse_virtualip({"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
                              "metadata": {"name": n, "namespace": ns}, "spec": s}))
        for n, s in specs.items()
    ]  # fmt: skip
    with node_agents(control_plane, ns, cluster_lab):
        api.post(f"/api/v1/namespaces/{ns}/secrets", _secret("web-keys", f"key 1 hex:{KEY1}\n"))
        api.post(f"/api/v1/namespaces/{ns}/secrets", _secret("other", f"key 1 hex:{KEY2}\n"))
        # The operator's Role and RoleBinding for these VirtualIPs, under a name of their own
        # (the harness's hand-written static Role of this namespace keeps its own).
        for obj in render_plan(plan_namespace_rbac(parsed, ns), ns):
            obj["metadata"]["name"] = "authhmac-keys"
            if obj["kind"] == "RoleBinding":
                obj["roleRef"]["name"] = "authhmac-keys"
            kind = "roles" if obj["kind"] == "Role" else "rolebindings"
            api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{kind}", obj)
        for name, spec in specs.items():
            post_vip(api, ns, name, spec)

        for name in ("signed", "plain"):
            wait_for(
                f"{name}: {nodes[0]} master",
                lambda n=name: masters_of(api, ns, n) == [nodes[0]],
                60,
            )
        wait_for("signed: 3 entries", lambda: len(entries(api, ns, "signed")) == 3, 30)
        assert wait_for("the client via signed", lambda: answer(lab, "192.0.2.60"), 10) == nodes[0]

        def faulted() -> bool:
            found = entries(api, ns, "unkeyed")
            return len(found) == 3 and all(
                e["state"] == "Fault" and "gone-keys" in " ".join(e.get("faults", []))
                for e in found.values()
            )

        wait_for("unkeyed: Fault naming its Secret", faulted, 30)
        print(entries(api, ns, "unkeyed"))
        assert lab.holders(IPv4Address("192.0.2.61")) == []
        assert answer(lab, "192.0.2.62") == nodes[0], "the other VirtualIPs keep serving"

        # The agents' token reads the named Secret and no other.
        from kubernetes import client

        core = client.CoreV1Api(control_plane.service_account_client(ns, NODE_AGENT_NAME))
        core.read_namespaced_secret("web-keys", ns)
        assert forbidden(core.read_namespaced_secret, "other", ns)
        assert forbidden(core.list_namespaced_secret, ns)

        # Rotation: key 1 replaced by key 2 in one step; nobody moves.
        before = {n: e.get("lastTransitionTime") for n, e in entries(api, ns, "signed").items()}
        api.merge_patch(
            f"/api/v1/namespaces/{ns}/secrets/web-keys",
            {"data": {"keys": base64.b64encode(f"key 2 hex:{KEY2}\n".encode()).decode()}},
        )
        for i in index.values():
            wait_for(
                f"node {i} has key 2",
                lambda i=i: (_auth_of(lab, i, f"{ns}/signed") or {}).get("activeKeyID") == 2,
                20,
            )
        time.sleep(12)  # past the senders' switch to key 2 (10 s)
        after = {n: e.get("lastTransitionTime") for n, e in entries(api, ns, "signed").items()}
        assert after == before and masters_of(api, ns, "signed") == [nodes[0]]
        for i in index.values():
            auth = _auth_of(lab, i, f"{ns}/signed")
            assert auth is not None and auth["dropped"] == {}, auth
