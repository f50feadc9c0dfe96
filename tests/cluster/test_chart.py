"""The Helm chart on a real control plane: installed with the pinned helm, its RBAC proven by use.

The chart's operator Deployment is played by kwok (its pod is Running and
Ready but runs nothing), so the operator runs here in-process, configured
exactly as the chart configures the Deployment (its environment goes through
the operator's own settings parser) and authenticated as the chart's
ServiceAccount with a token the API server issued. Everything it does, from
kopf's watches to the per-namespace Roles it grants the node agents (which
RBAC allows only if the granter holds every permission in them), is
therefore checked by the API server against the chart's ClusterRole.

The examples of examples/ are applied: the operator renders the one node
agent DaemonSet, the pod launcher runs its pods for real in the lab's node
namespaces (the chart gives the agent pods the launcher's label through
``agents.podLabels``) as the chart's agent ServiceAccount, and every example
reaches Ready with one master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import wait_for
from keepvip_harness.operatorrun import granted
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError
from keepvip_operator.main import run
from keepvip_operator.settings import OperatorSettings, parse
from keepvip_tools.lab.topology import Lab

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "keepvip"
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml") if p.name != "virtualippool.yaml")
POOL_EXAMPLE = REPO / "examples" / "virtualippool.yaml"
GROUP_PATH = "/apis/keepvip.io/v1alpha1"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualips.keepvip.io"


@dataclass
class Release:
    name: str
    namespace: str
    deployment: dict[str, Any]
    service_account: str
    notes: str


def helm_env(tmp_path: Path, cp: ControlPlane) -> dict[str, str]:
    return {
        **os.environ,
        "KUBECONFIG": str(cp.admin_kubeconfig),
        **{
            f"HELM_{k}_HOME": str(tmp_path / f"helm-{k.lower()}")
            for k in ("CACHE", "CONFIG", "DATA")
        },
    }


@pytest.fixture
def release(control_plane: ControlPlane, kube_namespace: str, tmp_path: Path) -> Iterator[Release]:
    """The chart installed (``helm install --wait``) for the test's namespace; uninstalled after."""
    ns, name = kube_namespace, f"kv-{secrets.token_hex(3)}"
    values = {
        "image": {"repository": "keepvip/test", "tag": "chart"},
        # Cluster-wide by default; here only this test's namespace, so that the
        # operator never meets another test's VirtualIPs.
        "operator": {"watchNamespaces": [ns]},
        "agents": {"podLabels": {control_plane.launch_label: "true"}, "logLevel": "debug"},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    helm, env = str(control_plane.binary("helm")), helm_env(tmp_path, control_plane)
    out = subprocess.run(
        [helm, "install", name, str(CHART), "--namespace", ns, "-f", str(tmp_path / "values.yaml"),
         "--wait", "--timeout", "90s"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    try:
        api = control_plane.admin_rest()
        deployment = api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-keepvip")
        sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        yield Release(name, ns, deployment, sa, out.stdout)
    finally:
        subprocess.run(
            [helm, "uninstall", name, "--namespace", ns, "--wait", "--timeout", "60s"],
            capture_output=True, env=env, timeout=90, check=False,
        )  # fmt: skip


def chart_settings(release: Release) -> OperatorSettings:
    """keepvip-operator's settings from the installed Deployment's command and environment."""
    (container,) = release.deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["keepvip-operator"]
    # The downward API's fields as the kubelet would resolve them for one of its pods.
    fields = {
        "metadata.name": f"{release.name}-keepvip-pod",
        "metadata.namespace": release.namespace,
    }
    env = {
        e["name"]: fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        if "valueFrom" in e
        else e.get("value", "")  # the API server drops empty values
        for e in container["env"]
    }
    return parse(container.get("args", []), environ=env)


class Warnings(logging.Handler):
    """Collects the operator's (and kopf's) warnings and errors."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def operator_as(settings: OperatorSettings) -> Iterator[Warnings]:
    """keepvip-operator in a thread, as ``main()`` runs it; its warnings."""
    warnings = Warnings()
    root = logging.getLogger()
    root.addHandler(warnings)
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(run(settings, stop_flag=stop, ready_flag=ready))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main, name="keepvip-operator-chart", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), f"the operator did not become ready: {errors!r}"
        yield warnings
    finally:
        stop.set()
        thread.join(30)
        root.removeHandler(warnings)
    assert not thread.is_alive(), "the operator did not stop within 30s"
    assert not errors, f"the operator failed: {errors!r}"


@pytest.fixture
def lab_nodes(control_plane: ControlPlane) -> Iterator[dict[str, str]]:
    """The fake nodes on a lab bridge: node name -> its namespace; InternalIPs set to the lab's."""
    originals = {n.name: n.internal_ip for n in control_plane.nodes}
    with Lab(nodes=len(originals)) as lab:
        mapping = {}
        try:
            for i, node in enumerate(originals, start=1):
                control_plane.set_node_address(node, str(lab.node_v4(i)))
                mapping[node] = lab.node_ns(i)
            yield mapping
        finally:
            for node, ip in originals.items():
                control_plane.set_node_address(node, ip)


def tracked_app(ns: str) -> dict[str, Any]:
    """The app virtualip-track-pods.yaml follows: a pod per node, made Ready by kwok."""
    labels = {"app": "web-frontend"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "web-frontend", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }


def fronted_service() -> dict[str, Any]:
    """The Service virtualip-service.yaml fronts: the same app's pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-frontend"},
        "spec": {"selector": {"app": "web-frontend"}, "ports": [{"name": "http", "port": 80}]},
    }


def condition(vip: dict[str, Any], kind: str) -> str | None:
    for c in (vip.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def test_chart_installs_and_its_operator_reconciles_the_examples(
    control_plane: ControlPlane, release: Release, lab_nodes: dict[str, str]
) -> None:
    api, ns = control_plane.admin_rest(), release.namespace
    assert "kubectl get virtualips" in release.notes  # NOTES.txt says what to do next
    assert "usedBy: [VirtualIPs]" in release.notes  # ... and to grant addresses first
    crd = api.get(CRD_PATH)
    assert condition(crd, "Established") == "True"

    settings = chart_settings(release)
    assert settings.watch_namespaces == (ns,)
    assert settings.extra_pod_labels == {control_plane.launch_label: "true"}
    priority_class = api.get(
        f"/apis/scheduling.k8s.io/v1/priorityclasses/{settings.priority_class_name}"
    )
    assert priority_class["value"] == 1_000_000_000
    as_chart_sa = replace(
        settings,
        kubeconfig=str(control_plane.service_account_kubeconfig(ns, release.service_account)),
    )

    # Every Kubernetes example is accepted by the API server's schema and CEL rules
    # (server-side dry run). The standalone one is valid too, but its exec check and
    # notify hooks are refused by the chart's admission policy in a namespace the
    # chart does not trust (docs/security.md), with a message saying how to allow them.
    docs = {p.name: yaml.safe_load(p.read_text()) for p in EXAMPLES}
    for name, doc in docs.items():
        try:
            api.request(
                "POST", f"{GROUP_PATH}/namespaces/{ns}/virtualips", doc, query={"dryRun": "All"}
            )
        except ApiError as exc:
            assert name.startswith("standalone-"), exc
            assert exc.status == 403 and "tenancy.trustedNamespaces" in str(exc.body), exc
        else:
            assert not name.startswith("standalone-"), "commands passed admission"
    kubernetes = {n: d for n, d in docs.items() if not n.startswith("standalone-")}

    # Address grants are on (the chart's default): the admin grants the namespace a pool
    # first, as the chart's NOTES say.
    with (
        granted(control_plane, ns),
        PodLauncher(control_plane, lab_nodes) as launcher,
        operator_as(as_chart_sa) as warnings,
    ):
        api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", tracked_app(ns))
        api.post(f"/api/v1/namespaces/{ns}/services", fronted_service())
        for doc in kubernetes.values():
            api.post(f"{GROUP_PATH}/namespaces/{ns}/virtualips", doc)
        vip_names = [d["metadata"]["name"] for d in kubernetes.values()]
        try:
            wait_for(
                "the node agent DaemonSet",
                lambda: api.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent"),
                30,
            )
            for name in vip_names:
                vip = wait_for(
                    f"{name} Ready",
                    lambda name=name: (
                        (v := api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/{name}"))
                        and condition(v, "Ready") == "True"
                        and v
                    ),
                    90,
                )
                assert vip["status"]["master"] in lab_nodes
                print(
                    f"{name}: VRID {vip['status']['virtualRouterID']}, master {vip['status']['master']}"
                )
            # The role label of the tracked app follows the master.
            master = api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/web-frontend")["status"][
                "master"
            ]
            wait_for(
                "role labels on the tracked pods",
                lambda: (
                    {
                        p["spec"]["nodeName"]: p["metadata"]["labels"].get("keepvip.io/role")
                        for p in api.get(
                            f"/api/v1/namespaces/{ns}/pods", labelSelector="app=web-frontend"
                        )["items"]
                    }
                    == {n: ("master" if n == master else "backup") for n in lab_nodes}
                ),
                20,
            )
            # virtualip-service.yaml: its address published on the Service.
            wait_for(
                "192.0.2.53 in the fronted Service's externalIPs",
                lambda: (
                    api.get(f"/api/v1/namespaces/{ns}/services/web-frontend")["spec"].get(
                        "externalIPs"
                    )
                    == ["192.0.2.53"]
                ),
                20,
            )
            lb_service_from_a_pool(api, ns)
        except BaseException:
            with contextlib.suppress(ApiError):
                for pod in api.get(f"/api/v1/namespaces/{ns}/pods")["items"]:
                    log = launcher.log(ns, pod["metadata"]["name"])
                    if log:
                        print(f"----- {pod['metadata']['name']}\n{log[-3000:]}")
            print("operator warnings:", *warnings.records, sep="\n  ")
            raise
        # Nothing was refused: no 403 from the API and no kopf permission warning.
        refused = [
            r
            for r in warnings.records
            if "403" in r or "Forbidden" in r or "permission" in r.lower()
        ]
        assert refused == [], refused
        # It ran as the chart runs it: elected, holding the release's Lease.
        leases = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        lease = api.get(f"{leases}/{settings.leader_election_lease_name}")
        assert lease["spec"]["holderIdentity"] == settings.leader_election_identity


def lb_service_from_a_pool(api: Any, ns: str) -> None:
    """examples/virtualippool.yaml under the chart's RBAC: the Service gets its address and a
    VirtualIP, and the node agents a Role that reads Services and EndpointSlices there."""
    pool, service = list(yaml.safe_load_all(POOL_EXAMPLE.read_text()))
    pool["metadata"]["name"] = f"kvt-chart-{ns}"
    pool["spec"]["namespaces"] = [ns]  # cluster-scoped: keep other tests' Services out
    pools = f"{GROUP_PATH}/virtualippools"
    api.post(pools, pool)
    try:
        api.post(f"/api/v1/namespaces/{ns}/services", service)
        name = service["metadata"]["name"]

        def assigned() -> bool:
            svc = api.get(f"/api/v1/namespaces/{ns}/services/{name}")
            return any(
                c["type"] == "keepvip.io/AddressAssigned" and c["status"] == "True"
                for c in svc.get("status", {}).get("conditions") or []
            )

        wait_for(f"{name} to get an address from the pool", assigned, 30)
        wait_for(
            f"the VirtualIP lb-{name}",
            lambda: api.get(f"{GROUP_PATH}/namespaces/{ns}/virtualips/lb-{name}"),
            30,
        )

        def grants_endpointslices() -> bool:
            role = api.get(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/keepvip-agent-tracking"
            )
            return any("endpointslices" in r["resources"] for r in role["rules"])

        wait_for("the node agents' grant of EndpointSlices", grants_endpointslices, 30)
    finally:
        with contextlib.suppress(ApiError):
            api.delete(f"{pools}/{pool['metadata']['name']}")
