"""Fixtures of the e2e tier: keepvip on a real kind cluster (a control plane, three workers).

The cluster is the one of `make kind-up` (tests/harness/keepvip_harness/kindctl.py): created by
pytest-kind's ``KindCluster`` from the node image hack/kind/build.sh
assembles here (no registry is needed), on the kind tier's own Docker daemon
and a Docker network on 198.51.100.0/25 and 2001:db8:4b1d::/64. If `make
kind-up` left one running, the session reuses it (and leaves it running, its dead nodes restarted);
otherwise the session creates it and removes it at the end, with the network
and the daemon it started, also after a failure.

On it, with the real kubelet, containerd, runc and kube-proxy: the image
built the CI way and loaded into the nodes, charts/keepvip installed with the
pinned helm, and the workload the tests act on: an app of one hostNetwork
pod per worker (it answers with its node's name on port 8080, Ready while
/tmp/ready exists) and a VirtualIP that tracks the app's Ready pods. The
client is a container on the cluster's network that asks the VIP who answers.

The tier runs when ``KEEPVIP_REQUIRE_TIERS`` names ``e2e`` (``make e2e``) or
``KEEPVIP_E2E=1``; otherwise it is skipped (until it is required in CI), since
the first build of the node image takes about 7 minutes after the control
plane's (see docs/testing.md). Where it cannot run
(not root, no Docker engine to install), it is skipped with the reason, or
fails when required.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from keepvip_harness import kindctl, tiers
from keepvip_harness.dockerctl import Docker, DockerError, unavailable_reason
from keepvip_harness.kindctl import Cluster, wait_until
from keepvip_harness.kindsuite import E2E, NAMESPACE, app, deployed_image, virtualip


def _wanted() -> bool:
    return "e2e" in tiers.required_tiers() or os.environ.get("KEEPVIP_E2E") == "1"


# Package scope: the cluster is gone before pytest goes on to the other tiers,
# whose timing-sensitive tests should not share the CPU with four kubelets.
@pytest.fixture(scope="package")
def e2e(request: pytest.FixtureRequest) -> Iterator[E2E]:
    if not _wanted():
        pytest.skip(
            "the e2e tier runs with `make e2e` (KEEPVIP_REQUIRE_TIERS=e2e) or KEEPVIP_E2E=1: "
            "on a new machine its node image takes about 7 minutes to build (docs/testing.md)"
        )
    reason = unavailable_reason()
    if reason:
        tiers.skip_or_fail("e2e", reason)
    host, started_daemon = kindctl.docker_daemon()
    docker = Docker("/usr/bin/docker", host)
    cluster: Cluster | None = None
    try:
        cluster = kindctl.up(docker)
        ref = deployed_image(cluster)
        cluster.kubectl(
            "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180
        )
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.apply(app(ref))
        wait_until(
            "3 Ready app pods",
            lambda: (
                cluster.get("deployment", "web", "-n", NAMESPACE)["status"].get("readyReplicas")
                == 3
            ),
            180,
        )
        vip = str(cluster.subnet.broadcast_address - 10)
        cluster.apply(virtualip(vip, cluster.subnet.prefixlen))
        client = docker.run("--network", cluster.network, ref, "sleep", "infinity")
        found = E2E(cluster, docker, ref, vip, client)
        wait_until("the VirtualIP Ready with a master", found.master, 120)
        yield found
    except (DockerError, RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.fail(f"e2e setup failed: {exc}\n{detail[-4000:]}")
    finally:
        docker.cleanup()
        if cluster is not None and cluster.created and os.environ.get("KEEPVIP_KEEP_KIND") != "1":
            kindctl.down(docker)
        elif cluster is not None:
            # A cluster of `make kind-up`: left as found, less what the tests made and
            # broke. Nodes first: pods on a dead node never finish terminating.
            cluster.revive()
            cluster.kubectl(
                "delete", "namespace", NAMESPACE, "--ignore-not-found", check=False, timeout=180
            )
        if started_daemon and (cluster is None or cluster.created):
            subprocess.run([str(kindctl.KIND_HACK / "dockerd.sh"), "stop"], check=False)
