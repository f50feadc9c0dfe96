"""keepvip-operator run in-process for a cluster test or a benchmark, in a thread until a block ends.

The operator runs in a thread with its own event loop (``kopf.operator``, as
``keepvip-operator`` runs it), with the admin kubeconfig, watching only the
test's namespace: VRID allocation and conflicts are per watched namespace,
so tests in other namespaces (and objects of earlier tests whose namespace
is still terminating) cannot disturb each other. The ``keepvip_operator``
fixture in ``tests/cluster/conftest.py`` is this for the test's namespace.
Address grants stay on as in production: the namespace is granted the
documentation ranges by a pool (:func:`granted`) and trusted with commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from keepvip_operator.main import run
from keepvip_operator.settings import OperatorSettings

from .agentrbac import agent_rbac
from .controlplane import ControlPlane
from .kubeapi import GROUP_PATH, POOL_CRD_FILE, POOL_CRD_PATH, establish_crd
from .rest import ApiError

PORTS_PER_TEST = 1
PORT_BLOCKS = itertools.count(20000 + (os.getpid() % 300) * 64, PORTS_PER_TEST)
"""Each test's own node agent metrics port (see :func:`operator_settings`)."""
TEST_SETTINGS = OperatorSettings(
    agent_image="keepvip/agent:test",
    extra_pod_labels={"keepvip.test/extra": "yes"},
    extra_pod_annotations={"keepvip.test/note": "rendered by the operator under test"},
    resync_interval=1.0,
)


@dataclass
class RunningOperator:
    settings: OperatorSettings
    namespace: str
    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]


GRANTED = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
"""The documentation ranges: what a test's VirtualIPs may claim (address grants are on)."""


@contextlib.contextmanager
def granted(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """A VirtualIPPool granting :data:`GRANTED` to the namespace's VirtualIPs, as a cluster admin
    would create before handing a namespace to a team; deleted on the way out. Used by
    VirtualIPs only (``usedBy``), so it never hands an address to a LoadBalancer Service."""
    api = control_plane.admin_rest()
    establish_crd(api, POOL_CRD_FILE, POOL_CRD_PATH, f"{GROUP_PATH}/virtualippools")
    name = f"kvt-grant-{namespace}"[:253]
    api.post(
        f"{GROUP_PATH}/virtualippools",
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIPPool",
            "metadata": {"name": name},
            "spec": {"addresses": list(GRANTED), "namespaces": [namespace],
                     "usedBy": ["VirtualIPs"]},
        },
    )  # fmt: skip
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            api.delete(f"{GROUP_PATH}/virtualippools/{name}")


@contextlib.contextmanager
def running_operator(
    settings: OperatorSettings,
    namespace: str,
    control_plane: ControlPlane | None = None,
    *,
    grant: bool = True,
) -> Iterator[RunningOperator]:
    """keepvip-operator in a thread until the block ends (it must stop within 30 s).

    With ``control_plane``, the node agents' static RBAC (the chart's, see
    :mod:`.agentrbac`) is applied in the agents' namespace first, as installing
    the chart does: the operator renders the DaemonSet, never its ServiceAccount;
    and, with address grants on and ``grant``, the namespace is granted the
    documentation ranges (:func:`granted`).
    """
    with contextlib.ExitStack() as stack:
        if control_plane is not None:
            label = settings.trusted_namespace_label
            values = [f"tenancy.trustedNamespaceLabel={label[0]}={label[1]}"] if label else []
            stack.enter_context(
                agent_rbac(control_plane, settings.agent_namespace or namespace, values)
            )
            if grant and settings.address_grants:
                stack.enter_context(granted(control_plane, namespace))
        yield stack.enter_context(_operator_thread(settings, namespace))


@contextlib.contextmanager
def _operator_thread(settings: OperatorSettings, namespace: str) -> Iterator[RunningOperator]:
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
    # test's operator gets its own port, so the node agents of a test whose namespace is
    # still terminating never block the next test's agents. The agents' namespace is
    # the test's: its node agent DaemonSet goes there, next to the VirtualIPs.
    # The test's namespace is trusted: the tiers' VirtualIPs use exec checks (test_tenancy
    # proves the refusals with an operator that trusts nobody).
    return replace(
        TEST_SETTINGS,
        kubeconfig=str(control_plane.admin_kubeconfig),
        watch_namespaces=(namespace,),
        agent_namespace=namespace,
        agent_metrics_port=next(PORT_BLOCKS),
        trusted_namespaces=(namespace,),
    )
