"""Rendering (pure): the one node agent DaemonSet, and the agents' per-namespace RBAC plan.

The DaemonSet is checked whole against a golden copy (the container contract
the agent implements, issue 12's node agent), then the properties that
matter one by one: settings reach the pod, the selector never grows, and the
RBAC plan grants pods and EndpointSlices exactly where some VirtualIP needs
them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from keepvip_api import VirtualIP, parse_virtualip
from keepvip_operator.rbac import plan_namespace_rbac, render_plan
from keepvip_operator.render import render_daemonset
from keepvip_operator.settings import AgentResources, OperatorSettings

SETTINGS = OperatorSettings(agent_image="keepvip:1.0")
AGENTS = "keepvip-system"


def vip(namespace: str = "prod", **spec: Any) -> tuple[str, VirtualIP]:
    return namespace, parse_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"addresses": ["192.0.2.50/24"], **spec},
        }
    )


GOLDEN_DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: keepvip-agent
  namespace: keepvip-system
  labels:
    app.kubernetes.io/name: keepvip-agent
    app.kubernetes.io/managed-by: keepvip-operator
    app.kubernetes.io/component: node-agent
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: keepvip-agent
      app.kubernetes.io/managed-by: keepvip-operator
      app.kubernetes.io/component: node-agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
      maxSurge: 0
  revisionHistoryLimit: 5
  template:
    metadata:
      labels:
        app.kubernetes.io/name: keepvip-agent
        app.kubernetes.io/managed-by: keepvip-operator
        app.kubernetes.io/component: node-agent
      annotations:
        kubectl.kubernetes.io/default-container: agent
    spec:
      serviceAccountName: keepvip-agent
      automountServiceAccountToken: true
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      terminationGracePeriodSeconds: 30
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: agent
        image: keepvip:1.0
        imagePullPolicy: IfNotPresent
        command:
        - keepvip-agent
        args:
        - --kubernetes
        - --node
        - $(NODE_NAME)
        - --agent-namespace
        - $(POD_NAMESPACE)
        - --metrics-port
        - '9640'
        - --address-grants
        - 'on'
        - --log-level
        - info
        env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        - name: NODE_IP
          valueFrom:
            fieldRef:
              fieldPath: status.hostIP
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: MALLOC_ARENA_MAX
          value: "2"
        ports:
        - name: metrics
          containerPort: 9640
          hostPort: 9640
          protocol: TCP
        readinessProbe:
          httpGet:
            path: /readyz
            port: 9640
            scheme: HTTP
          periodSeconds: 2
          timeoutSeconds: 2
          failureThreshold: 3
        livenessProbe:
          httpGet:
            path: /healthz
            port: 9640
            scheme: HTTP
          initialDelaySeconds: 10
          periodSeconds: 10
          timeoutSeconds: 5
          failureThreshold: 3
        resources:
          requests:
            cpu: 10m
            memory: 32Mi
          limits:
            memory: 192Mi
        securityContext:
          runAsUser: 0
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop:
            - ALL
            add:
            - NET_ADMIN
            - NET_RAW
        volumeMounts:
        - name: tmp
          mountPath: /tmp
      volumes:
      - name: tmp
        emptyDir:
          medium: Memory
          sizeLimit: 16Mi
      tolerations:
      - operator: Exists
      priorityClassName: system-node-critical

"""


def test_daemonset_golden() -> None:
    assert render_daemonset(SETTINGS, AGENTS) == yaml.safe_load(GOLDEN_DAEMONSET)


def test_settings_shape_the_pod_but_never_the_selector() -> None:
    settings = replace(
        SETTINGS,
        agent_metrics_port=9700,
        agent_tolerations=({"key": "edge", "operator": "Exists", "effect": "NoSchedule"},),
        agent_node_selector={"keepvip.io/vrrp": "yes"},
        agent_image_pull_secrets=("regcred",),
        agent_max_unavailable="20%",
        watch_namespaces=("a", "b"),
        extra_pod_labels={"team": "net"},
        priority_class_name=None,
    )
    ds = render_daemonset(settings, AGENTS)
    pod = ds["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["tolerations"] == [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"keepvip.io/vrrp": "yes"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert "priorityClassName" not in pod
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "20%"
    assert container["args"][container["args"].index("--watch-namespaces") + 1] == "a,b"
    assert container["ports"][0]["hostPort"] == 9700
    assert container["readinessProbe"]["httpGet"]["port"] == 9700
    assert ds["spec"]["template"]["metadata"]["labels"]["team"] == "net"
    assert ds["spec"]["selector"] == render_daemonset(SETTINGS, AGENTS)["spec"]["selector"]
    assert ds["spec"]["selector"]["matchLabels"] == ds["metadata"]["labels"]


def test_default_tolerates_every_taint_and_selects_every_node() -> None:
    pod = render_daemonset(SETTINGS, AGENTS)["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert "nodeSelector" not in pod


def test_default_resources_have_no_cpu_limit() -> None:
    assert AgentResources().render() == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"memory": "192Mi"},
    }


# -- the per-namespace RBAC plan ------------------------------------------------------------

READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
PATCH_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}
READ_SERVICES = {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}
READ_SLICES = {
    "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]
}  # fmt: skip
TRACK = {"selector": {"matchLabels": {"app": "redis"}}, "onFailure": {"action": "fault"}}


def test_authhmac_secrets_are_granted_by_name_in_the_agents_namespace_only() -> None:
    a = vip("shop", authHMAC={"secretName": "web-keys"})
    b = vip(authHMAC={"secretName": "db-keys"}, trackPods=TRACK)
    filed = vip("shop", authHMAC={"keyFile": "/etc/keepvip/web.keys"})
    secrets = {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["db-keys", "web-keys"],
    }
    assert plan_namespace_rbac([a, b, a, filed], "keepvip-system") == {
        "keepvip-system": [secrets],
        "prod": [READ_PODS],
    }
    assert plan_namespace_rbac([filed, vip()], "keepvip-system") == {}
    # a VirtualIP in the agents' namespace shares the Role: rules in a fixed order
    assert plan_namespace_rbac([b], "prod") == {
        "prod": [READ_PODS, secrets | {"resourceNames": ["db-keys"]}]
    }


def test_a_plain_virtualip_needs_no_namespace_grant() -> None:
    assert plan_namespace_rbac([vip()]) == {}
    assert plan_namespace_rbac([]) == {}


def test_tracked_pods_are_read_where_they_live_and_patched_only_for_role_labels() -> None:
    assert plan_namespace_rbac([vip(trackPods=TRACK)]) == {"prod": [READ_PODS]}
    elsewhere = {**TRACK, "namespace": "data", "roleLabel": True}
    assert plan_namespace_rbac([vip(trackPods=elsewhere)]) == {"data": [READ_PODS, PATCH_PODS]}


def test_one_role_label_in_a_namespace_grants_patch_there_for_all() -> None:
    labelled = vip("other", trackPods={**TRACK, "namespace": "prod", "roleLabel": True})
    assert plan_namespace_rbac([vip(trackPods=TRACK), labelled]) == {
        "prod": [READ_PODS, PATCH_PODS]
    }
    assert plan_namespace_rbac([labelled, vip(trackPods=TRACK)]) == {
        "prod": [READ_PODS, PATCH_PODS]
    }


def test_service_ref_grants_services_and_endpointslices_only_when_it_tracks_endpoints() -> None:
    ref = {"name": "web"}
    assert plan_namespace_rbac([vip(serviceRef=ref)]) == {"prod": [READ_SERVICES, READ_SLICES]}
    untracked = {**ref, "trackEndpoints": False}  # the operator publishes; agents read nothing
    assert plan_namespace_rbac([vip(serviceRef=untracked)]) == {}
    both = vip(serviceRef=ref, trackPods=TRACK)
    assert plan_namespace_rbac([both]) == {"prod": [READ_PODS, READ_SERVICES, READ_SLICES]}


def test_rendered_plan_binds_the_node_agents_service_account() -> None:
    objs = render_plan({"data": [READ_PODS]}, AGENTS)
    role, binding = objs
    for obj in objs:
        meta = obj["metadata"]
        assert (meta["namespace"], meta["name"]) == ("data", "keepvip-agent-tracking")
        assert meta["labels"]["keepvip.io/agent-rbac"] == "true"
        assert "ownerReferences" not in meta  # serves every VirtualIP of the namespace
    assert role["rules"] == [READ_PODS]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "keepvip-agent-tracking",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "keepvip-agent", "namespace": AGENTS}
    ]
