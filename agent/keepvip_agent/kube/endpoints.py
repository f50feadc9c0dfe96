"""Pure readings of Services and their EndpointSlices: can this node serve every fronted Service?

Why the Service's endpoints and not a pod selector (``trackPods``): the
EndpointSlices are exactly what kube-proxy forwards to, so they answer the
question the VIP's holder has to answer, "will traffic to me reach a
backend?", with the Service's own selector, ports and readiness rules, and
the user writes nothing twice. What "can serve" means follows kube-proxy:

* ``externalTrafficPolicy: Local``: kube-proxy sends external traffic only
  to endpoints on the node that received it (and drops it when there are
  none), so the node needs a Ready endpoint whose ``nodeName`` is itself.
* ``Cluster`` (the default): kube-proxy forwards to any Ready endpoint in
  the cluster, so one anywhere will do.

An endpoint counts when ``conditions.ready`` is true (the API says absent
means true) and it is not terminating. kube-proxy's last-resort fallback to
serving-but-terminating endpoints is deliberately not counted: a node that
has only those is about to lose them, and another node may have a live one.
A Service that does not exist (or is of type ExternalName) cannot be served.
With several Services on one address (``sharedWith``), the node must serve
all of them: the address is moved as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label the EndpointSlice controller puts on a Service's slices."""


def endpoint_ready(endpoint: Mapping[str, Any]) -> bool:
    cond = endpoint.get("conditions") or {}
    return cond.get("ready") is not False and not cond.get("terminating")


def slices_of(slices: Iterable[Mapping[str, Any]], service: str) -> list[Mapping[str, Any]]:
    return [
        s
        for s in slices
        if ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == service
    ]


def local_policy(service: Mapping[str, Any]) -> bool:
    return (service.get("spec") or {}).get("externalTrafficPolicy") == "Local"


def serves(
    name: str,
    service: Mapping[str, Any] | None,
    slices: Iterable[Mapping[str, Any]],
    node: str,
) -> tuple[bool, str]:
    """(can ``node`` serve Service ``name``, a detail naming it and the counts)."""
    if service is None:
        return False, f"Service {name} not found"
    if (service.get("spec") or {}).get("type") == "ExternalName":
        return False, f"Service {name} is of type ExternalName (no endpoints)"
    ready_on: list[str | None] = []
    total = 0
    seen: set[tuple[str, ...]] = set()
    for sl in slices_of(slices, name):
        for ep in sl.get("endpoints") or []:
            # The same endpoint can appear in two slices while the controller moves it.
            key = (str(ep.get("nodeName")), *sorted(ep.get("addresses") or ()))
            if key in seen:
                continue
            seen.add(key)
            total += 1
            if endpoint_ready(ep):
                ready_on.append(ep.get("nodeName"))
    if local_policy(service):
        here = sum(1 for n in ready_on if n == node)
        detail = (
            f"Service {name}: {here} Ready endpoint(s) on {node}, "
            f"{len(ready_on)}/{total} in all (externalTrafficPolicy Local)"
        )
        return here > 0, detail
    detail = (
        f"Service {name}: {len(ready_on)}/{total} endpoint(s) Ready (externalTrafficPolicy Cluster)"
    )
    return bool(ready_on), detail


def judge(
    names: Sequence[str],
    services: Mapping[str, Mapping[str, Any] | None],
    slices: Iterable[Mapping[str, Any]],
    node: str,
) -> tuple[bool, str]:
    """(healthy, detail) for the node: healthy when it can serve every Service in ``names``.

    The detail lists the Services that fail (or all of them when none fails).
    """
    slices = list(slices)
    results = [serves(n, services.get(n), slices, node) for n in names]
    failing = [d for ok, d in results if not ok]
    if failing:
        return False, "; ".join(failing)
    return True, "; ".join(d for _ok, d in results)
