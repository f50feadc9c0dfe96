"""keepvip on a real cluster (kind: a control plane and three workers), seen from a client.

In order, on one cluster (conftest.py): the VIP answers from the master; the
tracked app's pod on the master turning not Ready moves the VIP; draining
the master's node hands it over gracefully; killing the master's node
container moves it within the documented bound; deleting the VirtualIP
leaves the VIP on no node. The client is a container on the cluster's
network that asks the VIP who answers, every 20 ms.

Bounds (docs/install.md, "What to expect"): a node that dies is replaced
after 3 advertisement intervals plus skew, about 0.35 s at 100 ms; a
graceful handover (priority 0) takes the skew; an app pod that turns not
Ready moves the VIP within a second of the kubelet noticing, which takes up
to the readiness probe's period (1 s here).
"""

from __future__ import annotations

import time

from keepvip_harness.kindctl import wait_until
from keepvip_harness.kindsuite import ADVERT_INTERVAL, E2E, NAMESPACE, outage

# Margins on the documented figures for the client's 100 ms probe timeout,
# ARP and a loaded CI machine.
KILL_BOUND = 3 * ADVERT_INTERVAL + ADVERT_INTERVAL + 1.0
NOT_READY_BOUND = 1.0 + 1.0 + 1.0  # probe period + the agent's reaction + margin
GRACEFUL_GAP = 1.0


def ready_replicas(e2e: E2E) -> int:
    status = e2e.cluster.get("deployment", "web", "-n", NAMESPACE)["status"]
    return int(status.get("readyReplicas") or 0)


def master(e2e: E2E) -> str:
    found: str = wait_until("a master", e2e.master, 60)
    return found


def test_the_vip_answers_from_the_master(e2e: E2E) -> None:
    node = master(e2e)
    assert wait_until("an answer on the VIP", e2e.answer, 30) == node
    assert e2e.vip in e2e.cluster.addresses(node)
    for other in e2e.cluster.workers():
        if other != node:
            assert e2e.vip not in e2e.cluster.addresses(other)

    def roles() -> dict[str, str | None]:
        pods = e2e.cluster.get("pods", "-n", NAMESPACE, "-l", "app=web")["items"]
        return {p["spec"]["nodeName"]: p["metadata"]["labels"].get("keepvip.io/role") for p in pods}

    # The tracked pods carry their node's role, for Services of active/passive apps.
    wait_until(
        "role labels",
        lambda: roles() == {w: "master" if w == node else "backup" for w in e2e.cluster.workers()},
        30,
    )


def test_the_app_turning_not_ready_on_the_master_moves_the_vip(e2e: E2E) -> None:
    old = master(e2e)
    pod = e2e.app_pod_on(old)
    probe = e2e.probe(duration=NOT_READY_BOUND + 3)
    time.sleep(0.5)
    since = time.monotonic()
    e2e.cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "rm", "/tmp/ready")
    out, _ = probe.communicate(timeout=60)
    took, _gap = outage(out, since, old)
    print(f"app not Ready on {old}: VIP answered by another node after {took:.2f} s")
    assert took <= NOT_READY_BOUND
    assert wait_until("a new master in status", lambda: (m := e2e.master()) and m != old and m, 30)
    # Ready again: the VIP stays where it is (preempt is off).
    e2e.cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "touch", "/tmp/ready")
    wait_until("3 Ready app pods again", lambda: ready_replicas(e2e) == 3, 60)
    assert e2e.master() != old


def test_draining_the_masters_node_hands_over_gracefully(e2e: E2E) -> None:
    old = master(e2e)
    probe = e2e.probe(duration=20)
    time.sleep(0.5)
    since = time.monotonic()
    try:
        e2e.cluster.kubectl(
            "drain", old, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s",
            timeout=120,
        )  # fmt: skip
        out, _ = probe.communicate(timeout=60)
        took, gap = outage(out, since, old)
        print(f"drain of {old}: VIP moved after {took:.2f} s, longest gap {gap:.2f} s")
        assert gap <= GRACEFUL_GAP, f"clients saw {gap:.2f} s without an answer"
        new = wait_until(
            "a new master in status", lambda: (m := e2e.master()) and m != old and m, 30
        )
        status = e2e.virtualip()["status"]
        entries = {n["name"]: n for n in status.get("nodes", [])}
        print(f"{new} took over: {entries.get(new, {}).get('reason')}")
    finally:
        e2e.cluster.kubectl("uncordon", old)
    wait_until(
        "3 Ready app pods again",
        lambda: (
            e2e.cluster.get("deployment", "web", "-n", NAMESPACE)["status"].get("readyReplicas")
            == 3
        ),
        120,
    )


def test_killing_the_masters_node_moves_the_vip_within_the_bound(e2e: E2E) -> None:
    old = master(e2e)
    probe = e2e.probe(duration=KILL_BOUND + 5)
    time.sleep(0.5)
    since = time.monotonic()
    e2e.docker("kill", old)
    out, _ = probe.communicate(timeout=60)
    took, _gap = outage(out, since, old)
    print(f"docker kill {old}: VIP answered by another node after {took:.2f} s")
    assert took <= KILL_BOUND
    # Exactly one of the surviving workers holds it.
    holders = [
        n
        for n in e2e.cluster.workers()
        if e2e.cluster.running(n) and e2e.vip in e2e.cluster.addresses(n)
    ]
    assert len(holders) == 1 and holders[0] != old


def test_deleting_the_virtualip_leaves_no_vip_on_any_node(e2e: E2E) -> None:
    e2e.cluster.kubectl("delete", "virtualip", "web", "-n", NAMESPACE, "--wait=true", timeout=180)
    alive = [n for n in e2e.cluster.node_containers() if e2e.cluster.running(n)]
    wait_until(
        "no node holding the VIP",
        lambda: not [n for n in alive if e2e.vip in e2e.cluster.addresses(n)],
        60,
    )
    assert e2e.answer() is None
    wait_until(
        "the agents' objects to be garbage-collected",
        lambda: e2e.cluster.get(
            "daemonsets,serviceaccounts,roles,rolebindings", "-n", NAMESPACE,
            "-l", "keepvip.io/virtualip=web",
        )["items"] == [],
        60,
    )  # fmt: skip
