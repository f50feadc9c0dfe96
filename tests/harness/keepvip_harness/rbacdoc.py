"""The RBAC tables of docs/security.md, generated from what the chart and the operator render.

Three tables: the node agents' static grants (the chart's
``templates/agent-rbac.yaml``), the grants the operator adds per namespace
(:func:`keepvip_operator.rbac.plan_namespace_rbac`, for one VirtualIP of each
kind that needs one) and the operator's own ClusterRole (``templates/rbac.yaml``).
They sit between ``<!-- rbac-tables:begin -->`` and ``<!-- rbac-tables:end -->``;
``tests/unit/test_chart.py`` fails when the file is stale, and
``python -m keepvip_harness.rbacdoc --write`` (``make rbac-docs``) rewrites it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from keepvip_api import parse_virtualip
from keepvip_operator.rbac import plan_namespace_rbac

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "keepvip"
DOC = REPO / "docs" / "security.md"
BEGIN, END = "<!-- rbac-tables:begin -->", "<!-- rbac-tables:end -->"
TRACK = {"selector": {"matchLabels": {"app": "db"}}, "onFailure": {"action": "fault"}}
NEEDS: dict[str, dict[str, Any]] = {
    "where a VirtualIP tracks pods (`trackPods.namespace`, default its own)": {"trackPods": TRACK},
    "where a VirtualIP tracks pods with `trackPods.roleLabel`": {
        "trackPods": {**TRACK, "roleLabel": True}
    },
    "where a VirtualIP has `serviceRef` with `trackEndpoints` (its own namespace)": {
        "serviceRef": {"name": "web"}
    },
    "the agents' namespace, and only the Secrets that VirtualIPs name in "
    "`authHMAC.secretName` (`resourceNames`)": {"authHMAC": {"secretName": "keys"}},
}


def helm_binary() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "controlplane" / "build.sh"), "bin-dir"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return str(Path(out) / "helm") if out else "helm"


def chart_objects(helm: str, template: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "keepvip", str(CHART), "--namespace", "keepvip-system",
         "--kube-version", "1.31.0", "--show-only", template],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def _rows(rules: list[dict[str, Any]], where: str) -> list[str]:
    out = []
    for rule in rules:
        groups = ", ".join(g or "core" for g in rule["apiGroups"])
        resources = ", ".join(rule["resources"])
        names = f" (only {', '.join(rule['resourceNames'])})" if rule.get("resourceNames") else ""
        out.append(f"| {resources} ({groups}) | {', '.join(rule['verbs'])} | {where}{names} |")
    return out


def _table(rows: list[str]) -> str:
    return "\n".join(["| resource (API group) | verbs | where |", "|---|---|---|", *rows])


def render(helm: str) -> str:
    agents = {o["kind"]: o for o in chart_objects(helm, "templates/agent-rbac.yaml")}
    static = _rows(agents["ClusterRole"]["rules"], "cluster-wide (ClusterRole)")
    static += _rows(agents["Role"]["rules"], "the agents' namespace only (Role)")
    per_ns: list[str] = []
    for where, spec in NEEDS.items():
        vip = parse_virtualip(
            {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
             "metadata": {"name": "x", "namespace": "n"},
             "spec": {"addresses": ["192.0.2.1"], **spec}}
        )  # fmt: skip
        rules = plan_namespace_rbac([("n", vip)], "n")["n"]
        per_ns += _rows(
            [{k: v for k, v in r.items() if k != "resourceNames"} for r in rules], where
        )
    per_ns = _dedupe(per_ns)
    operator = next(
        o for o in chart_objects(helm, "templates/rbac.yaml") if o["kind"] == "ClusterRole"
    )
    return "\n\n".join(
        [
            BEGIN,
            "The node agents' ServiceAccount `keepvip-agent` (agents' namespace), from the chart:",
            _table(static),
            "Added by the operator per namespace (Role and RoleBinding `keepvip-agent-tracking`, "
            "withdrawn when no VirtualIP there needs it any more):",
            _table(per_ns),
            "The operator's ClusterRole (chart defaults; see [operator.md](operator.md)):",
            _table(_rows(operator["rules"], "cluster-wide")),
            END,
        ]
    )


def _dedupe(rows: list[str]) -> list[str]:
    """One row per (resource, verbs): the first need that grants it names where."""
    out, seen = [], set()
    for row in rows:
        key = row.split(" | ")[:2]
        if tuple(key) not in seen:
            seen.add(tuple(key))
            out.append(row)
    return out


def current(doc: str) -> str:
    return doc[doc.index(BEGIN) : doc.index(END) + len(END)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="rewrite docs/security.md")
    args = p.parse_args()
    doc, fresh = DOC.read_text(), render(helm_binary())
    if args.write:
        DOC.write_text(doc.replace(current(doc), fresh))
        return 0
    print(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
