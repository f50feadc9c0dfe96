"""``keepvip status`` (and ``kubectl keepvip status``) against a real API server.

Status entries are written the way agents write them: server-side apply of
one ``status.nodes[]`` entry per node, field manager ``keepvip-agent-<node>``,
so the three entries merge in the list map keyed by name exactly as in
production; the operator's ``master``, ``virtualRouterID`` and ``Ready``
condition are applied under its own manager. The command then runs as a
separate process with a kubeconfig, as a user would run it, and its table
(and ``-o json``) is checked row by row: the master, each node's state and
effective priority (with the configured one when they differ), the age of
the last transition and its reason, and a stale heartbeat flagged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness.agentrbac import NodeLeases
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import GROUP_PATH, ensure_crd
from keepvip_harness.rest import Rest
from keepvip_tools.cli import main

APPLY = "application/apply-patch+yaml"
NAME = "web"


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def virtualip(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "addresses": ["192.0.2.50/24", "2001:db8::50/64"],
            "interface": "eth0",
            "virtualRouterID": 51,
            "nodes": [
                {"name": "kv-node-1", "priority": 150},
                {"name": "kv-node-2", "priority": 120},
                {"name": "kv-node-3", "priority": 100},
            ],
        },
    }


def apply_status(api: Rest, namespace: str, manager: str, status: dict[str, Any]) -> None:
    body = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": NAME, "namespace": namespace},
        "status": status,
    }
    api.request(
        "PATCH",
        f"{GROUP_PATH}/namespaces/{namespace}/virtualips/{NAME}/status",
        body,
        query={"fieldManager": manager, "force": "true"},
        content_type=APPLY,
    )


def agent_entry(
    node: str,
    state: str,
    effective: int,
    configured: int,
    at: datetime,
    reason: str,
    beat: datetime,
) -> dict[str, Any]:
    return {
        "name": node,
        "state": state,
        "configuredPriority": configured,
        "effectivePriority": effective,
        "address": "198.51.100.1",
        "lastTransitionTime": rfc3339(at),
        "reason": reason,
        "faults": [],
        "heartbeatTime": rfc3339(beat),
    }


@pytest.fixture
def published(control_plane: ControlPlane, kube_namespace: str) -> str:
    """A VirtualIP whose status three agents and the operator have written."""
    ensure_crd(control_plane)
    api = control_plane.admin_rest()
    api.post(f"{GROUP_PATH}/namespaces/{kube_namespace}/virtualips", virtualip(kube_namespace))
    now = datetime.now(UTC)
    entries = {
        "kv-node-1": agent_entry(
            "kv-node-1",
            "Master",
            150,
            150,
            now - timedelta(minutes=42, seconds=10),
            "master down timer expired",
            now,
        ),
        "kv-node-2": agent_entry(
            "kv-node-2",
            "Backup",
            100,
            120,
            now - timedelta(hours=5, seconds=10),
            "higher priority master",
            now,
        ),
        # An agent that stopped writing ten minutes ago: its entry is stale.
        "kv-node-3": agent_entry(
            "kv-node-3",
            "Backup",
            100,
            100,
            now - timedelta(days=3, seconds=10),
            "start-up",
            now - timedelta(minutes=10, seconds=10),
        ),
    }
    for node, entry in entries.items():
        apply_status(api, kube_namespace, f"keepvip-agent-{node}", {"nodes": [entry]})
    # Their node Leases, as node agents renew them: kv-node-3's agent stopped ten minutes ago
    # (node agents write entries on change only; the Lease says whether they live).
    leases = NodeLeases(api, kube_namespace, ["kv-node-1", "kv-node-2", "kv-node-3"])
    leases.renew_all()
    leases.backdate("kv-node-3", 610)
    apply_status(
        api,
        kube_namespace,
        "keepvip-operator",
        {
            "master": "kv-node-1",
            "virtualRouterID": 51,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "OneMaster",
                    "message": "",
                    "lastTransitionTime": rfc3339(now),
                }
            ],
        },
    )
    stored = api.get(f"{GROUP_PATH}/namespaces/{kube_namespace}/virtualips/{NAME}")
    managers = {m["manager"] for m in stored["metadata"]["managedFields"]}
    assert {f"keepvip-agent-kv-node-{i}" for i in (1, 2, 3)} <= managers
    assert len(stored["status"]["nodes"]) == 3  # merged, not overwritten
    return kube_namespace


def keepvip_status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keepvip_tools.cli", "status", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# Ages are chosen so that their text cannot change while the command starts (kubectl-style
# ages show seconds only below 10 minutes).


def rows(table: str) -> list[list[str]]:
    """Table lines split on the 3-space column gaps (cells themselves have single spaces)."""
    return [[c.strip() for c in line.split("   ") if c.strip()] for line in table.splitlines()]


def test_status_table_from_the_api(control_plane: ControlPlane, published: str) -> None:
    # The test's own agent namespace: other tests' node agents on the shared control plane renew
    # Leases for the same node names elsewhere.
    result = keepvip_status(
        "--kubeconfig",
        str(control_plane.admin_kubeconfig),
        "-n",
        published,
        "--agent-namespace",
        published,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "ADDRESSES",
        "VRID",
        "MASTER",
        "NODE",
        "STATE",
        "PRIORITY",
        "LAST",
        "TRANSITION",
        "REASON",
    ]
    first, second, third = rows(result.stdout)[1:]
    assert first == [
        "web",
        "192.0.2.50/24,2001:db8::50/64",
        "51",
        "kv-node-1",
        "kv-node-1",
        "Master",
        "150",
        "42m",
        "master down timer expired",
    ]
    assert second == ["kv-node-2", "Backup", "100 (120)", "5h", "higher priority master"]
    assert third[:4] == ["kv-node-3", "Backup?", "100", "3d"]
    assert third[4].startswith("node agent silent for 10m; start-up")


def test_all_namespaces_json_and_the_kubectl_plugin(
    control_plane: ControlPlane,
    published: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = keepvip_status("--kubeconfig", str(control_plane.admin_kubeconfig), "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    mine = [r for r in json.loads(result.stdout) if r["namespace"] == published]
    assert len(mine) == 1
    assert mine[0]["master"] == "kv-node-1"
    assert mine[0]["ready"] == "True"
    assert [n["state"] for n in mine[0]["nodes"]] == ["Master", "Backup", "Backup"]
    # kubectl runs the plugin with the arguments after "kubectl keepvip"; KUBECONFIG works too.
    monkeypatch.setenv("KUBECONFIG", str(control_plane.admin_kubeconfig))
    assert main(["status", "-A"], prog="kubectl keepvip") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(line.startswith(published) and " web " in line for line in out.splitlines())


def test_forbidden_is_reported(control_plane: ControlPlane, published: str) -> None:
    """The namespace's default ServiceAccount may not list VirtualIPs: a clear message, exit 1."""
    kubeconfig = control_plane.service_account_kubeconfig(published, "default")
    result = keepvip_status("--kubeconfig", str(Path(kubeconfig)), "-n", published)
    assert result.returncode == 1
    assert "listing VirtualIPs failed: HTTP 403" in result.stderr
