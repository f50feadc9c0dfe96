"""The CustomResourceDefinitions (VirtualIP, VirtualIPPool), generated from the models.

The models are the one source of truth: ``python -m keepvip_api.crd
[virtualips|virtualippools]`` prints a CRD; ``crds/`` and the Helm chart hold
copies that a test keeps equal to this output. The pydantic JSON schema
is turned into a Kubernetes structural schema here: references inlined,
optional unions collapsed, no ``additionalProperties: false`` (the API server
prunes and, with strict field validation, rejects unknown fields), and the
CEL rules that the model classes attach carried through.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from keepvip_api.model import VirtualIPSpec
from keepvip_api.pool import POOL_KIND, POOL_PLURAL, VirtualIPPoolSpec, VirtualIPPoolStatus
from keepvip_api.status import VirtualIPStatus
from keepvip_api.types import DURATION_PATTERN, format_duration

GROUP = "keepvip.io"
VERSION = "v1alpha1"
KIND = "VirtualIP"
PLURAL = "virtualips"
SHORT_NAMES = ["vip"]
_DROP = {"title", "additionalProperties", "$defs", "discriminator", "x-keepvip-agent-default"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "properties":
            out[key] = {name: _structural(v, defs) for name, v in value.items()}
        elif key == "default":
            default = _default(node, value)
            if default is not None:
                out[key] = default
        else:
            out[key] = _structural(value, defs)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


AGENT_DEFAULT = "x-keepvip-agent-default"
"""Marks a field whose default is applied by keepvip, not by the API server: a field added
in a later release, so objects served to an older operator or agent during an upgrade do
not carry a field it would refuse as unknown."""


def _default(node: dict[str, Any], value: Any) -> Any:
    """Scalar defaults go into the CRD; object and list defaults live in the agent only, and
    so do those of fields marked :data:`AGENT_DEFAULT`."""
    if value is None or isinstance(value, dict | list) or node.get(AGENT_DEFAULT):
        return None
    if node.get("pattern") == DURATION_PATTERN and isinstance(value, int | float):
        return format_duration(value)
    return value


def openapi_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    scope: str,
    short_names: list[str],
    columns: list[dict[str, Any]],
    root: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["keepvip"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _root(
    description: str, spec: dict[str, Any], status: dict[str, Any], rules: list[Any]
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        **({"x-kubernetes-validations": rules} if rules else {}),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def virtualip_crd() -> dict[str, Any]:
    spec = openapi_schema(VirtualIPSpec)
    spec["description"] = "Desired virtual IP: addresses, election settings, checks, placement."
    status = openapi_schema(VirtualIPStatus)
    status["description"] = "Observed state, written by the agents and the operator."
    # The agents' pods carry the name as a label value.
    name_rule = {
        "rule": "self.metadata.name.size() <= 63",
        "message": "metadata.name: at most 63 characters (it labels the agent pods)",
    }
    root = _root("A virtual IP kept on one healthy node by VRRP.", spec, status, [name_rule])
    columns = [
        {"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"},
        {"name": "VRID", "type": "integer", "jsonPath": ".status.virtualRouterID"},
        {"name": "Master", "type": "string", "jsonPath": ".status.master"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
    ]
    return _crd(
        kind=KIND,
        plural=PLURAL,
        scope="Namespaced",
        short_names=SHORT_NAMES,
        columns=columns,
        root=root,
    )


def pool_crd() -> dict[str, Any]:
    spec = openapi_schema(VirtualIPPoolSpec)
    spec["description"] = (
        "Addresses for LoadBalancer Services of class keepvip.io/vrrp, and the defaults of the "
        "VirtualIPs made for them."
    )
    status = openapi_schema(VirtualIPPoolStatus)
    status["description"] = "Usage, written by the operator."
    root = _root("A pool of virtual IPs for LoadBalancer Services.", spec, status, [])
    columns = [
        {"name": "Addresses", "type": "string", "jsonPath": ".spec.addresses"},
        {"name": "Assigned", "type": "integer", "jsonPath": ".status.assigned"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.available"},
    ]
    return _crd(
        kind=POOL_KIND,
        plural=POOL_PLURAL,
        scope="Cluster",
        short_names=["vippool"],
        columns=columns,
        root=root,
    )


CRDS = {PLURAL: (KIND, virtualip_crd), POOL_PLURAL: (POOL_KIND, pool_crd)}
"""Every CRD by plural; ``crds/keepvip.io_<plural>.yaml`` holds each."""


def render(plural: str = PLURAL) -> str:
    arg = "" if plural == PLURAL else f" {plural}"
    kind, build = CRDS[plural]
    header = (
        f"# Generated by `python -m keepvip_api.crd{arg}` from the {kind} model. Do not edit.\n"
    )
    return header + yaml.safe_dump(build(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render(*sys.argv[1:2]))
