"""Whether a test tier can run here, and what a tier that cannot run does: skip, or fail.

A tier that cannot run on this machine is skipped with the exact reason.
``KEEPVIP_REQUIRE_TIERS`` (comma separated, set by ``make test``) turns such
a skip into a failure, so CI can never pass by skipping the tests that
matter. Every tier's conftest and the few tests that find a tool missing
call :func:`skip_or_fail` from here (a conftest is not importable by name).
"""

from __future__ import annotations

import os
import shutil

import pytest

TIERS = ("unit", "netns", "cluster", "e2e", "image")


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
