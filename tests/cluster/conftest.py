"""Fixtures of the control-plane tier: a real API server for the whole session.

``control_plane`` starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok once per session (about 10 s warm) and stops them
at the end, also when tests fail. Tests get isolation from a namespace each
(``kube_namespace``), not from a cluster each: starting one costs seconds,
a namespace costs milliseconds.

The operator's fixtures (the CRDs installed, ``vips``, ``keepvip_operator``)
and ``cluster_lab`` (lab namespaces standing for the fake nodes) are here
too; the code behind all of them is the harness (``keepvip_harness``).

If ``KEEPVIP_CLUSTER_DIR`` names the state directory of a control plane
started by ``make cluster-up``, the session uses that one and leaves it
running: quicker edit-run cycles while writing cluster tests.

Without built binaries the tier skips with the reason (or fails, when
``KEEPVIP_REQUIRE_TIERS`` requires the cluster tier, as CI does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness import rest, tiers
from keepvip_harness.clusterlab import lab_on_nodes
from keepvip_harness.controlplane import ControlPlane, find_bin_dir
from keepvip_harness.kubeapi import (
    CRD_FILE,
    CRD_PATH,
    POOL_CRD_FILE,
    POOL_CRD_PATH,
    Vips,
    establish_crd,
)
from keepvip_harness.operatorrun import RunningOperator, operator_settings, running_operator
from keepvip_harness.podlauncher import PodLauncher
from keepvip_tools.lab.topology import Lab


def skip_or_fail(config: pytest.Config, reason: str) -> None:
    """The harness's skip_or_fail for the cluster tier."""
    tiers.skip_or_fail("cluster", reason)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The session's control plane; admin access via ``admin_kubeconfig``."""
    attach = os.environ.get("KEEPVIP_CLUSTER_DIR")
    if attach and (Path(attach) / "state.json").exists():
        yield ControlPlane.attach(Path(attach))
        return
    bin_dir, reason = find_bin_dir()
    if bin_dir is None:
        skip_or_fail(request.config, reason)
        raise AssertionError("unreachable")
    cp = ControlPlane(bin_dir=bin_dir)
    with cp.running():
        yield cp


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane: ControlPlane) -> Path:
    """A kubeconfig file for cluster-admin (a system:masters client cert)."""
    return control_plane.admin_kubeconfig


@pytest.fixture
def kube_admin(control_plane: ControlPlane) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` as cluster-admin."""
    with control_plane.admin_client() as api:
        yield api


@pytest.fixture
def kube_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted after it (without waiting)."""
    name = f"kvt-{secrets.token_hex(4)}"
    api = control_plane.admin_rest()
    api.post(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    # Pods are created only once the namespace's default ServiceAccount exists.
    rest_wait(lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), 30)
    yield name
    try:
        api.delete(f"/api/v1/namespaces/{name}")
    except rest.ApiError as exc:
        if exc.status != 404:
            raise
    # Launcher pods have no kubelet once the test's launcher has stopped:
    # remove them outright, or the namespace would stay Terminating.
    pods = api.get(f"/api/v1/namespaces/{name}/pods", labelSelector=control_plane.launch_label)
    for pod in pods["items"]:
        with contextlib.suppress(rest.ApiError):
            api.delete(
                f"/api/v1/namespaces/{name}/pods/{pod['metadata']['name']}",
                {"gracePeriodSeconds": 0},
            )


def rest_wait(call: Callable[[], Any], timeout: float) -> Any:
    """Retry an API call until it stops raising ApiError."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except rest.ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def node_netns(
    request: pytest.FixtureRequest, control_plane: ControlPlane
) -> Iterator[dict[str, str]]:
    """A throwaway network namespace per fake node: node name -> namespace name.

    Each has ``lo`` up with the node's InternalIP on it, so a probe to the
    pod's IP (the node's) reaches the process, as on a real host-network pod.
    Addresses are the nodes' documentation-range IPs; nothing else is
    configured. Deleted by name at teardown.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        skip_or_fail(
            request.config, "the pod launcher needs root and iproute2 (network namespaces)"
        )
    mapping: dict[str, str] = {}
    try:
        for node in control_plane.nodes:
            ns = f"kvt-{secrets.token_hex(4)}"
            _ip("netns", "add", ns)
            mapping[node.name] = ns
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{node.internal_ip}/32", "dev", "lo")
        yield mapping
    finally:
        for ns in mapping.values():
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture
def pod_launcher(control_plane: ControlPlane, node_netns: dict[str, str]) -> Iterator[PodLauncher]:
    """Runs launch-labelled pods on the fake nodes in ``node_netns``."""
    with PodLauncher(control_plane, node_netns) as launcher:
        yield launcher


@pytest.fixture(scope="session")
def virtualip_crd(control_plane: ControlPlane) -> dict[str, Any]:
    """The VirtualIP CRD from crds/, applied and Established."""
    return establish_crd(
        control_plane.admin_rest(), CRD_FILE, CRD_PATH, "/apis/keepvip.io/v1alpha1/virtualips"
    )


@pytest.fixture(scope="session")
def virtualippool_crd(control_plane: ControlPlane) -> dict[str, Any]:
    """The VirtualIPPool CRD from crds/, applied and Established (pools are cluster-scoped)."""
    return establish_crd(
        control_plane.admin_rest(),
        POOL_CRD_FILE,
        POOL_CRD_PATH,
        "/apis/keepvip.io/v1alpha1/virtualippools",
    )


@pytest.fixture
def vips(control_plane: ControlPlane, virtualip_crd: dict[str, Any], kube_namespace: str) -> Vips:
    """VirtualIPs of the test's namespace, with the CRD installed."""
    return Vips(control_plane.admin_rest(), kube_namespace)


@pytest.fixture
def keepvip_operator(
    control_plane: ControlPlane, virtualip_crd: dict[str, Any], kube_namespace: str
) -> Iterator[RunningOperator]:
    """keepvip-operator for the test's namespace, running until the test ends."""
    settings = operator_settings(control_plane, kube_namespace)
    with running_operator(settings, kube_namespace, control_plane) as op:
        yield op


@pytest.fixture
def cluster_lab(control_plane: ControlPlane) -> Iterator[tuple[Lab, dict[str, int]]]:
    """Lab namespaces on one bridge for the fake nodes (node name -> lab index).

    The nodes' InternalIPs are set to the lab's for the test and put back after.
    """
    with lab_on_nodes(control_plane) as lab:
        yield lab
