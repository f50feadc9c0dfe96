"""The API helpers of the cluster tests and benchmarks: waiting, applying, the CRDs, VirtualIPs.

Everything here speaks to the API server through the harness's own small
client (:mod:`.rest`), except :func:`forbidden`, which judges a call made
with the official ``kubernetes`` client as a ServiceAccount. The fixtures
built on these (``virtualip_crd``, ``vips``, ...) live in
``tests/cluster/conftest.py``; this module holds no fixture.

``wait_for`` fails the test (``pytest.fail``) when it times out: the same
call serves tests and benchmarks, and a benchmark run ends on it as a test
would.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from .controlplane import ControlPlane
from .paths import CRDS
from .rest import ApiError, Rest

GROUP_PATH = "/apis/keepvip.io/v1alpha1"
CRD_FILE = CRDS / "keepvip.io_virtualips.yaml"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualips.keepvip.io"
POOL_CRD_FILE = CRDS / "keepvip.io_virtualippools.yaml"
POOL_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualippools.keepvip.io"
APPLY = "application/apply-patch+yaml"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; its value. ApiError counts as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as exc:
            last = exc
        if last and not isinstance(last, ApiError):
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def apply(api: Rest, path: str, body: Any, manager: str) -> Any:
    """Server-side apply (forced) as ``manager``."""
    return api.request(
        "PATCH", path, body, query={"fieldManager": manager, "force": "true"}, content_type=APPLY
    )


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def establish_crd(api: Rest, crd_file: Path, crd_path: str, served: str) -> dict[str, Any]:
    """A CRD from crds/, applied (server-side, as ``keepvip-tests``), Established and served.

    ``served`` is a list path of the new resource: it answers once discovery
    has caught up.
    """
    crd: dict[str, Any] = yaml.safe_load(crd_file.read_text())
    apply(api, crd_path, crd, "keepvip-tests")
    kind = crd["spec"]["names"]["kind"]

    def established() -> bool:
        conds = api.get(crd_path).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for(f"the {kind} CRD to be established", established)
    wait_for(f"the {kind} API to be served", lambda: api.get(served) is not None)
    return crd


def ensure_crd(cp: ControlPlane) -> None:
    """Create the VirtualIP CRD from crds/ (if it is not there) and wait until it is served."""
    api = cp.admin_rest()
    crd = yaml.safe_load(CRD_FILE.read_text())
    with contextlib.suppress(ApiError):
        api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    wait_for("the CRD to be served", lambda: api.get(f"{GROUP_PATH}/virtualips"))


def forbidden(call: Any, *args: Any, **kwargs: Any) -> bool:
    """Whether a ``kubernetes`` client call is refused with 403 (any other error is raised)."""
    from kubernetes.client.exceptions import ApiException

    try:
        call(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 403:
            return True
        raise
    return False


@dataclass
class Vips:
    """VirtualIPs of one namespace through the admin's REST client."""

    api: Rest
    namespace: str

    @property
    def base(self) -> str:
        return f"/apis/keepvip.io/v1alpha1/namespaces/{self.namespace}/virtualips"

    def create(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": name},
            "spec": spec,
        }
        created: dict[str, Any] = self.api.post(self.base, body)
        return created

    def get(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.api.get(f"{self.base}/{name}")
        return got

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        for cond in self.status(name).get("conditions") or []:
            if cond["type"] == kind:
                return dict(cond)
        return None

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self.api.merge_patch(f"{self.base}/{name}", {"spec": spec})
        return patched

    def delete(self, name: str) -> None:
        self.api.delete(f"{self.base}/{name}")

    def report(self, name: str, node: str, state: str, *, age: float = 0.0, **fields: Any) -> None:
        """Write ``node``'s entry of status.nodes as its agent does (SSA, its own manager)."""
        now = datetime.now(UTC)
        entry = {
            "name": node,
            "state": state,
            "configuredPriority": 100,
            "effectivePriority": 100,
            "faults": [],
            "heartbeatTime": rfc3339(now - timedelta(seconds=age)),
            "lastTransitionTime": rfc3339(now),
            "reason": f"test: {node} entered {state}",
            **fields,
        }
        body = {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": name, "namespace": self.namespace},
            "status": {"nodes": [entry]},
        }
        apply(self.api, f"{self.base}/{name}/status", body, f"keepvip-agent-{node}")

    def events(self, name: str, reason: str | None = None) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name},involvedObject.kind=VirtualIP"
        if reason:
            selector += f",reason={reason}"
        items: list[dict[str, Any]] = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/events", fieldSelector=selector
        )["items"]
        return sorted(items, key=lambda e: (e.get("lastTimestamp") or "", e["metadata"]["name"]))
