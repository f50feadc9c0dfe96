"""Fixtures of the e2e tier: the image in a 3-worker kind cluster, installed with the Helm chart.

One cluster for the session (about two minutes to create), reached only
through Docker: kubectl runs inside the control-plane node, the client is a
container on the cluster's network. The session builds the image (the CI
build path), loads it into the nodes, installs charts/keepvip with the
pinned helm, and deploys the workload the tests act on: an app of one
hostNetwork pod per worker (it answers with its node's name on port 8080)
and a VirtualIP that tracks the app's Ready pods.

Where kind cannot run the tier is skipped with the reason found by trying
(``keepvip_harness.kindctl.why_kind_cannot_run``), or fails when ``KEEPVIP_REQUIRE_TIERS``
names ``e2e`` (``make e2e`` does). Everything made here is removed at the
end, also after a failure.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness import tiers
from keepvip_harness.dockerctl import (
    HACK,
    Docker,
    DockerError,
    build_image,
    daemon,
    unavailable_reason,
)
from keepvip_harness.kindctl import (
    KindCluster,
    kind_binary,
    node_image,
    wait_until,
    why_kind_cannot_run,
)
from keepvip_harness.kindsuite import ADVERT_INTERVAL, APP_PORT, E2E, NAMESPACE
from keepvip_harness.paths import REPO


def _skip_or_fail(config: pytest.Config, reason: str) -> None:
    tiers.skip_or_fail("e2e", reason)


def app(image: str) -> dict[str, Any]:
    """One pod per worker (the host port keeps two off one node), Ready while /tmp/ready exists."""
    labels = {"app": "web"}
    serve = (
        f'touch /tmp/ready && exec python -m keepvip_tools.lab.responder "$NODE_NAME" {APP_PORT}'
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", serve],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "ports": [{"containerPort": APP_PORT, "hostPort": APP_PORT}],
                            "readinessProbe": {
                                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def virtualip(vip: str, prefix: int) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "addresses": [f"{vip}/{prefix}"],
            "advertInterval": f"{round(ADVERT_INTERVAL * 1000)}ms",
            "trackPods": {
                "selector": {"matchLabels": {"app": "web"}},
                "onFailure": {"action": "fault"},
                "roleLabel": True,
            },
        },
    }


def find_helm() -> str:
    """The pinned helm of the control-plane tier's build, else helm on PATH."""
    bin_dir = subprocess.run(
        [str(REPO / "hack" / "controlplane" / "build.sh"), "bin-dir"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    if bin_dir and (Path(bin_dir) / "helm").exists():
        return str(Path(bin_dir) / "helm")
    from shutil import which

    found = which("helm")
    if found is None:
        raise RuntimeError("no helm: run `make controlplane-build` (it builds the pinned helm)")
    return found


def helm_install(cluster: KindCluster, image: str, workdir: Path) -> None:
    helm = find_helm()
    repository, _, tag = image.rpartition(":")
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.workdir / "kubeconfig"),
        **{
            f"HELM_{k}_HOME": str(workdir / f"helm-{k.lower()}")
            for k in ("CACHE", "CONFIG", "DATA")
        },
    }
    subprocess.run(
        [helm, "install", "keepvip", str(REPO / "charts" / "keepvip"), "--namespace", "keepvip-system",
         "--create-namespace", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
         "--wait", "--timeout", "180s"],
        check=True, capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip


@pytest.fixture(scope="session")
def e2e(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    reason = unavailable_reason()
    if reason:
        _skip_or_fail(request.config, reason)
    workdir = tmp_path_factory.mktemp("kind")
    try:
        with daemon() as cli:
            ledger = Docker(cli)
            cluster: KindCluster | None = None
            try:
                base = subprocess.run(
                    [str(HACK / "base.sh")], check=True, capture_output=True, text=True, timeout=900,
                    env={**os.environ, "DOCKER": cli},
                ).stdout.strip()  # fmt: skip
                image = node_image()
                reasons = why_kind_cannot_run(ledger, image, base)
                if reasons:
                    _skip_or_fail(request.config, "; ".join(reasons))
                ref, _ = build_image(f"keepvip:e2e-{secrets.token_hex(4)}")
                ledger.own_image(ref)
                cluster = KindCluster(ledger, kind_binary(), image, workdir)
                cluster.create()
                cluster.load(ref)
                helm_install(cluster, ref, workdir)
                assert cluster.subnet is not None
                vip = cluster.vip()
                cluster.kubectl("create", "namespace", NAMESPACE)
                cluster.apply(app(ref))
                wait_until(
                    "3 Ready app pods",
                    lambda: (
                        cluster.get("deployment", "web", "-n", NAMESPACE)["status"].get(
                            "readyReplicas"
                        )
                        == 3
                    ),
                    180,
                )
                cluster.apply(virtualip(vip, cluster.subnet.prefixlen))
                client = ledger.run("--network", cluster.network, ref, "sleep", "infinity")
                found = E2E(cluster, ledger, ref, vip, client)
                wait_until("the VirtualIP Ready with a master", found.master, 120)
                yield found
            finally:
                if cluster is not None:
                    cluster.delete()
                ledger.cleanup()
    except (DockerError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.fail(f"e2e setup failed: {exc}\n{detail[-4000:]}")
