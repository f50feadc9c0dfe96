"""The control-plane tier works end to end, against the real processes.

Each test checks one thing other cluster tests will rely on: the API serves
CRDs, the DaemonSet controller and scheduler place pods on the fake nodes,
the garbage collector removes dependents, RBAC refuses a ServiceAccount what
it was not granted, and the pod launcher runs a launch-labelled pod's
command in its node's network namespace with a Ready condition that follows
the readiness probe.
"""

from __future__ import annotations

import functools
import os
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.controlplane import LAUNCH_LABEL, ControlPlane
from keepvip_harness.kubeapi import wait_for
from keepvip_harness.podlauncher import PodLauncher
from keepvip_harness.rest import ApiError


def pods(cp: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cp.admin_rest().get(
        f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector
    )["items"]
    return items


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def daemonset(name: str, pod_labels: dict[str, str], container: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, **pod_labels}},
                "spec": {
                    "hostNetwork": True,
                    "terminationGracePeriodSeconds": 3,
                    "containers": [container],
                },
            },
        },
    }


def test_crd_is_served(control_plane: ControlPlane, kube_namespace: str) -> None:
    api = control_plane.admin_rest()
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.smoke.keepvip.test"},
        "spec": {
            "group": "smoke.keepvip.test",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    try:
        api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    except ApiError as exc:
        assert exc.status == 409  # a rerun against a cluster from `make cluster-up`
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.smoke.keepvip.test"
    wait_for("the CRD to be established", lambda: condition(api.get(path), "Established") == "True")
    widgets = f"/apis/smoke.keepvip.test/v1/namespaces/{kube_namespace}/widgets"
    body = {"apiVersion": "smoke.keepvip.test/v1", "kind": "Widget", "metadata": {"name": "w"}}
    wait_for("the CRD's API to be served", lambda: api.post(widgets, {**body, "spec": {"size": 3}}))
    assert api.get(f"{widgets}/w")["spec"] == {"size": 3}
    # A field outside the structural schema is pruned, as on any real cluster.
    api.post(widgets, {**body, "metadata": {"name": "x"}, "spec": {"size": 1, "colour": "red"}})
    assert api.get(f"{widgets}/x")["spec"] == {"size": 1}


def test_daemonset_lands_on_every_fake_node_and_gc_removes_its_pods(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    api = control_plane.admin_rest()
    ds = daemonset("plain", {}, {"name": "c", "image": "example.invalid/plain:1"})
    api.post(f"/apis/apps/v1/namespaces/{kube_namespace}/daemonsets", ds)
    node_names = {n.name for n in control_plane.nodes}

    def running() -> bool:
        items = pods(control_plane, kube_namespace, "app=plain")
        on = {p["spec"].get("nodeName") for p in items if p["status"].get("phase") == "Running"}
        return on == node_names and len(items) == len(node_names)

    wait_for("a Running DaemonSet pod on each fake node (kwok)", running)
    owners = {
        o["kind"] for p in pods(control_plane, kube_namespace, "app=plain")
        for o in p["metadata"]["ownerReferences"]
    }  # fmt: skip
    assert owners == {"DaemonSet"}

    api.delete(
        f"/apis/apps/v1/namespaces/{kube_namespace}/daemonsets/plain",
        {"propagationPolicy": "Background"},
    )
    wait_for(
        "the garbage collector to remove the DaemonSet's pods",
        lambda: pods(control_plane, kube_namespace, "app=plain") == [],
    )


def test_helm_installs_a_chart(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: smoke\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: smoke}\ndata: {release: {{ .Release.Name | quote }}}\n"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.admin_kubeconfig),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    helm = str(control_plane.binary("helm"))
    subprocess.run(
        [helm, "install", "rel", str(chart), "--namespace", kube_namespace, "--wait"],
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    cm = control_plane.admin_rest().get(f"/api/v1/namespaces/{kube_namespace}/configmaps/smoke")
    assert cm["data"] == {"release": "rel"}


def test_service_account_gets_exactly_what_rbac_grants(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = control_plane.admin_rest()
    ns = kube_namespace
    api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "reader"}})

    with control_plane.service_account_client(ns, "reader") as sa:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(sa).list_namespaced_pod(ns)
        assert refused.value.status == 403
        assert f"system:serviceaccount:{ns}:reader" in str(refused.value.body)

        api.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
        )
        api.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            {
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            },
        )
        wait_for(
            "the Role to take effect",
            lambda: client.CoreV1Api(sa).list_namespaced_pod(ns) is not None,
        )
        # Exactly that: listing is granted, reading one secret is not.
        with pytest.raises(ApiException) as still_refused:
            client.CoreV1Api(sa).list_namespaced_secret(ns)
        assert still_refused.value.status == 403


# The agent stand-in: serves /ready on the pod IP while a flag file exists,
# and checks that the API server is reachable with the pod's own token.
AGENT = textwrap.dedent(
    """
    import http.server, json, os, ssl, sys, urllib.request
    env = {k: os.environ.get(k) for k in
           ("NODE_NAME", "POD_NAME", "POD_NAMESPACE", "POD_IP", "HOST_IP", "READY_FLAG")}
    print("ENV " + json.dumps(env), flush=True)
    sa = os.environ["KEEPVIP_TEST_SA_DIR"]
    ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
    url = "https://%s:%s/api/v1/namespaces/%s/pods/%s" % (
        os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"],
        env["POD_NAMESPACE"], env["POD_NAME"])
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + open(sa + "/token").read()})
    try:
        urllib.request.urlopen(req, context=ctx)
        print("API 200", flush=True)
    except urllib.error.HTTPError as e:
        print("API %d %s" % (e.code, json.loads(e.read()).get("message")), flush=True)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if os.path.exists(env["READY_FLAG"]) else 503)
            self.end_headers()
        def log_message(self, *a):
            pass

    http.server.HTTPServer((env["POD_IP"], 18080), H).serve_forever()
    """
)


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _log_once(launcher: PodLauncher, namespace: str, name: str) -> str:
    """The agent stand-in's log once it has reported its API check, else ''."""
    log = launcher.log(namespace, name)
    return log if "API " in log else ""


def _netns_inode(netns: str) -> int:
    return os.stat(f"/run/netns/{netns}").st_ino


def test_launcher_runs_daemonset_pod_in_node_netns_with_http_readiness(
    control_plane: ControlPlane,
    kube_namespace: str,
    node_netns: dict[str, str],
    pod_launcher: PodLauncher,
    tmp_path: Path,
) -> None:
    api = control_plane.admin_rest()
    ns = kube_namespace
    container = {
        "name": "agent",
        "image": "keepvip/agent:test",
        "command": ["python3", "-c", AGENT],
        "env": [
            _field_env("NODE_NAME", "spec.nodeName"),
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_IP", "status.podIP"),
            _field_env("HOST_IP", "status.hostIP"),
            # $(VAR) expansion, as the kubelet does it.
            {"name": "READY_FLAG", "value": f"{tmp_path}/$(NODE_NAME).ready"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": 18080},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    ds = daemonset("agent", {LAUNCH_LABEL: "true"}, container)
    api.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", ds)
    nodes = {n.name: n for n in control_plane.nodes}

    def all_running() -> list[dict[str, Any]] | None:
        items = pods(control_plane, ns, "app=agent")
        running = [p for p in items if p["status"].get("phase") == "Running"]
        return running if len(running) == len(nodes) else None

    for pod in wait_for("the launcher to run a pod per node", all_running):
        name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
        pid = wait_for("the pod's process", functools.partial(pod_launcher.pid, ns, name))
        # The process really lives in that node's network namespace.
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == _netns_inode(node_netns[node])
        assert pod["status"]["podIP"] == nodes[node].internal_ip
        assert condition(pod, "Ready") == "False"  # no flag file yet
        log = wait_for("the agent's report", functools.partial(_log_once, pod_launcher, ns, name))
        assert f'"NODE_NAME": "{node}"' in log
        assert f'"POD_NAME": "{name}"' in log
        assert f'"POD_NAMESPACE": "{ns}"' in log
        assert f'"POD_IP": "{nodes[node].internal_ip}"' in log
        assert f'"HOST_IP": "{nodes[node].internal_ip}"' in log
        assert f'"READY_FLAG": "{tmp_path}/{node}.ready"' in log
        # Through the relay, authenticated as the pod's ServiceAccount, which
        # has no grant to read pods.
        assert "API 403" in log and f"system:serviceaccount:{ns}:default" in log

    first = next(iter(nodes))
    (tmp_path / f"{first}.ready").touch()

    def ready_on(node: str) -> dict[str, str | None]:
        return {
            p["spec"]["nodeName"]: condition(p, "Ready")
            for p in pods(control_plane, ns, "app=agent")
        }

    wait_for(
        "Ready on the flagged node only",
        lambda: ready_on(first) == {n: ("True" if n == first else "False") for n in nodes},
    )
    pod = next(p for p in pods(control_plane, ns, "app=agent") if p["spec"]["nodeName"] == first)
    assert condition(pod, "ContainersReady") == "True"
    assert pod["status"]["containerStatuses"][0]["ready"] is True

    (tmp_path / f"{first}.ready").unlink()
    wait_for("Ready to follow the probe back to False", lambda: ready_on(first)[first] == "False")

    # Deleting the owner: the GC deletes the pods, the launcher stops the
    # processes (SIGTERM) and confirms the deletion.
    pids = [
        pod_launcher.pid(ns, p["metadata"]["name"]) for p in pods(control_plane, ns, "app=agent")
    ]
    api.delete(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent", {"propagationPolicy": "Background"}
    )
    wait_for("the pods to be gone", lambda: pods(control_plane, ns, "app=agent") == [])
    for pid in pids:
        assert pid is not None and not Path(f"/proc/{pid}").exists()


def test_launcher_exec_probe_and_restart(
    control_plane: ControlPlane,
    kube_namespace: str,
    node_netns: dict[str, str],
    pod_launcher: PodLauncher,
    tmp_path: Path,
) -> None:
    api = control_plane.admin_rest()
    ns = kube_namespace
    node = control_plane.nodes[0].name
    flag, stop = tmp_path / "ready", tmp_path / "stop"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker", "labels": {LAUNCH_LABEL: "true"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "main",
                    "image": "keepvip/none",
                    "command": ["sh", "-c", f"while [ ! -e {stop} ]; do sleep 0.1; done; exit 3"],
                    "readinessProbe": {
                        "exec": {"command": ["test", "-e", str(flag)]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }
    api.post(f"/api/v1/namespaces/{ns}/pods", pod)
    path = f"/api/v1/namespaces/{ns}/pods/worker"
    wait_for("Running", lambda: api.get(path)["status"].get("phase") == "Running")
    assert condition(api.get(path), "Ready") == "False"
    flag.touch()
    wait_for(
        "Ready after the exec probe passes", lambda: condition(api.get(path), "Ready") == "True"
    )

    stop.touch()

    def restarted() -> dict[str, Any] | None:
        status = api.get(path)["status"]["containerStatuses"][0]
        return status if status["restartCount"] >= 1 else None

    status = wait_for("a restart after the process exits", restarted)
    stop.unlink()
    assert status["lastState"]["terminated"]["exitCode"] == 3
    wait_for("Ready again after the restart", lambda: condition(api.get(path), "Ready") == "True")

    api.delete(path)
    wait_for("the pod to be gone", lambda: not pods(control_plane, ns, LAUNCH_LABEL))
    assert node_netns[node]  # the namespace is the fixture's, untouched by the launcher


def _launched_pod(name: str, node: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LAUNCH_LABEL: "true"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "main", "image": "keepvip/none", "command": ["sh", "-c", script]}
            ],
            **spec,
        },
    }


def test_launcher_marks_failed_and_kills_after_grace(
    control_plane: ControlPlane,
    kube_namespace: str,
    pod_launcher: PodLauncher,
) -> None:
    api = control_plane.admin_rest()
    ns = kube_namespace
    node = control_plane.nodes[1].name
    pods_path = f"/api/v1/namespaces/{ns}/pods"

    api.post(pods_path, _launched_pod("once", node, "exit 4", restartPolicy="Never"))
    wait_for(
        "phase Failed", lambda: api.get(f"{pods_path}/once")["status"].get("phase") == "Failed"
    )
    state = api.get(f"{pods_path}/once")["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 4

    # A process that ignores SIGTERM is killed when the grace period ends.
    stubborn = "trap '' TERM; echo up; while :; do sleep 0.1; done"
    api.post(pods_path, _launched_pod("stubborn", node, stubborn, terminationGracePeriodSeconds=1))
    wait_for("the process to run", lambda: "up" in pod_launcher.log(ns, "stubborn"))
    pid = pod_launcher.pid(ns, "stubborn")
    assert pid is not None
    t0 = time.monotonic()
    api.delete(f"{pods_path}/stubborn")
    wait_for("the pod to be gone", lambda: "stubborn" not in str(api.get(pods_path)["items"]))
    assert 1.0 <= time.monotonic() - t0 < 10
    assert not Path(f"/proc/{pid}").exists()
