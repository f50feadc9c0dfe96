"""A tier that cannot run is skipped with its reason, or fails when KEEPVIP_REQUIRE_TIERS names it."""

from __future__ import annotations

import pytest

from keepvip_harness.tiers import required_tiers, skip_or_fail


def test_a_tier_not_required_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPVIP_REQUIRE_TIERS", "unit,cluster")
    with pytest.raises(pytest.skip.Exception, match="no docker here"):
        skip_or_fail("image", "no docker here")


def test_a_required_tier_fails_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPVIP_REQUIRE_TIERS", " unit , image ")
    assert required_tiers() == {"unit", "image"}
    with pytest.raises(pytest.fail.Exception, match="required tier 'image' cannot run: no docker"):
        skip_or_fail("image", "no docker")


def test_nothing_is_required_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEPVIP_REQUIRE_TIERS", raising=False)
    assert required_tiers() == set()
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("netns", "not root")
