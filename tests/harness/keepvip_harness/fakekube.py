"""Unit fakes of the operator's API side: a recording ``Kube``, observed VirtualIPs, JSON merge patch.

:class:`FakeKube` stands in for ``keepvip_operator.kube.Kube`` and records
every write (``apply``, ``delete``, ``json_patch``) and Event in order, so a
test asserts on what the Reconciler asked for; :func:`vip` builds an
``Observed`` VirtualIP created :data:`NOW` plus ``age`` seconds; :func:`merge`
applies an RFC 7386 merge patch as the API server does. Shared by the
Reconciler's unit tests (``tests/unit/test_operator_reconcile*.py``,
``test_operator_publish.py``), so none imports another.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime, timedelta
from typing import Any

from keepvip_operator.kube import ApiError
from keepvip_operator.observed import Observed, observe

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeKube:
    """The operator's ``Kube`` adapter, recording: writes and Events in call order.

    (``builtins.list`` below: the method ``list`` shadows the type in the class body.)
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.existing: set[str] = set()
        self.patch_error: ApiError | None = None
        self.listed: dict[str, builtins.list[dict[str, Any]]] = {}
        """What ``list`` answers, by kind (label selectors are not judged)."""

    def apply(self, obj: dict[str, Any], *, subresource: str = "") -> dict[str, Any]:
        name = obj["metadata"]["name"]
        self.calls.append(("apply", obj["kind"] + (f"/{subresource}" if subresource else ""), name))
        self.existing.add(f"{obj['kind']}/{name}")
        self.last_status = obj.get("status")
        return obj

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        orphan: bool = False,
    ) -> bool:
        self.calls.append(("delete", kind, name, "orphan") if orphan else ("delete", kind, name))
        return f"{kind}/{name}" in self.existing

    def list(self, api_version: str, kind: str, namespace: str | None, *, labels: str) -> list[Any]:
        return [dict(o, kind=kind, apiVersion=api_version) for o in self.listed.get(kind, [])]

    def delete_all(self, objs: Any) -> None:
        for o in objs:
            self.calls.append(("delete", o["kind"], o["metadata"]["name"]))

    def request(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        self.calls.append(("request", method, url, body))
        return {}

    def json_patch(self, url: str, ops: builtins.list[dict[str, Any]]) -> Any:
        self.calls.append(("json_patch", url, ops))
        if self.patch_error:
            raise self.patch_error

    def post_event(self, t: Any, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", type_, reason, message))

    def writes(self) -> builtins.list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] != "event"]

    def events(self) -> builtins.list[tuple[str, str]]:
        return [(c[2], c[3]) for c in self.calls if c[0] == "event"]


def vip(
    name: str,
    spec: dict[str, Any],
    *,
    status: dict[str, Any] | None = None,
    age: int = 0,
    gen: int = 1,
) -> Observed:
    return observe(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "generation": gen,
                "creationTimestamp": (NOW + timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": spec,
            "status": status or {},
        }
    )


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out
