"""The node agents' per-namespace RBAC, planned from every VirtualIP (pure).

The one agent ServiceAccount (``keepvip-agent`` in the agents' namespace)
gets its static grants from the chart: VirtualIPs and their status, Nodes,
Events, its Leases and its peers' pods. What depends on the VirtualIPs is
decided here and granted per namespace, so the agents can read pods and
EndpointSlices only where some VirtualIP tracks them:

* where some VirtualIP tracks pods (``trackPods.namespace``, default its own):
  pods get/list/watch, and patch only if one of them sets ``roleLabel``;
* where some VirtualIP fronts Services and follows their endpoints
  (``serviceRef`` with ``trackEndpoints``, its own namespace): services
  get/list/watch and endpointslices list/watch (with ``trackEndpoints: false``
  the operator publishes and the agents read nothing);
* in the agents' own namespace, when VirtualIPs authenticate their adverts
  (``authHMAC.secretName``): ``get`` on exactly those Secrets (``resourceNames``),
  nothing else. A Secret no VirtualIP names any more is withdrawn with the rule.

Each such namespace gets one Role and one RoleBinding ``keepvip-agent-tracking``,
labelled ``keepvip.io/agent-rbac=true``; a namespace that no VirtualIP needs
any more loses them (the caller finds them by that label). Services are not
narrowed by name: one Role serves every VirtualIP of the namespace, and the
agent watches the namespace's Services with one watch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from keepvip_api.model import VirtualIP
from keepvip_operator import names

RBAC_API = "rbac.authorization.k8s.io/v1"
Rule = dict[str, Any]


def _rule(group: str, resource: str, verbs: list[str]) -> Rule:
    return {"apiGroups": [group], "resources": [resource], "verbs": verbs}


def plan_namespace_rbac(
    vips: Iterable[tuple[str, VirtualIP]], agent_namespace: str | None = None
) -> dict[str, list[Rule]]:
    """Namespace -> the rules the node agents need there, for these (namespace, VirtualIP)s.

    A namespace absent from the result needs no grant. Rules come in a fixed
    order (pods, then Services and EndpointSlices, then Secrets), so equal needs
    render equal Roles. Secrets are planned only when ``agent_namespace`` is given.
    """
    pods: dict[str, bool] = {}  # namespace -> some VirtualIP asks for roleLabel there
    fronts: set[str] = set()
    secrets: set[str] = set()
    for namespace, vip in vips:
        auth = vip.spec.auth_hmac
        if auth is not None and auth.secret_name is not None:
            secrets.add(auth.secret_name)
        track = vip.spec.track_pods
        if track is not None:
            where = track.namespace or namespace
            pods[where] = pods.get(where, False) or track.role_label
        ref = vip.spec.service_ref
        if ref is not None and ref.track_endpoints:
            fronts.add(namespace)
    plan: dict[str, list[Rule]] = {}
    keyed = {agent_namespace} if agent_namespace is not None and secrets else set()
    for namespace in sorted({*pods, *fronts, *keyed}):
        rules: list[Rule] = []
        if namespace in pods:
            rules.append(_rule("", "pods", ["get", "list", "watch"]))
            if pods[namespace]:
                rules.append(_rule("", "pods", ["patch"]))
        if namespace in fronts:
            rules.append(_rule("", "services", ["get", "list", "watch"]))
            rules.append(_rule("discovery.k8s.io", "endpointslices", ["list", "watch"]))
        if namespace in keyed:
            rules.append(_rule("", "secrets", ["get"]) | {"resourceNames": sorted(secrets)})
        plan[namespace] = rules
    return plan


def _meta(namespace: str) -> dict[str, Any]:
    return {
        "name": names.AGENT_RBAC_NAME,
        "namespace": namespace,
        "labels": names.agent_rbac_labels(),
    }


def render_namespace_rbac(
    namespace: str, rules: list[Rule], agent_namespace: str
) -> list[dict[str, Any]]:
    """The Role and RoleBinding granting ``rules`` in ``namespace``, in the order to apply."""
    return [
        {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(namespace), "rules": rules},
        {
            "apiVersion": RBAC_API,
            "kind": "RoleBinding",
            "metadata": _meta(namespace),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": names.AGENT_RBAC_NAME,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": names.NODE_AGENT_NAME,
                    "namespace": agent_namespace,
                }
            ],
        },
    ]


def render_plan(plan: Mapping[str, list[Rule]], agent_namespace: str) -> list[dict[str, Any]]:
    """Every Role and RoleBinding of a plan."""
    return [
        obj
        for namespace, rules in sorted(plan.items())
        for obj in render_namespace_rbac(namespace, rules, agent_namespace)
    ]
