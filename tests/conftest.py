"""Test tiers, chosen by folder: unit, netns, cluster, image, e2e.

Each test is marked with its tier from the folder it lives in, so a tier can
be selected with ``-m``. A tier that cannot run on this machine is skipped
with the exact reason. ``KEEPVIP_REQUIRE_TIERS`` (comma separated, set by
``make test``) turns such a skip into a failure, so CI can never pass by
skipping the tests that matter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keepvip_harness.tiers import TIERS, netns_unavailable_reason, skip_or_fail


def _tier_of(path: Path) -> str:
    parts = path.parts
    for tier in TIERS:
        if tier in parts:
            return tier
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = _tier_of(Path(str(item.fspath)).relative_to(config.rootpath))
        item.add_marker(getattr(pytest.mark, tier))
        if "interop" in item.nodeid:
            item.add_marker(pytest.mark.interop)


@pytest.fixture(autouse=True)
def _tier_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("netns") or request.node.get_closest_marker("interop"):
        reason = netns_unavailable_reason()
        if reason:
            skip_or_fail("netns", reason)
