"""The Docker engine for the image and e2e tiers: a daemon, the image, and a ledger of what we made.

Everything a test creates (containers, networks, images) goes through
:class:`Docker`, which records each object's id as it is created and removes
exactly those, by id, at teardown, also when the test failed. Nothing is
ever removed by name pattern, so another engineer's containers on the same
daemon are never touched.

The daemon and the image come from the scripts CI uses (hack/image): a
daemon is started only if none answers, and stopped again only by the
session that started it; the image is built with ``hack/image/build.sh``
under a tag unique to the session, or taken from ``KEEPVIP_IMAGE`` (then it
is neither built nor removed).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import REPO

HACK = REPO / "hack" / "image"
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Image:
    """The image under test, as the image tier's ``keepvip_image`` fixture gives it."""

    ref: str
    built_in: float | None
    """Seconds the session's build took; None for a given KEEPVIP_IMAGE."""


class DockerError(RuntimeError):
    """A docker command failed; the message carries its stderr."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the Docker tiers, or None."""
    if os.geteuid() != 0:
        return "needs root: the Docker daemon is installed (docker.io) and started as root"
    if not Path("/usr/bin/apt-get").exists() and not any(
        Path(d, "dockerd").exists() for d in os.environ.get("PATH", "").split(":")
    ):
        return "no Docker engine and no apt-get to install docker.io"
    return None


@contextlib.contextmanager
def daemon() -> Iterator[str]:
    """A Docker daemon for the block; yields the client path. Stops it after if we started it."""
    state = subprocess.run(
        [str(HACK / "dockerd.sh"), "ensure"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield client()
    finally:
        if state == "started" and os.environ.get("KEEPVIP_KEEP_DOCKERD") != "1":
            subprocess.run([str(HACK / "dockerd.sh"), "stop"], check=False)


def client() -> str:
    """A docker CLI on PATH (or Debian's)."""
    for candidate in (*os.environ.get("PATH", "").split(":"), "/usr/bin"):
        path = Path(candidate, "docker")
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise DockerError("no docker client found")


def build_image(tag: str) -> tuple[str, float]:
    """``hack/image/build.sh --tag TAG``; the reference and the build time in seconds."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(HACK / "build.sh"), "--tag", tag],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        env={**os.environ, "KEEPVIP_KEEP_DOCKERD": "1"},
    )
    if proc.returncode != 0:
        raise DockerError(f"hack/image/build.sh failed:\n{proc.stderr[-6000:]}")
    return proc.stdout.strip().splitlines()[-1], time.monotonic() - started


@dataclass
class Docker:
    """The docker CLI with a ledger: what is created here is removed here, by id."""

    cli: str
    # A daemon other than the environment's (DOCKER_HOST), e.g. the kind tier's own.
    host: str | None = None
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise DockerError(f"docker {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
        return proc.stdout.strip()

    def argv(self, *args: str) -> list[str]:
        """The command line of ``docker ARGS`` for this daemon."""
        return [self.cli, *(["-H", self.host] if self.host else []), *args]

    def succeeds(self, *args: str) -> bool:
        """Whether ``docker ARGS`` exits 0 (output discarded)."""
        return self._quiet(*args).returncode == 0

    def _quiet(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), check=False, capture_output=True, text=True, timeout=120
        )

    # -- creating, recorded -------------------------------------------------------------------

    def run(self, *args: str) -> str:
        """``docker run -d ARGS``; the container id (recorded)."""
        cid = self("run", "-d", "--label", "keepvip.test=1", *args)
        self.containers.append(cid)
        return cid

    def run_once(self, *args: str, timeout: float = 120.0) -> tuple[int, str]:
        """Create, start and wait for a container (recorded); its exit code and output."""
        cid = self("create", "--label", "keepvip.test=1", *args)
        self.containers.append(cid)
        proc = subprocess.run(
            self.argv("start", "-a", cid),
            check=False, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        return proc.returncode, proc.stdout + proc.stderr

    def network(self, prefix: str, *, candidates: list[str]) -> tuple[str, ipaddress.IPv4Network]:
        """A bridge network on the first free subnet of ``candidates`` (random order)."""
        order = random.sample(candidates, len(candidates))
        last = ""
        for cidr in order:
            net = ipaddress.IPv4Network(cidr)
            name = f"{prefix}-{secrets.token_hex(3)}"
            try:
                nid = self(
                    "network", "create", "--driver", "bridge", "--label", "keepvip.test=1",
                    "--subnet", str(net), "--gateway", str(net.network_address + 1), name,
                )  # fmt: skip
            except DockerError as exc:
                last = str(exc)
                if "overlap" in last:  # another session's network: try the next subnet
                    continue
                raise
            self.networks.append(nid)
            return nid, net
        raise DockerError(f"no free subnet among {candidates}: {last}")

    def own_image(self, ref: str) -> None:
        """Record an image reference this session created (removed by reference at the end)."""
        self.images.append(ref)

    def cleanup(self) -> list[str]:
        """Remove everything recorded, newest first; the problems met (never raises)."""
        problems = []
        for cid in reversed(self.containers):
            with contextlib.suppress(subprocess.TimeoutExpired):
                out = self._quiet("rm", "-f", "-v", cid)
                if out.returncode and "No such container" not in out.stderr:
                    problems.append(out.stderr.strip())
        for nid in reversed(self.networks):
            out = self._quiet("network", "rm", nid)
            if out.returncode and "not found" not in out.stderr:
                problems.append(out.stderr.strip())
        # An image is removed by the reference this session gave it: untagging it
        # deletes it unless someone else tagged the same image too.
        for ref in reversed(self.images):
            out = self._quiet("image", "rm", ref)
            if out.returncode and "No such image" not in out.stderr:
                problems.append(out.stderr.strip())
        self.containers.clear()
        self.networks.clear()
        self.images.clear()
        return problems

    # -- reading ------------------------------------------------------------------------------

    def inspect(self, obj: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self("inspect", obj))
        return data[0]

    def ip(self, container: str, network: str) -> str:
        nets = self.inspect(container)["NetworkSettings"]["Networks"]
        for name, info in nets.items():
            if network in (name, info.get("NetworkID")):
                return str(info["IPAddress"])
        raise DockerError(f"{container} is not on {network}")

    def logs(self, container: str) -> str:
        proc = subprocess.run(
            self.argv("logs", container), capture_output=True, text=True, timeout=30, check=False
        )
        return proc.stdout + proc.stderr


def http_json(url: str, timeout: float = 0.5) -> Any:
    """GET a JSON document; None if nothing answered (refused, timed out, unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - test URLs
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll until ``check`` returns something truthy; its value. AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
