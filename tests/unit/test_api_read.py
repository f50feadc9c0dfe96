"""Objects read from the API become models in one place; the election settings a pool shares are one definition.

:func:`from_api_object` is what the agent, the operator's reconciler and its
load-balancer side all call on a raw VirtualIP (and
:func:`pool_from_api_object` on a raw pool): what the API server adds
(metadata fields, status) is not the model's, and the agent's reading fills
in the VRID the operator allocated.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from keepvip_api import SpecError, from_api_object, pool_from_api_object
from keepvip_api.election import POOL_FIELDS
from keepvip_api.model import VirtualIPSpec
from keepvip_api.pool import VirtualIPPoolSpec

SERVER_METADATA = {
    "name": "web",
    "namespace": "shop",
    "uid": "0b1c",
    "generation": 3,
    "resourceVersion": "812",
    "creationTimestamp": "2026-01-02T03:04:05Z",
    "labels": {"app.kubernetes.io/managed-by": "keepvip-operator"},
    "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
}


def virtualip(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": copy.deepcopy(SERVER_METADATA),
        "spec": {"addresses": ["192.0.2.50/24"], **spec},
        "status": {
            "virtualRouterID": 7,
            "master": "n1",
            "nodes": [{"name": "n1", "state": "Master"}],
        },
    }


def test_server_fields_and_status_are_not_the_models() -> None:
    vip = from_api_object(virtualip(virtualRouterID=51))
    assert vip.key == "shop/web"
    assert vip.spec.virtual_router_id == 51
    assert vip.spec.addresses[0].with_prefixlen == "192.0.2.50/24"


def test_the_allocated_vrid_fills_a_spec_without_one_for_the_agent_only() -> None:
    obj = virtualip()
    assert from_api_object(obj).spec.virtual_router_id is None  # the operator's reading
    assert from_api_object(obj, allocated_vrid=True).spec.virtual_router_id == 7
    # The spec's own VRID wins over an allocation.
    assert (
        from_api_object(virtualip(virtualRouterID=51), allocated_vrid=True).spec.virtual_router_id
        == 51
    )
    assert obj["spec"] == {"addresses": ["192.0.2.50/24"]}  # the object read is not touched


def test_an_invalid_spec_lists_every_problem() -> None:
    with pytest.raises(SpecError) as err:
        from_api_object(virtualip(virtualRouterID=300, priority=0))
    assert err.value.problems == [
        "spec.virtualRouterID: 300 is not in 1..255",
        "spec.priority: 0 is not in 1..254",
    ]


def test_a_pool_object() -> None:
    body = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {**copy.deepcopy(SERVER_METADATA), "name": "lan"},
        "spec": {"addresses": ["192.0.2.0/30"], "preempt": True},
        "status": {"assigned": 1, "available": 1, "services": ["shop/web"]},
    }
    pool = pool_from_api_object(body)
    assert pool.metadata.name == "lan"
    assert [str(a) for a in pool.spec.candidates()] == ["192.0.2.1", "192.0.2.2"]
    with pytest.raises(SpecError, match=r"spec\.priority: 300 is not in 1\.\.254"):
        pool_from_api_object({**body, "spec": {"addresses": ["192.0.2.1"], "priority": 300}})


@pytest.mark.parametrize("alias", POOL_FIELDS)
def test_a_pool_and_a_virtualip_agree_on_each_election_field(alias: str) -> None:
    """Same type, bounds and default: what a pool sets, its VirtualIPs accept and mean alike."""
    mine = {f.alias or n: f for n, f in VirtualIPSpec.model_fields.items()}[alias]
    pools = {f.alias or n: f for n, f in VirtualIPPoolSpec.model_fields.items()}[alias]
    assert mine.annotation == pools.annotation
    assert mine.metadata == pools.metadata
    assert mine.json_schema_extra == pools.json_schema_extra
    assert (mine.default, mine.default_factory) == (pools.default, pools.default_factory)
