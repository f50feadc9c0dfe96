"""The agents' least-privilege RBAC, rendered from the VirtualIP model (pure).

Each grant is there because the agent makes that exact request
(keepvip_agent.kube): it list-watches its own VirtualIP by field selector
(so ``resourceNames`` can restrict list and watch too), applies its entry of
the status, lists the DaemonSet's pods for peers, watches the tracked pods,
labels them with the role when asked to, holds one Lease, and with
``serviceRef.trackEndpoints`` list-watches the fronted Services by field
selector (so ``resourceNames`` names them) and their EndpointSlices.

Three grants cannot be narrowed further, and the table in docs/operator.md
says so: ``create`` on leases and events cannot name the object (the
authorizer sees no name on create), and pods and EndpointSlices are listed
namespace-wide (a label selector is not an authorization attribute).

A Role cannot reach into another namespace and an object cannot be owned
across namespaces, so tracking pods elsewhere gets a Role and RoleBinding in
that namespace, labelled with the owner's uid for the cleanup that garbage
collection cannot do.
"""

from __future__ import annotations

from typing import Any

from keepvip_api.model import VirtualIP
from keepvip_operator import names
from keepvip_operator.meta import metadata
from keepvip_operator.names import Target

RBAC_API = "rbac.authorization.k8s.io/v1"
Rule = dict[str, Any]


def _rule(group: str, resources: list[str], verbs: list[str], *only: str) -> Rule:
    rule: Rule = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if only:
        rule["resourceNames"] = list(only)
    return rule


def _pod_rules(role_label: bool) -> list[Rule]:
    rules = [_rule("", ["pods"], ["get", "list", "watch"])]
    if role_label:
        rules.append(_rule("", ["pods"], ["patch"]))
    return rules


def _service_rules(vip: VirtualIP) -> list[Rule]:
    ref = vip.spec.service_ref
    if ref is None or not ref.track_endpoints:
        return []
    return [
        _rule("", ["services"], ["get", "list", "watch"], *ref.services),
        _rule("discovery.k8s.io", ["endpointslices"], ["list", "watch"]),
    ]


def tracked_namespace(vip: VirtualIP, namespace: str) -> str | None:
    """The namespace of the tracked pods, if it is not the VirtualIP's own."""
    track = vip.spec.track_pods
    if track is None or track.namespace in (None, namespace):
        return None
    return track.namespace


def agent_rules(vip: VirtualIP, t: Target) -> list[Rule]:
    """What the agent may do in the VirtualIP's namespace."""
    track = vip.spec.track_pods
    role_label_here = (
        track is not None and track.role_label and tracked_namespace(vip, t.namespace) is None
    )
    lease = names.lease_name(t.name)
    return [
        _rule(names.GROUP, [names.PLURAL], ["get", "list", "watch"], t.name),
        _rule(names.GROUP, [f"{names.PLURAL}/status"], ["get", "patch"], t.name),
        *_pod_rules(role_label_here),
        *_service_rules(vip),
        _rule("coordination.k8s.io", ["leases"], ["create"]),
        _rule(
            "coordination.k8s.io", ["leases"], ["get", "list", "watch", "update", "patch"], lease
        ),
        _rule("", ["events"], ["create", "patch"]),
        _rule("events.k8s.io", ["events"], ["create", "patch"]),
    ]


def _role(meta: dict[str, Any], rules: list[Rule]) -> dict[str, Any]:
    return {"apiVersion": RBAC_API, "kind": "Role", "metadata": meta, "rules": rules}


def _binding(meta: dict[str, Any], role: str, t: Target) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [
            {"kind": "ServiceAccount", "name": names.child_name(t.name), "namespace": t.namespace}
        ],
    }


def render_rbac(vip: VirtualIP, t: Target) -> list[dict[str, Any]]:
    """Role and RoleBinding in the VirtualIP's namespace, owned by it."""
    name = names.child_name(t.name)
    return [
        _role(metadata(t, name), agent_rules(vip, t)),
        _binding(metadata(t, name), name, t),
    ]


def render_cross_namespace_rbac(vip: VirtualIP, t: Target) -> list[dict[str, Any]]:
    """Role and RoleBinding in the tracked pods' namespace, or nothing."""
    other = tracked_namespace(vip, t.namespace)
    if other is None:
        return []
    track = vip.spec.track_pods
    assert track is not None  # tracked_namespace() found one
    name = names.cross_namespace_name(t)
    labels = {names.VIP_NAMESPACE_LABEL: t.namespace, names.OWNER_UID_LABEL: t.uid}
    meta = metadata(t, name, namespace=other, owned=False, labels=labels)
    return [_role(meta, _pod_rules(track.role_label)), _binding(dict(meta), name, t)]
