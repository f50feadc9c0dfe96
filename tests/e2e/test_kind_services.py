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

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip_harness.kindctl import wait_until
from keepvip_harness.kindsuite import ADVERT_INTERVAL, APP_PORT, E2E, NAMESPACE, outage

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
    assert e2e.cluster.subnet is not None
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
    out = e2e.docker(
        "exec", e2e.client, "python", "-m", "keepvip_tools.lab.probe", address,
        "--port", str(SERVICE_PORT), "--duration", "0.01", "--timeout", "0.5", check=False,
    )  # fmt: skip
    who = [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]
    return who[-1] if who and who[-1] != "-" else None


def test_a_loadbalancer_service_answers_on_its_vip_and_survives_a_node_kill(
    e2e: E2E, lb: str
) -> None:
    assert wait_until(
        "the pool's address in the Service's status", lambda: ingress(e2e) == [lb], 60
    )
    holder = wait_until("an answer on the Service's VIP", lambda: answer(e2e, lb), 60)
    assert lb in e2e.cluster.addresses(holder)
    probe = subprocess.Popen(
        [e2e.docker.cli, "exec", e2e.client, "python", "-m", "keepvip_tools.lab.probe", lb,
         "--port", str(SERVICE_PORT), "--every", "0.02", "--timeout", "0.1",
         "--duration", str(KILL_BOUND + 5)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(0.5)
    since = time.monotonic()
    e2e.docker("kill", holder)
    out, _ = probe.communicate(timeout=60)
    took, _gap = outage(out, since, holder)
    print(f"docker kill {holder}: the Service answered from another node after {took:.2f} s")
    assert took <= KILL_BOUND
    assert ingress(e2e) == [lb]
