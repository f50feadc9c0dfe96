"""A tenant of a shared cluster, and the chart's admission policy, for the tenancy tests.

A tenant is a real ServiceAccount with a Role that allows only ``create`` and
``update`` on VirtualIPs in its namespace (nothing on their status, nothing
else), acting through a token the API server issued (TokenRequest): what a
namespace user of a platform team's cluster holds. The chart's
ValidatingAdmissionPolicy (``templates/admission-policy.yaml``) is rendered by
helm and bound to one namespace only, so the rest of a shared test session is
never judged by it; removed on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .agentrbac import render
from .controlplane import ControlPlane
from .kubeapi import GROUP_PATH
from .rest import ApiError, Rest

RBAC = "/apis/rbac.authorization.k8s.io/v1"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
POLICY_TEMPLATE = "templates/admission-policy.yaml"


class Tenant:
    """A namespace user that may only create and update VirtualIPs there."""

    def __init__(self, cp: ControlPlane, namespace: str, name: str = "tenant") -> None:
        self.cp, self.namespace, self.name = cp, namespace, name
        admin = cp.admin_rest()
        admin.post(f"/api/v1/namespaces/{namespace}/serviceaccounts",
                   {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})  # fmt: skip
        admin.post(
            f"{RBAC}/namespaces/{namespace}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name},
                "rules": [{"apiGroups": ["keepvip.io"], "resources": ["virtualips"],
                           "verbs": ["create", "update"]}],
            },
        )  # fmt: skip
        admin.post(
            f"{RBAC}/namespaces/{namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        )
        self.api = Rest(cp.server, cp.ca_cert, token=cp.service_account_token(namespace, name))

    @property
    def base(self) -> str:
        return f"{GROUP_PATH}/namespaces/{self.namespace}/virtualips"

    def create(self, name: str, spec: dict[str, Any]) -> Any:
        body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        return self.api.post(self.base, body)

    def update_spec(self, name: str, spec: dict[str, Any]) -> Any:
        """A PUT (the tenant may not get or patch: the resourceVersion is read as admin)."""
        current = self.cp.admin_rest().get(f"{self.base}/{name}")
        body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
                "metadata": {"name": name, "resourceVersion": current["metadata"]["resourceVersion"]},
                "spec": spec}  # fmt: skip
        return self.api.request("PUT", f"{self.base}/{name}", body)


@contextlib.contextmanager
def admission_policy(cp: ControlPlane, namespace: str, values: Sequence[str] = ()) -> Iterator[str]:
    """The chart's commands policy and its binding, the binding narrowed to ``namespace``.

    Yields the policy's name. A policy takes effect a moment after it is created; the
    caller waits for its first refusal.
    """
    api = cp.admin_rest()
    objs = render(cp, namespace, POLICY_TEMPLATE, values)
    created: list[str] = []
    try:
        for obj in objs:
            if obj["kind"] == "ValidatingAdmissionPolicyBinding":
                obj["spec"]["matchResources"] = {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                }
                path = f"{ADMISSION}/validatingadmissionpolicybindings"
            else:
                path = f"{ADMISSION}/validatingadmissionpolicies"
            api.post(path, obj)
            created.append(f"{path}/{obj['metadata']['name']}")
        yield next(o["metadata"]["name"] for o in objs if o["kind"] == "ValidatingAdmissionPolicy")
    finally:
        for path in reversed(created):
            with contextlib.suppress(ApiError):
                api.delete(path)
