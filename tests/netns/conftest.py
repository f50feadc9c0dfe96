"""Fixtures of the real-kernel tier: a fresh lab per test, agents in it, logs on failure.

``lab`` builds node and client namespaces on a private bridge under a random
prefix (``kvXXXX``), so tests never share or collide on names, and removes
every process and namespace it made at teardown, also when the test fails.
``@pytest.mark.nodes(N)`` picks the number of nodes (default 3).

``agents`` starts keepvip agents from VirtualIP documents and reads their
/status and /metrics (see :mod:`keepvip_harness.agentlab`). When a test fails, every agent's
log, /status and addresses are attached to the failure report.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keepvip_harness.agentlab import Agents
from keepvip_tools.lab.topology import Lab

AGENTS = pytest.StashKey[Agents]()
FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nodes(n): number of node namespaces in the netns lab")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    item.stash[FAILED] = True
    agents = item.stash.get(AGENTS, None)
    if agents is not None and rep.when in ("setup", "call"):
        # Still inside the test's lab: the namespaces and agents are alive.
        rep.sections.append(
            ("keepvip agents", f"files kept in {agents.workdir}\n{agents.report()}")
        )


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    marker = request.node.get_closest_marker("nodes")
    nodes = int(marker.args[0]) if marker else 3
    built: Lab | None = None
    for _attempt in range(3):
        candidate = Lab(nodes=nodes)
        try:
            candidate.__enter__()  # tears down what it made if it fails
        except RuntimeError as exc:
            if "File exists" not in str(exc):
                raise
            continue  # the random prefix is taken (a leftover lab): pick another
        built = candidate
        break
    if built is None:
        pytest.fail("could not build a lab under a fresh name in 3 attempts")
    try:
        yield built
    finally:
        # A failed test keeps its files (configs, probe output, hook records);
        # the namespaces and processes go in every case.
        built.keep_workdir = request.node.stash.get(FAILED, False)
        built.teardown()


@pytest.fixture
def agents(lab: Lab, request: pytest.FixtureRequest) -> Agents:
    found = Agents(lab)
    request.node.stash[AGENTS] = found
    return found
