"""Every converted corpus VirtualIP is accepted by the real CRD, with strict field validation.

The unit tier validates the converter's output against the pydantic model;
this proves it against what users will actually apply it to: the generated
CRD (structural schema and CEL rules) on a real kube-apiserver, with
``fieldValidation=Strict`` so an unknown or misspelled field is an error
rather than silently pruned. The Kubernetes form is created for real in a
fresh namespace (and read back: the server keeps every value as written);
the standalone form, which also carries ``notify``, is submitted as a
server-side dry run, since it shares the names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd
from keepvip_harness.rest import ApiError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "unit" / "convert_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "broken")


def documents(case: str, form: str) -> list[dict[str, Any]]:
    text = (CORPUS / case / f"{form}.expected.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def contains(stored: Any, sent: Any) -> bool:
    """Whether the server kept everything we sent (it may add defaults on top)."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(contains(stored.get(k), v) for k, v in sent.items())
    if isinstance(sent, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(sent)
            and all(contains(a, b) for a, b in zip(stored, sent, strict=True))
        )
    return bool(stored == sent)


def test_corpus_is_there() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", CASES)
def test_converted_virtualips_pass_the_crd(
    control_plane: ControlPlane, kube_namespace: str, case: str
) -> None:
    ensure_crd(control_plane)
    api = control_plane.admin_rest()
    path = f"{GROUP_PATH}/namespaces/{kube_namespace}/virtualips"
    strict = {"fieldValidation": "Strict"}
    # First the dry runs: a dry-run create of an existing name is refused with 409.
    for doc in documents(case, "standalone"):
        try:
            api.request("POST", path, doc, query={**strict, "dryRun": "All"})
        except ApiError as exc:
            pytest.fail(f"{case}/{doc['metadata']['name']} (standalone form): {exc}")
    for doc in documents(case, "kubernetes"):
        assert "namespace" not in doc["metadata"]  # the user picks it with kubectl -n
        try:
            api.request("POST", path, doc, query=strict)
        except ApiError as exc:
            pytest.fail(f"{case}/{doc['metadata']['name']}: {exc}")
        stored = api.get(f"{path}/{doc['metadata']['name']}")
        assert contains(stored["spec"], doc["spec"]), (stored["spec"], doc["spec"])


def test_strict_validation_is_really_on(control_plane: ControlPlane, kube_namespace: str) -> None:
    """A misspelled field is refused, so the acceptance above means something."""
    ensure_crd(control_plane)
    api = control_plane.admin_rest()
    (doc,) = documents("kubeadm-haproxy", "kubernetes")
    doc["spec"]["advertIntervall"] = "1s"
    path = f"{GROUP_PATH}/namespaces/{kube_namespace}/virtualips"
    with pytest.raises(ApiError) as err:
        api.request("POST", path, doc, query={"fieldValidation": "Strict", "dryRun": "All"})
    assert err.value.status == 400
    assert "advertIntervall" in str(err.value)
