"""The API paths the node agent reads and writes, in one place.

The agent speaks the API's REST paths directly (:mod:`keepvip_agent.kube.rest`);
the operator's per-namespace grants (``keepvip_operator.rbac``) allow exactly
these resources, so a new path here needs a rule there.
"""

from __future__ import annotations

from keepvip_api.crd import GROUP, PLURAL, VERSION


def _ns(prefix: str, namespace: str | None, plural: str) -> str:
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def pods(namespace: str | None = None) -> str:
    return _ns("/api/v1", namespace, "pods")


def pod(namespace: str, name: str) -> str:
    return f"{pods(namespace)}/{name}"


def nodes() -> str:
    return "/api/v1/nodes"


def namespaces() -> str:
    return "/api/v1/namespaces"


def services(namespace: str) -> str:
    return _ns("/api/v1", namespace, "services")


def endpointslices(namespace: str) -> str:
    return _ns("/apis/discovery.k8s.io/v1", namespace, "endpointslices")


def secret(namespace: str, name: str) -> str:
    return f"{_ns('/api/v1', namespace, 'secrets')}/{name}"


def leases(namespace: str) -> str:
    return _ns("/apis/coordination.k8s.io/v1", namespace, "leases")


def lease(namespace: str, name: str) -> str:
    return f"{leases(namespace)}/{name}"


def virtualips(namespace: str | None = None) -> str:
    """Every VirtualIP (cluster-wide with no namespace)."""
    return _ns(f"/apis/{GROUP}/{VERSION}", namespace, PLURAL)


def virtualip_status(namespace: str, name: str) -> str:
    return f"{virtualips(namespace)}/{name}/status"
