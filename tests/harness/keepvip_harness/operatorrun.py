"""keepvip-operator run in-process for a cluster test or a benchmark, in a thread until a block ends.

The operator runs in a thread with its own event loop (``kopf.operator``, as
``keepvip-operator`` runs it), with the admin kubeconfig, watching only the
test's namespace: VRID allocation and conflicts are per watched namespace,
so tests in other namespaces (and objects of earlier tests whose namespace
is still terminating) cannot disturb each other. The ``keepvip_operator``
fixture in ``tests/cluster/conftest.py`` is this for the test's namespace.
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


@contextlib.contextmanager
def running_operator(
    settings: OperatorSettings, namespace: str, control_plane: ControlPlane | None = None
) -> Iterator[RunningOperator]:
    """keepvip-operator in a thread until the block ends (it must stop within 30 s).

    With ``control_plane``, the node agents' static RBAC (the chart's, see
    :mod:`.agentrbac`) is applied in the agents' namespace first, as installing
    the chart does: the operator renders the DaemonSet, never its ServiceAccount.
    """
    with contextlib.ExitStack() as stack:
        if control_plane is not None:
            stack.enter_context(agent_rbac(control_plane, settings.agent_namespace or namespace))
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
    return replace(
        TEST_SETTINGS,
        kubeconfig=str(control_plane.admin_kubeconfig),
        watch_namespaces=(namespace,),
        agent_namespace=namespace,
        agent_metrics_port=next(PORT_BLOCKS),
    )
