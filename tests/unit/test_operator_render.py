"""Rendering (pure): the agents' DaemonSet, ServiceAccount and RBAC for a VirtualIP.

The DaemonSet is checked whole against a golden copy (the container contract
the agent implements), then the properties that matter one by one: the
template carries no VirtualIP spec, settings reach the pod, and the RBAC is
exactly what the agent's requests need.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml

from keepvip_api import VirtualIP, parse_virtualip
from keepvip_operator.names import Target
from keepvip_operator.rbac import agent_rules, render_cross_namespace_rbac, render_rbac
from keepvip_operator.render import render_daemonset, render_namespaced
from keepvip_operator.settings import AgentResources, OperatorSettings

TARGET = Target("prod", "web", "1111-2222")
SETTINGS = OperatorSettings(agent_image="keepvip:1.0")


def vip(name: str = "web", **spec: Any) -> VirtualIP:
    return parse_virtualip(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"addresses": ["192.0.2.50/24"], **spec},
        }
    )


PLACED = {
    "nodeSelector": {"node-role.kubernetes.io/edge": ""},
    "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
}

GOLDEN_DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: keepvip-web
  namespace: prod
  labels:
    app.kubernetes.io/name: keepvip-agent
    keepvip.io/virtualip: web
    app.kubernetes.io/managed-by: keepvip-operator
  ownerReferences:
  - apiVersion: keepvip.io/v1alpha1
    kind: VirtualIP
    name: web
    uid: 1111-2222
    controller: true
    blockOwnerDeletion: true
  annotations:
    keepvip.io/metrics-port: '9650'
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: keepvip-agent
      keepvip.io/virtualip: web
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
        keepvip.io/virtualip: web
        app.kubernetes.io/managed-by: keepvip-operator
      annotations:
        kubectl.kubernetes.io/default-container: agent
    spec:
      serviceAccountName: keepvip-web
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
        - --virtualip
        - $(POD_NAMESPACE)/web
        - --node
        - $(NODE_NAME)
        - --metrics-port
        - '9650'
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
        ports:
        - name: metrics
          containerPort: 9650
          hostPort: 9650
          protocol: TCP
        readinessProbe:
          httpGet:
            path: /readyz
            port: 9650
            scheme: HTTP
          periodSeconds: 2
          timeoutSeconds: 2
          failureThreshold: 3
        livenessProbe:
          httpGet:
            path: /healthz
            port: 9650
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
            memory: 128Mi
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
      priorityClassName: system-node-critical
      nodeSelector:
        node-role.kubernetes.io/edge: ''
      tolerations:
      - key: edge
        operator: Exists
        effect: NoSchedule
"""


def test_daemonset_golden() -> None:
    rendered = render_daemonset(vip(**PLACED), TARGET, SETTINGS, 9650)
    assert rendered == yaml.safe_load(GOLDEN_DAEMONSET)
    # The API accepts only strings for annotations and args; YAML above keeps them quoted.
    container = rendered["spec"]["template"]["spec"]["containers"][0]
    assert all(isinstance(a, str) for a in container["args"])


def test_objects_in_apply_order_all_owned_by_the_virtualip() -> None:
    objs = render_namespaced(vip(), TARGET, SETTINGS, 9650)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "keepvip-web"),
        ("Role", "keepvip-web"),
        ("RoleBinding", "keepvip-web"),
        ("DaemonSet", "keepvip-web"),
    ]
    for obj in objs:
        assert obj["metadata"]["namespace"] == "prod"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "keepvip.io/v1alpha1",
                "kind": "VirtualIP",
                "name": "web",
                "uid": "1111-2222",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/name": "keepvip-agent",
            "app.kubernetes.io/managed-by": "keepvip-operator",
            "keepvip.io/virtualip": "web",
        }


@pytest.mark.parametrize(
    "change",
    [
        {"priority": 200},
        {"advertInterval": "100ms", "preempt": True, "preemptDelay": "5s"},
        {"addresses": ["192.0.2.51/24", "2001:db8::51/64"]},
        {"virtualRouterID": 42, "nodes": [{"name": "n1", "priority": 150}]},
        {
            "checks": [
                {"name": "up", "link": {"interface": "eth0"}, "onFailure": {"action": "fault"}}
            ]
        },
        {"fencing": "strict", "unicastPeers": ["192.0.2.2"]},
        {
            "trackPods": {
                "selector": {"matchLabels": {"app": "x"}},
                "onFailure": {"action": "fault"},
            }
        },
    ],
    ids=["priority", "timers", "addresses", "vrid-nodes", "checks", "fencing-peers", "track-pods"],
)
def test_the_template_does_not_embed_the_spec(change: dict[str, Any]) -> None:
    """A spec change reaches the agents live, never by rolling the pods."""
    before = render_daemonset(vip(), TARGET, SETTINGS, 9650)["spec"]["template"]
    after = render_daemonset(vip(**change), TARGET, SETTINGS, 9650)["spec"]["template"]
    assert before == after


def test_placement_and_settings_do_shape_the_template() -> None:
    base = render_daemonset(vip(), TARGET, SETTINGS, 9650)["spec"]["template"]["spec"]
    placed = render_daemonset(vip(**PLACED), TARGET, SETTINGS, 9650)["spec"]["template"]["spec"]
    assert "nodeSelector" not in base and "tolerations" not in base
    assert placed["nodeSelector"] == PLACED["nodeSelector"]
    assert placed["tolerations"] == PLACED["tolerations"]

    settings = replace(
        SETTINGS,
        agent_image_pull_policy="Always",
        agent_log_level="debug",
        priority_class_name=None,
        termination_grace_period_seconds=45,
        agent_resources=AgentResources(cpu_limit="500m", memory_limit=None),
        extra_pod_labels={"keepvip.test/launch": "true", "app.kubernetes.io/name": "hijack"},
        extra_pod_annotations={"note": "x"},
    )
    ds = render_daemonset(vip(), TARGET, settings, 9700)
    template = ds["spec"]["template"]
    pod = template["spec"]
    container = pod["containers"][0]
    assert "priorityClassName" not in pod
    assert pod["terminationGracePeriodSeconds"] == 45
    assert container["imagePullPolicy"] == "Always"
    assert container["args"][-2:] == ["--log-level", "debug"]
    assert container["args"][4:6] == ["--metrics-port", "9700"]
    assert container["readinessProbe"]["httpGet"]["port"] == 9700
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"cpu": "500m"},
    }
    # Extra labels are added, but never replace the selector's (which is immutable anyway).
    assert template["metadata"]["labels"]["keepvip.test/launch"] == "true"
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "keepvip-agent"
    assert ds["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "keepvip-agent",
        "keepvip.io/virtualip": "web",
    }
    assert template["metadata"]["annotations"]["note"] == "x"


def test_default_resources_have_no_cpu_limit() -> None:
    assert AgentResources().render() == {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"memory": "128Mi"},
    }


# -- RBAC -----------------------------------------------------------------------------------

BASE_RULES = [
    {"apiGroups": ["keepvip.io"], "resources": ["virtualips"], "verbs": ["get", "list", "watch"],
     "resourceNames": ["web"]},
    {"apiGroups": ["keepvip.io"], "resources": ["virtualips/status"], "verbs": ["get", "patch"],
     "resourceNames": ["web"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "list", "watch", "update", "patch"], "resourceNames": ["keepvip-web"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]  # fmt: skip
POD_PATCH = {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}
TRACK = {"selector": {"matchLabels": {"app": "redis"}}, "onFailure": {"action": "fault"}}


def test_agent_rules_golden() -> None:
    assert agent_rules(vip(), TARGET) == BASE_RULES


@pytest.mark.parametrize(
    ("track", "pod_patch_here"),
    [
        ({**TRACK}, False),
        ({**TRACK, "roleLabel": True}, True),
        ({**TRACK, "roleLabel": True, "namespace": "prod"}, True),
        ({**TRACK, "roleLabel": True, "namespace": "data"}, False),
    ],
    ids=["no-role-label", "role-label", "role-label-same-namespace", "role-label-elsewhere"],
)
def test_pods_are_patched_only_for_role_labels_where_they_live(
    track: dict[str, Any], pod_patch_here: bool
) -> None:
    rules = agent_rules(vip(trackPods=track), TARGET)
    assert (POD_PATCH in rules) is pod_patch_here
    assert [r for r in rules if r != POD_PATCH] == BASE_RULES


SERVICE_RULES = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"],
     "resourceNames": ["web", "web-udp"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
     "verbs": ["list", "watch"]},
]  # fmt: skip


def test_service_ref_grants_the_named_services_and_endpointslices() -> None:
    ref = {"name": "web", "sharedWith": ["web-udp"]}
    assert agent_rules(vip(serviceRef=ref), TARGET) == [
        *BASE_RULES[:3],
        *SERVICE_RULES,
        *BASE_RULES[3:],
    ]
    untracked = {**ref, "trackEndpoints": False}  # the operator publishes; agents read nothing
    assert agent_rules(vip(serviceRef=untracked), TARGET) == BASE_RULES


def test_role_binding_binds_the_agents_service_account() -> None:
    role, binding = render_rbac(vip(), TARGET)
    assert role["kind"] == "Role" and binding["kind"] == "RoleBinding"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "keepvip-web",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "keepvip-web", "namespace": "prod"}
    ]


def test_cross_namespace_rbac_only_for_pods_elsewhere() -> None:
    assert render_cross_namespace_rbac(vip(), TARGET) == []
    assert render_cross_namespace_rbac(vip(trackPods={**TRACK, "namespace": "prod"}), TARGET) == []
    role, binding = render_cross_namespace_rbac(
        vip(trackPods={**TRACK, "namespace": "data", "roleLabel": True}), TARGET
    )
    for obj in (role, binding):
        meta = obj["metadata"]
        assert (meta["namespace"], meta["name"]) == ("data", "keepvip-prod.web")
        assert "ownerReferences" not in meta  # owners cannot be in another namespace
        assert meta["labels"]["keepvip.io/owner-uid"] == "1111-2222"
        assert meta["labels"]["keepvip.io/virtualip-namespace"] == "prod"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        POD_PATCH,
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "keepvip-web", "namespace": "prod"}
    ]
