"""Test tiers, chosen by folder: unit, netns, cluster, image, e2e.

Each test is marked with its tier from the folder it lives in, so a tier can
be selected with ``-m``. A tier that cannot run on this machine is skipped
with the exact reason. ``KEEPVIP_REQUIRE_TIERS`` (comma separated, set by
``make test``) turns such a skip into a failure, so CI can never pass by
skipping the tests that matter.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TIERS = ("unit", "netns", "cluster", "e2e", "image")


def _tier_of(path: Path) -> str:
    parts = path.parts
    for tier in TIERS:
        if tier in parts:
            return tier
    return "unit"


def netns_unavailable_reason() -> str | None:
    """Why the real-kernel tier cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "netns tier needs root (network namespaces, raw sockets)"
    if shutil.which("ip") is None:
        return "netns tier needs iproute2's `ip` command"
    return None


def required_tiers() -> set[str]:
    raw = os.environ.get("KEEPVIP_REQUIRE_TIERS", "")
    return {t.strip() for t in raw.split(",") if t.strip()}


def skip_or_fail(tier: str, reason: str) -> None:
    """Skip with the reason, unless this tier is required: then fail."""
    if tier in required_tiers():
        pytest.fail(f"required tier {tier!r} cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


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
