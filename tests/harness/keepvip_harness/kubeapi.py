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
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy; its value.
    ApiError counts as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as exc:
            last = exc
        if last and not isinstance(last, ApiError):
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def namespace(cp: ControlPlane, prefix: str = "kvb") -> Iterator[str]:
    """A fresh namespace (its default ServiceAccount there) until the block ends."""
    api, name = cp.admin_rest(), f"{prefix}-{secrets.token_hex(4)}"
    api.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    wait_for(
        "the default ServiceAccount",
        lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        30,
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            api.delete(f"/api/v1/namespaces/{name}")


def versions(cp: ControlPlane) -> dict[str, str]:
    """What a benchmark ran against: the API server, the operator and kopf."""

    def run(*argv: str) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        text = (out.stdout + out.stderr).strip()
        return text.splitlines()[0] if text else "?"

    return {
        "kube-apiserver": run(str(cp.binary("kube-apiserver")), "--version"),
        "keepvip-operator": run(
            str(Path(sys.executable).with_name("keepvip-operator")), "--version"
        ),
        "kopf": run(
            sys.executable, "-c", "import kopf, importlib.metadata as m; print(m.version('kopf'))"
        ),
    }


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
