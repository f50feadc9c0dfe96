"""The node agents' static RBAC for a test namespace, rendered by the chart (``helm template``).

The chart renders the agents' ServiceAccount ``keepvip-agent``, a ClusterRole
and binding, and a Role and binding in the release namespace
(``templates/agent-rbac.yaml``); the operator never creates them. A cluster
test's agents' namespace is its own namespace, so the chart is rendered as a
release of that name in that namespace (cluster-scoped names then carry the
namespace and never collide between tests) and removed on the way out.

Also here: :class:`NodeLeases`, the node agents' liveness Leases written by a
test that plays the agents (a thread renewing ``keepvip-node-<node>`` every
``NODE_RENEW`` seconds, with a way to stop or backdate one node's).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from keepvip_api.names import NODE_LEASE_DURATION, NODE_RENEW, node_lease_name

from .controlplane import ControlPlane
from .kubeapi import rfc3339
from .rest import ApiError, Rest

CHART = Path(__file__).resolve().parents[3] / "charts" / "keepvip"
TEMPLATE = "templates/agent-rbac.yaml"
PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}


def render(
    cp: ControlPlane, ns: str, template: str = TEMPLATE, values: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One template of the chart for release ``ns`` in namespace ``ns`` (``values``: ``k=v``
    strings for ``--set-string``)."""
    sets = [arg for v in values for arg in ("--set-string", v)]
    out = subprocess.run(
        [str(cp.binary("helm")), "template", ns, str(CHART), "--namespace", ns,
         "--show-only", template, "--kube-version", "1.31.0", *sets],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


@contextlib.contextmanager
def agent_rbac(
    cp: ControlPlane, ns: str, values: Sequence[str] = ()
) -> Iterator[list[dict[str, Any]]]:
    """The agents' static RBAC applied in ``ns`` until the block ends."""
    api = cp.admin_rest()
    created: list[str] = []
    objs = render(cp, ns, values=values)
    try:
        for obj in objs:
            base = PATHS[obj["kind"]].format(ns=ns)
            try:
                api.post(base, obj)
            except ApiError as exc:
                if exc.status != 409:
                    raise
            if "{ns}" not in PATHS[obj["kind"]]:
                created.append(f"{base}/{obj['metadata']['name']}")
        yield objs
    finally:
        for path in created:
            with contextlib.suppress(ApiError):
                api.delete(path)


class NodeLeases:
    """Node agents' Leases renewed by the test, as agents renew theirs (every NODE_RENEW s)."""

    def __init__(self, api: Rest, ns: str, nodes: tuple[str, ...] | list[str]) -> None:
        self.api, self.ns = api, ns
        self.ages = dict.fromkeys(nodes, 0.0)
        """Node -> how far behind now each renewTime is written (None: not renewed)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-leases", daemon=True)
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases"

    def backdate(self, node: str, age: float) -> None:
        """From now on, ``node``'s Lease says it was last renewed ``age`` seconds ago."""
        with self._lock:
            self.ages[node] = age
        self._renew(node, age)

    def renew_all(self) -> None:
        with self._lock:
            ages = dict(self.ages)
        for node, age in ages.items():
            self._renew(node, age)

    def _renew(self, node: str, age: float) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": node_lease_name(node), "namespace": self.ns},
            "spec": {
                "holderIdentity": node,
                "leaseDurationSeconds": NODE_LEASE_DURATION,
                "renewTime": rfc3339(datetime.now(UTC) - timedelta(seconds=age)),
            },
        }
        path = f"{self.base}/{node_lease_name(node)}"
        with contextlib.suppress(ApiError):
            self.api.request(  # server-side apply: create or update in one call
                "PATCH", path, body, query={"fieldManager": f"keepvip-agent-{node}", "force": "true"},
                content_type="application/apply-patch+yaml",
            )  # fmt: skip

    def _run(self) -> None:
        while not self._stop.wait(NODE_RENEW):
            self.renew_all()

    def __enter__(self) -> NodeLeases:
        self.renew_all()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
