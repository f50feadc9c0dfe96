"""The metadata of every object the operator makes: names, labels and the owner reference.

Owned objects carry a controller owner reference with blockOwnerDeletion, so
the garbage collector removes them after the VirtualIP and a foreground
deletion of the VirtualIP waits for them.
"""

from __future__ import annotations

from typing import Any

from keepvip_operator import names
from keepvip_operator.names import Target


def owner_reference(t: Target) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": t.name,
        "uid": t.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    t: Target,
    name: str,
    *,
    namespace: str | None = None,
    owned: bool = True,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace or t.namespace,
        "labels": {**names.common_labels(t.name), **(labels or {})},
    }
    if owned:
        meta["ownerReferences"] = [owner_reference(t)]
    return meta
