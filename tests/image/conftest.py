"""Fixtures of the image tier: a Docker daemon, the image built from the Dockerfile, a ledger.

``keepvip_image`` builds the image once per session with the CI build path
(hack/image/build.sh: a daemon from Debian packages, a debootstrap base,
the CA bundle as a BuildKit secret) under a tag unique to the session and
removes that tag at the end; ``KEEPVIP_IMAGE=ref`` uses an existing image
instead. ``docker`` is a per-test ledger: every container and network a test
creates is removed by id at its end, also when it fails.

Without root (the daemon is installed and started as root) the tier is
skipped with the reason, or fails when ``KEEPVIP_REQUIRE_TIERS`` names
``image``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from keepvip_harness import tiers
from keepvip_harness.dockerctl import (
    Docker,
    DockerError,
    Image,
    build_image,
    daemon,
    unavailable_reason,
)

TIER = "image"


def skip_or_fail(config: pytest.Config, reason: str) -> None:
    """The harness's skip_or_fail for the image tier."""
    tiers.skip_or_fail(TIER, reason)


@pytest.fixture(scope="session")
def docker_cli(request: pytest.FixtureRequest) -> Iterator[str]:
    """A running Docker daemon for the session; the client path."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(request.config, reason)
    try:
        with daemon() as cli:
            yield cli
    except DockerError as exc:
        skip_or_fail(request.config, f"no Docker daemon: {exc}")


@pytest.fixture(scope="session")
def keepvip_image(docker_cli: str) -> Iterator[Image]:
    """The image under test: built from the Dockerfile for this session, removed after."""
    given = os.environ.get("KEEPVIP_IMAGE")
    if given:
        yield Image(given, None)
        return
    ledger = Docker(docker_cli)
    tag = f"keepvip:image-test-{secrets.token_hex(4)}"
    ref, seconds = build_image(tag)
    ledger.own_image(ref)
    try:
        yield Image(ref, seconds)
    finally:
        ledger.cleanup()


@pytest.fixture
def docker(docker_cli: str) -> Iterator[Docker]:
    """A ledger for one test: its containers and networks are removed by id at the end."""
    ledger = Docker(docker_cli)
    try:
        yield ledger
    finally:
        problems = ledger.cleanup()
        assert not problems, f"cleanup left objects behind: {problems}"
