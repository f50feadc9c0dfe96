"""The VirtualIPPool CRD on a real API server: bad pools are refused with the message a user
sees, good ones are accepted and defaulted as the model defaults them.

Like test_operator_crd.py for VirtualIPs: each bad input is refused twice, by
the API server and by the model (``parse_pool``, what the operator runs).
Pools are cluster-scoped, so each test names its pool uniquely and deletes
it by name at the end.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_api import SpecError
from keepvip_api.pool import parse_pool
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import apply, wait_for
from keepvip_harness.rest import ApiError

POOL_CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "keepvip.io_virtualippools.yaml"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualippools.keepvip.io"
POOLS = "/apis/keepvip.io/v1alpha1/virtualippools"
BASE = {"addresses": ["192.0.2.100-192.0.2.110"]}

# (id, spec, what the API says (substrings), what the model says (a substring))
BAD: list[tuple[str, dict[str, Any], list[str], str]] = [
    ("no-addresses", {"addresses": []},
     ["spec.addresses in body should have at least 1 items"],
     "spec.addresses: tuple should have at least 1 item"),
    ("not-an-address", {"addresses": ["192.0.2.300"]},
     ['spec.addresses[0]: Invalid value: "192.0.2.300"',
      "must be an address, a CIDR or a range first-last"],
     "spec.addresses[0]: '192.0.2.300' is not an address, a CIDR"),
    ("range-of-names", {"addresses": ["web-db"]},
     ["must be an address, a CIDR or a range first-last"],
     "spec.addresses[0]: 'web-db' is not an address"),
    ("unknown-field", {**BASE, "autoassign": False},
     ['unknown field "spec.autoassign"'], "spec.autoassign: unknown field"),
    ("interval-step", {**BASE, "advertInterval": "15ms"},
     ["spec.advertInterval", "must be 10ms..40.95s in 10ms steps"],
     "spec.advertInterval: must be 10ms..40.95s in 10ms steps"),
    ("fencing", {**BASE, "fencing": "hard"},
     ['spec.fencing: Unsupported value: "hard"'], "spec.fencing: 'hard' is not allowed"),
    ("priority", {**BASE, "priority": 0},
     ["spec.priority in body should be greater than or equal to 1"],
     "spec.priority: 0 is not in 1..254"),
]  # fmt: skip

GOOD: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {"addresses": ["192.0.2.100"]}),
    ("everything", {
        "addresses": ["192.0.2.96/28", "198.51.100.10-198.51.100.20", "2001:db8::100"],
        "autoAssign": False,
        "namespaces": ["web", "db"],
        "interface": "eth0",
        "nodeSelector": {"node-role.kubernetes.io/edge": ""},
        "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
        "advertInterval": "100ms",
        "priority": 120,
        "nodes": [{"name": "edge-1", "priority": 200}],
        "preempt": True,
        "preemptDelay": "10s",
        "fencing": "strict",
    }),
]  # fmt: skip


@pytest.fixture(scope="module")
def pool_crd(control_plane: ControlPlane) -> None:
    api = control_plane.admin_rest()
    apply(api, CRD_PATH, yaml.safe_load(POOL_CRD_FILE.read_text()), "keepvip-tests")

    def established() -> bool:
        conds = api.get(CRD_PATH).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("the VirtualIPPool CRD to be established", established)
    wait_for("the VirtualIPPool API to be served", lambda: api.get(POOLS) is not None)


@pytest.fixture
def pool_name(control_plane: ControlPlane) -> Iterator[str]:
    name = f"kvt-pool-{secrets.token_hex(4)}"
    yield name
    try:
        control_plane.admin_rest().delete(f"{POOLS}/{name}")
    except ApiError as exc:
        if exc.status != 404:
            raise


def document(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(cp: ControlPlane, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = cp.admin_rest().request(
        "POST", POOLS, body, query={"fieldValidation": "Strict"}
    )
    return created


@pytest.mark.parametrize(
    ("spec", "api_says", "model_says"), [r[1:] for r in BAD], ids=[r[0] for r in BAD]
)
def test_the_api_refuses_a_bad_pool_as_the_model_does(
    control_plane: ControlPlane,
    pool_crd: None,
    pool_name: str,
    spec: dict[str, Any],
    api_says: list[str],
    model_says: str,
) -> None:
    body = document(pool_name, spec)
    with pytest.raises(ApiError) as refused:
        create(control_plane, body)
    assert refused.value.status in (400, 422)
    message = refused.value.body["message"]
    for text in api_says:
        assert text in message, message
    with pytest.raises(SpecError) as problems:
        parse_pool(body)
    assert any(model_says in line for line in problems.value.problems), problems.value.problems


@pytest.mark.parametrize("spec", [g[1] for g in GOOD], ids=[g[0] for g in GOOD])
def test_the_api_accepts_a_pool_and_defaults_it_as_the_model_does(
    control_plane: ControlPlane, pool_crd: None, pool_name: str, spec: dict[str, Any]
) -> None:
    stored = create(control_plane, document(pool_name, spec))
    assert parse_pool(stored).spec == parse_pool(document(pool_name, spec)).spec
