"""A LoadBalancer Service of class keepvip.io/vrrp on kind, with the real kube-proxy.

Runs after test_kind.py on the same cluster (one worker may already be dead,
the VirtualIP "web" is gone; the app's pods on the live workers are Ready).
A VirtualIPPool of one address of the cluster's network hands that address
to a Service in front of the app (externalTrafficPolicy Local, so the node
holding the VIP serves from its own pod and the answer names it); the client
reaches the Service on the VIP, and keeps reaching it when the master's node
container is killed, within the same bound as a plain VirtualIP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip_harness.kindctl import wait_until
from keepvip_harness.kindsuite import ADVERT_INTERVAL, APP_PORT, E2E, NAMESPACE, outage, timeline

# As in test_kind.py: the first test may pay for the cluster.
pytestmark = pytest.mark.timeout(1800)

SERVICE_PORT = 80
KILL_BOUND = 3 * ADVERT_INTERVAL + ADVERT_INTERVAL + 1.0


def pool(address: str) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": "e2e"},
        "spec": {
            "addresses": [address],
            "advertInterval": f"{round(ADVERT_INTERVAL * 1000)}ms",
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-lb", "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "keepvip.io/vrrp",
            "externalTrafficPolicy": "Local",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": APP_PORT}],
        },
    }


@pytest.fixture(scope="module")
def lb(e2e: E2E) -> Iterator[str]:
    address = str(e2e.cluster.subnet.broadcast_address - 20)
    e2e.cluster.apply(pool(address))
    e2e.cluster.apply(service())
    try:
        yield address
    finally:
        e2e.cluster.kubectl("delete", "service", "web-lb", "-n", NAMESPACE, check=False)
        e2e.cluster.kubectl("delete", "virtualippool", "e2e", check=False)


def ingress(e2e: E2E) -> list[str]:
    svc = e2e.cluster.get("service", "web-lb", "-n", NAMESPACE)
    return [
        i.get("ip") for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    ]


def answer(e2e: E2E, address: str) -> str | None:
    return e2e.answer(address, SERVICE_PORT)


def holder(e2e: E2E, address: str) -> str | None:
    live = [n for n in e2e.cluster.workers() if e2e.cluster.running(n)]
    found = [n for n in live if address in e2e.cluster.addresses(n)]
    return found[0] if len(found) == 1 else None


def test_externaltrafficpolicy_local_is_answered_only_where_a_ready_endpoint_is(
    e2e: E2E, lb: str
) -> None:
    """The app on the VIP's node turning not Ready moves the VIP to a node with a Ready
    endpoint, and kube-proxy there answers from that node's own pod. Read as Cluster, the
    old node would keep the VIP and kube-proxy would forward to another node's pod."""
    assert wait_until(
        "the pool's address in the Service's status", lambda: ingress(e2e) == [lb], 60
    )
    old = wait_until("one node holding the Service's VIP", lambda: holder(e2e, lb), 60)
    assert wait_until("an answer from the holder", lambda: answer(e2e, lb) == old, 30)
    pod = e2e.app_pod_on(old)
    e2e.cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "rm", "/tmp/ready")
    try:
        new = wait_until(
            "the VIP on another node", lambda: (h := holder(e2e, lb)) and h != old and h, 30
        )
        # Every answer now comes from the new holder's own endpoint.
        answers = [answer(e2e, lb) for _ in range(10)]
        print(f"{old} not Ready: the Service's VIP moved to {new}, answers {set(answers)}")
        assert set(answers) == {new}
    finally:
        e2e.cluster.kubectl("exec", "-n", NAMESPACE, pod, "--", "touch", "/tmp/ready")
        wait_until("the pod Ready again", lambda: _ready(e2e, pod), 60)


def _ready(e2e: E2E, pod: str) -> bool:
    conditions = e2e.cluster.get("pod", pod, "-n", NAMESPACE)["status"].get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_a_loadbalancer_service_answers_on_its_vip_and_survives_a_node_kill(
    e2e: E2E, lb: str
) -> None:
    assert wait_until(
        "the pool's address in the Service's status", lambda: ingress(e2e) == [lb], 60
    )
    node = wait_until("an answer on the Service's VIP", lambda: answer(e2e, lb), 60)
    assert lb in e2e.cluster.addresses(node)
    probe = e2e.probe(KILL_BOUND + 5, lb, SERVICE_PORT)
    time.sleep(0.5)
    since = time.monotonic()
    e2e.docker("kill", node)
    out, _ = probe.communicate(timeout=60)
    took, _gap = outage(out, since, node)
    print(f"docker kill {node}: the Service answered from another node after {took:.2f} s")
    print(f"answers: {timeline(out, since)}")
    assert took <= KILL_BOUND
    assert ingress(e2e) == [lb]
