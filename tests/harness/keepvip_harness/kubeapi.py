"""Fixtures for the operator's cluster tests: the CRD installed, the operator running in-process.

The operator runs in a thread with its own event loop (``kopf.operator``, as
``keepvip-operator`` runs it), with the admin kubeconfig, watching only the
test's namespace: VRID allocation and conflicts are per watched namespace,
so tests in other namespaces (and objects of earlier tests whose namespace
is still terminating) cannot disturb each other. Import the fixtures in a
test module with ``from .operator_fixtures import *``-style explicit names.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_operator.main import run
from keepvip_operator.settings import OperatorSettings

from .controlplane import ControlPlane
from .rest import ApiError, Rest

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "keepvip.io_virtualips.yaml"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualips.keepvip.io"
APPLY = "application/apply-patch+yaml"
PORTS_PER_TEST = 64
_PORT_BLOCKS = itertools.count(20000 + (os.getpid() % 300) * PORTS_PER_TEST, PORTS_PER_TEST)
TEST_SETTINGS = OperatorSettings(
    agent_image="keepvip/agent:test",
    extra_pod_labels={"keepvip.test/extra": "yes"},
    extra_pod_annotations={"keepvip.test/note": "rendered by the operator under test"},
    resync_interval=1.0,
)


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


@pytest.fixture(scope="session")
def virtualip_crd(control_plane: ControlPlane) -> dict[str, Any]:
    """The VirtualIP CRD from crds/, applied and Established."""
    api = control_plane.admin_rest()
    crd = yaml.safe_load(CRD_FILE.read_text())
    apply(api, CRD_PATH, crd, "keepvip-tests")

    def established() -> bool:
        conds = api.get(CRD_PATH).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("the VirtualIP CRD to be established", established)
    # Served (discovery caught up) once a list answers.
    wait_for(
        "the VirtualIP API to be served",
        lambda: api.get("/apis/keepvip.io/v1alpha1/virtualips") is not None,
    )
    return crd


@dataclass
class RunningOperator:
    settings: OperatorSettings
    namespace: str
    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]


@pytest.fixture
def vips(control_plane: ControlPlane, virtualip_crd: dict[str, Any], kube_namespace: str) -> Vips:
    return Vips(control_plane.admin_rest(), kube_namespace)


@contextlib.contextmanager
def running_operator(settings: OperatorSettings, namespace: str) -> Iterator[RunningOperator]:
    """keepvip-operator in a thread until the block ends (it must stop within 30 s)."""
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(run(settings, stop_flag=stop, ready_flag=ready))
        except BaseException as exc:  # reported here, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=main, name="keepvip-operator", daemon=True)
    thread.start()
    if not ready.wait(30):
        stop.set()
        pytest.fail(f"the operator did not become ready in 30s: {errors!r}")
    try:
        yield RunningOperator(settings, namespace, thread, stop, errors)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the operator did not stop within 30s"
    assert not errors, f"the operator failed: {errors!r}"


def operator_settings(control_plane: ControlPlane, namespace: str) -> OperatorSettings:
    # Agents of all tests share the fake nodes' ports (host network, hostPort): each
    # test's operator gets its own port range, so pods of a test whose namespace is
    # still terminating never block the next test's agents.
    return replace(
        TEST_SETTINGS,
        kubeconfig=str(control_plane.admin_kubeconfig),
        watch_namespaces=(namespace,),
        agent_metrics_port=next(_PORT_BLOCKS),
        agent_metrics_ports=PORTS_PER_TEST,
    )


@pytest.fixture
def keepvip_operator(
    control_plane: ControlPlane, virtualip_crd: dict[str, Any], kube_namespace: str
) -> Iterator[RunningOperator]:
    """keepvip-operator for the test's namespace, running until the test ends."""
    settings = operator_settings(control_plane, kube_namespace)
    with running_operator(settings, kube_namespace) as op:
        yield op


POOL_CRD_FILE = REPO / "crds" / "keepvip.io_virtualippools.yaml"
POOL_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualippools.keepvip.io"


@pytest.fixture(scope="session")
def virtualippool_crd(control_plane: ControlPlane) -> dict[str, Any]:
    """The VirtualIPPool CRD from crds/, applied and Established (pools are cluster-scoped)."""
    api = control_plane.admin_rest()
    crd = yaml.safe_load(POOL_CRD_FILE.read_text())
    apply(api, POOL_CRD_PATH, crd, "keepvip-tests")

    def established() -> bool:
        conds = api.get(POOL_CRD_PATH).get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    wait_for("the VirtualIPPool CRD to be established", established)
    wait_for(
        "the VirtualIPPool API to be served",
        lambda: api.get("/apis/keepvip.io/v1alpha1/virtualippools") is not None,
    )
    return crd
