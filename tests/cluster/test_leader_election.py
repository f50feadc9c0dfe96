"""Two keepvip-operator processes on the real API server: one leads, the other waits as standby.

Both run as ``keepvip-operator`` subprocesses (a kill must be a real kill),
each with its own identity (``POD_NAME``) and its own label on the agent
pods it renders (``keepvip.test/rendered-by``): the agents' DaemonSet names
the operator that last reconciled it, so "the standby did nothing" is
checked on the API, not only in a log. Every process started here is
stopped at teardown (SIGTERM, then SIGKILL), also when a test fails; their
logs are printed then.

Measured takeover times are printed (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keepvip_harness import procs
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import Vips, wait_for
from keepvip_harness.operatorrun import PORT_BLOCKS
from keepvip_harness.rest import ApiError, Rest

OPERATOR = Path(sys.executable).parent / "keepvip-operator"
LEASE = "keepvip-operator"
RENDERED_BY = "keepvip.test/rendered-by"
# client-go's defaults, the operator's own: the takeover times printed are the real ones.
DEFAULT = {"lease": 15, "renew": 10.0, "retry": 2.0}
# For the paths where only the order of events matters.
FAST = {"lease": 4, "renew": 3.0, "retry": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Op:
    identity: str
    proc: subprocess.Popen[bytes]
    log: Path
    health_url: str

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> tuple[int, Any]:
        """The liveness endpoint's status and JSON body; (0, None) when nothing answers."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:  # noqa: S310 - http://127.0.0.1
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except OSError:
            return 0, None


@dataclass
class Cluster:
    api: Rest
    namespace: str
    vips: Vips

    @property
    def lease_path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{LEASE}"

    def lease(self) -> dict[str, Any]:
        got: dict[str, Any] = self.api.get(self.lease_path)
        return got

    def holder(self) -> str:
        try:
            return str(self.lease()["spec"].get("holderIdentity") or "")
        except ApiError:
            return ""

    def take_lease(self, holder: str, duration: int) -> None:
        """Write the Lease as another elector would (read, then replace: retried on 409)."""
        for _ in range(20):
            lease = self.lease()
            lease["spec"].update(holderIdentity=holder, leaseDurationSeconds=duration)
            try:
                self.api.request("PUT", self.lease_path, lease)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise
                # 409: the leader renewed in between; read again.
        pytest.fail("could not write the Lease: 20 conflicts in a row")

    def rendered_by(self, vip: str) -> str | None:
        try:
            # The one node agent DaemonSet: each leader applies it once when it starts leading.
            ds = self.api.get(f"/apis/apps/v1/namespaces/{self.namespace}/daemonsets/keepvip-agent")
        except ApiError:
            return None
        labels = ds["spec"]["template"]["metadata"].get("labels") or {}
        return labels.get(RENDERED_BY)


@pytest.fixture
def cluster(control_plane: ControlPlane, vips: Vips, kube_namespace: str) -> Cluster:
    return Cluster(control_plane.admin_rest(), kube_namespace, vips)


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, cluster: Cluster, tmp_path: Path
) -> Iterator[Callable[..., Op]]:
    """Start ``keepvip-operator`` with leader election in the test's namespace; all stopped after."""
    started: list[Op] = []

    def start(identity: str, timing: dict[str, float] = DEFAULT) -> Op:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPVIP_")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            PATH=f"{OPERATOR.parent}:{env.get('PATH', '')}",
            POD_NAME=identity,
            POD_NAMESPACE=cluster.namespace,
            KEEPVIP_KUBECONFIG=str(control_plane.admin_kubeconfig),
            KEEPVIP_WATCH_NAMESPACES=cluster.namespace,
            KEEPVIP_LEADER_ELECTION="true",
            KEEPVIP_LEADER_ELECTION_LEASE_DURATION=str(timing["lease"]),
            KEEPVIP_LEADER_ELECTION_RENEW_DEADLINE=str(timing["renew"]),
            KEEPVIP_LEADER_ELECTION_RETRY_PERIOD=str(timing["retry"]),
            KEEPVIP_LIVENESS_ENDPOINT=f"http://127.0.0.1:{port}/healthz",
            KEEPVIP_AGENT_IMAGE="keepvip/agent:test",
            KEEPVIP_EXTRA_POD_LABELS=f"{RENDERED_BY}={identity}",
            KEEPVIP_AGENT_METRICS_PORT=str(next(PORT_BLOCKS)),
            KEEPVIP_RESYNC_INTERVAL="1",
            KEEPVIP_LOG_LEVEL=os.environ.get("KEEPVIP_TEST_OPERATOR_LOG_LEVEL", "info"),
        )
        log = tmp_path / f"{identity}.log"
        proc = procs.start(identity, [str(OPERATOR)], log=log, env=env)
        op = Op(identity, proc, log, f"http://127.0.0.1:{port}/healthz")
        started.append(op)
        return op

    try:
        yield start
    finally:
        for op in started:
            exe = procs.exe_of(op.proc.pid) or ""
            procs.stop(procs.Recorded(op.identity, op.proc.pid, exe), proc=op.proc, grace=15)
        for op in started:
            print(f"----- {op.identity} (exit {op.exit_code()})\n{op.output()[-6000:]}")


def leader_and_standby(cluster: Cluster, a: Op, b: Op) -> tuple[Op, Op]:
    holder = wait_for(
        "a leader", lambda: cluster.holder() in (a.identity, b.identity) and cluster.holder(), 30
    )
    return (a, b) if holder == a.identity else (b, a)


def wait_exit(op: Op, timeout: float) -> int:
    code: int = (
        wait_for(f"{op.identity} to exit", lambda: op.exit_code() is not None, timeout)
        and op.proc.wait()
    )
    return code


def test_one_leads_the_standby_does_nothing_and_takes_over_when_the_leader_stops(
    cluster: Cluster, start_operator: Callable[..., Op]
) -> None:
    a, b = start_operator("op-a"), start_operator("op-b")  # at once: a race for the Lease
    leader, standby = leader_and_standby(cluster, a, b)
    cluster.vips.create("web", addresses=["192.0.2.50/24"])
    wait_for("the leader's DaemonSet", lambda: cluster.rendered_by("web") == leader.identity, 30)
    wait_for(
        "status from the leader", lambda: cluster.vips.status("web").get("virtualRouterID"), 30
    )

    # The standby reconciles nothing: the DaemonSet keeps the leader's rendering while the
    # leader's resync loop runs (every second), and the standby never started kopf.
    time.sleep(4)
    assert cluster.rendered_by("web") == leader.identity
    lease = cluster.lease()["spec"]
    assert (lease["holderIdentity"], lease.get("leaseTransitions", 0)) == (leader.identity, 0)
    assert standby.exit_code() is None
    idle = standby.output()
    assert f"standby as {standby.identity}" in idle
    assert "reconciled" not in idle and "kopf" not in idle, idle
    # It answers the liveness endpoint (the chart's probe), saying who leads.
    expected = (200, {"leader": False, "holder": leader.identity})
    wait_for("the standby's liveness endpoint", lambda: standby.health() == expected, 10)
    assert leader.health()[0] == 200  # kopf's own endpoint

    # SIGTERM: kopf stops, then the Lease is released; the standby takes over at its next try.
    t0 = time.monotonic()
    leader.proc.send_signal(signal.SIGTERM)
    wait_for("the standby to hold the Lease", lambda: cluster.holder() == standby.identity, 30)
    took_lease = time.monotonic() - t0
    wait_for(
        "the new leader to reconcile", lambda: cluster.rendered_by("web") == standby.identity, 30
    )
    took_reconcile = time.monotonic() - t0
    assert wait_exit(leader, 30) == 0
    print(
        f"graceful takeover: Lease after {took_lease:.2f}s, reconciled after {took_reconcile:.2f}s"
    )
    assert f"Lease {cluster.namespace}/{LEASE}: released" in leader.output()
    assert took_lease < DEFAULT["retry"] + 5  # kopf's stop, then one retry period at most
    assert cluster.lease()["spec"]["leaseTransitions"] == 1
    assert standby.health()[0] == 200


def test_a_killed_leader_is_replaced_after_the_lease_duration(
    cluster: Cluster, start_operator: Callable[..., Op]
) -> None:
    a = start_operator("op-a")
    wait_for("op-a to lead", lambda: cluster.holder() == "op-a", 30)
    b, c = start_operator("op-b"), start_operator("op-c")
    expected = (200, {"leader": False, "holder": "op-a"})
    for standby in (b, c):
        wait_for(f"{standby.identity} standby", lambda s=standby: s.health() == expected, 30)
    # A standby stopped (SIGTERM) just leaves: at once, status 0, the Lease untouched.
    c.proc.send_signal(signal.SIGTERM)
    assert wait_exit(c, 5) == 0
    assert cluster.holder() == "op-a"
    assert "released" not in c.output() and "acquired" not in c.output()
    cluster.vips.create("web", addresses=["192.0.2.51/24"])
    wait_for("op-a's DaemonSet", lambda: cluster.rendered_by("web") == "op-a", 30)

    t0 = time.monotonic()
    os.killpg(a.proc.pid, signal.SIGKILL)  # no release: the Lease must expire
    wait_for("op-b to hold the Lease", lambda: cluster.holder() == "op-b", 40)
    took = time.monotonic() - t0
    wait_for("op-b to reconcile", lambda: cluster.rendered_by("web") == "op-b", 30)
    took_reconcile = time.monotonic() - t0
    print(
        f"takeover after SIGKILL: Lease after {took:.2f}s, reconciled after {took_reconcile:.2f}s"
    )
    # Never before the Lease expired (the kill may come up to a retry period after the last
    # renewal), and at most two retry periods after (one to see the renewal, one to see it expire).
    assert (
        DEFAULT["lease"] - DEFAULT["retry"] - 0.5
        <= took
        <= DEFAULT["lease"] + 2 * DEFAULT["retry"] + 2
    )


def test_a_leader_that_sees_another_holder_stops_kopf_and_exits_non_zero(
    cluster: Cluster, start_operator: Callable[..., Op]
) -> None:
    a = start_operator("op-a", FAST)
    wait_for("op-a to lead", lambda: cluster.holder() == "op-a", 30)
    b = start_operator("op-b", FAST)
    wait_for("op-b standby", lambda: b.health()[0] == 200, 30)
    cluster.vips.create("web", addresses=["192.0.2.52/24"])
    wait_for("op-a's DaemonSet", lambda: cluster.rendered_by("web") == "op-a", 30)

    # Someone else takes the Lease (a split the API server settled against us).
    t0 = time.monotonic()
    cluster.take_lease("intruder", 3600)
    assert wait_exit(a, 15) == 1
    print(f"another holder: the leader exited {time.monotonic() - t0:.2f}s after")
    out = a.output()
    assert "leadership lost: the Lease is now held by 'intruder'" in out
    assert "Operator is stopping." in out.split("leadership lost")[1]  # kopf stopped first
    # The standby respects the intruder's Lease, and takes over once it is released.
    time.sleep(2)
    assert b.health() == (200, {"leader": False, "holder": "intruder"})
    cluster.take_lease("", 1)
    wait_for("op-b to reconcile", lambda: cluster.rendered_by("web") == "op-b", 30)


def test_a_leader_cut_off_from_the_api_steps_down_at_the_renew_deadline(
    control_plane: ControlPlane, cluster: Cluster, start_operator: Callable[..., Op]
) -> None:
    a = start_operator("op-a", FAST)
    wait_for("op-a to lead", lambda: cluster.holder() == "op-a" and a.health()[0] == 200, 30)
    apiserver = control_plane.pid("kube-apiserver")
    t0 = time.monotonic()
    os.kill(apiserver, signal.SIGSTOP)
    try:
        # It exits while the API server is still frozen: it never needs the API to step down.
        code = wait_for("op-a to exit", lambda: a.exit_code() is not None, 9.0) and a.proc.wait()
        took = time.monotonic() - t0
    finally:
        os.kill(apiserver, signal.SIGCONT)
    assert code == 1
    print(f"API server frozen: the leader exited {took:.2f}s after")
    assert FAST["renew"] - FAST["retry"] <= took <= FAST["lease"] + 2
    assert "renew deadline" in a.output()
    with contextlib.suppress(ApiError):
        wait_for("the API server back", lambda: cluster.api.get("/version"), 30)
