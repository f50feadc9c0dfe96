"""150 VirtualIPs on kind: one agent pod per node whatever the count, every VIP answering.

Issue 12's kind requirement. The per-VirtualIP layout needed VirtualIPs x
nodes agent pods, and the kubelet's default of 110 pods per node stopped it
short of 110 VirtualIPs. Here the kubelets keep that default (read from the
Nodes' capacity), 150 VirtualIPs are applied at once, and each must be Ready
with a master in status and answer the client on its address with that
master's name (the app of conftest.py answers on every address of its worker);
the node agents' pods are the same ones before and after, none restarted (an
agent over its memory limit would be OOM-killed and restarted). Deleting the
150 leaves none of their addresses on any node and none answering.

Addresses (kindctl): the 32 of SCALE_VIPS4 in the kind network's IPv4 VIP
range (it has room for 61) and 118 from the network's IPv6 block, so both
families run at this count on the same agents. Placement is the default: the
workers (the control plane's taint keeps VirtualIPs off it; its agent runs
none). Runs after test_kind.py on the same cluster: a worker may be dead
then; its agent pod is still an API object (one per node, as counted here)
and the VIPs elect among the live workers.

What it costs: printed (apply to all Ready, to all answering, delete to none
bound): 31 s on the 2-core machine in the whole tier, Ready at 20 s
(docs/testing.md). Deletion is timed from a list of the objects, not kubectl
delete --wait, which polls each deleted object 0.2 s apart (30 s for 150).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest

from keepvip_api.names import NODE_AGENT_SELECTOR
from keepvip_harness.kindctl import CHART_NAMESPACE, SCALE_VIPS4, SCALE_VIPS6, SUBNET6, wait_until
from keepvip_harness.kindsuite import E2E, NAMESPACE, ready_master

# As in test_kind.py: run alone, the first test pays for the session's cluster.
pytestmark = pytest.mark.timeout(1800)

COUNT = 150
KUBELET_DEFAULT_MAX_PODS = "110"
LABEL = ("keepvip.test/scale", "150")
SELECTOR = f"{LABEL[0]}={LABEL[1]}"
READY_WITHIN = 180.0


def scale_addresses(prefix4: int) -> dict[str, str]:
    """VirtualIP name -> address with prefix: every host of SCALE_VIPS4, then IPv6."""
    v4 = [f"{a}/{prefix4}" for a in SCALE_VIPS4]
    v6 = [f"{a}/{SUBNET6.prefixlen}" for a in islice(SCALE_VIPS6, 1, COUNT - len(v4) + 1)]
    return {f"scale-{i:03d}": a for i, a in enumerate([*v4, *v6])}


def scale_vip(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict([LABEL])},
        "spec": {"addresses": [address]},
    }


@pytest.fixture
def scale(e2e: E2E) -> Iterator[dict[str, str]]:
    """The 150 VirtualIPs' names and addresses; whatever the test leaves, deleted after it."""
    vips = scale_addresses(e2e.cluster.subnet.prefixlen)
    try:
        yield vips
    finally:
        e2e.cluster.kubectl(
            "delete", "virtualips", "-n", NAMESPACE, "-l", SELECTOR, "--ignore-not-found",
            "--wait=false", check=False,
        )  # fmt: skip
        with contextlib.suppress(AssertionError):  # the test's own failure is the one to see
            wait_until("the scale VirtualIPs gone", lambda: not masters(e2e), 60, every=0.5)


def agent_pods(e2e: E2E) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in NODE_AGENT_SELECTOR.items())
    items: list[dict[str, Any]] = e2e.cluster.get("pods", "-n", CHART_NAMESPACE, "-l", selector)[
        "items"
    ]
    return items


def restarts(pod: dict[str, Any]) -> int:
    return sum(c.get("restartCount", 0) for c in pod["status"].get("containerStatuses") or [])


def masters(e2e: E2E) -> dict[str, str | None]:
    items = e2e.cluster.get("virtualips", "-n", NAMESPACE, "-l", SELECTOR)["items"]
    return {v["metadata"]["name"]: ready_master(v) for v in items}


def agent_rss_mib(e2e: E2E, node: str) -> float | None:
    """Resident memory of the keepvip-agent process on a node (VmRSS), or None."""
    out = e2e.docker(
        "exec", node, "sh", "-c",
        "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | "
        "grep -q 'keepvip-[a]gent' && grep VmRSS $d/status; done",
        check=False,
    )  # fmt: skip
    kib = [int(line.split()[1]) for line in out.splitlines() if line.startswith("VmRSS")]
    return max(kib) / 1024 if kib else None


def bound_anywhere(e2e: E2E, addresses: set[str]) -> dict[str, set[str]]:
    live = [n for n in e2e.cluster.node_containers() if e2e.cluster.running(n)]
    found = {n: e2e.cluster.addresses(n, family=0) & addresses for n in live}
    return {n: a for n, a in found.items() if a}


def test_150_virtualips_run_on_one_agent_pod_per_node_and_each_answers(
    e2e: E2E, scale: dict[str, str]
) -> None:
    cluster = e2e.cluster
    nodes = [n["metadata"]["name"] for n in cluster.get("nodes")["items"]]
    capacity = {
        n["metadata"]["name"]: n["status"]["capacity"]["pods"]
        for n in cluster.get("nodes")["items"]
    }
    assert capacity == dict.fromkeys(nodes, KUBELET_DEFAULT_MAX_PODS), "the kubelets' default"
    before = {p["metadata"]["uid"]: restarts(p) for p in agent_pods(e2e)}
    assert len(before) == len(nodes)

    started = time.monotonic()
    cluster.apply(*(scale_vip(name, address) for name, address in scale.items()))
    found = wait_until(
        f"{COUNT} VirtualIPs Ready with a master",
        lambda: (m := masters(e2e)) and len(m) == COUNT and all(m.values()) and m,
        READY_WITHIN,
        every=2.0,
    )
    ready_at = time.monotonic() - started

    address_of = {name: a.split("/")[0] for name, a in scale.items()}
    expected = {address_of[name]: master for name, master in found.items()}

    def all_answer() -> dict[str, str | None] | None:
        got = e2e.answers(list(expected))
        return got if got == expected else None

    try:
        wait_until("every VIP answering from its master", all_answer, 60, every=1.0)
    except AssertionError:
        got = e2e.answers(list(expected))
        wrong = {a: (got[a], m) for a, m in expected.items() if got[a] != m}
        raise AssertionError(f"{len(wrong)} VIPs not answered by their master: {wrong}") from None
    answering_at = time.monotonic() - started

    pods = agent_pods(e2e)
    per_node = Counter(p["spec"].get("nodeName") for p in pods)
    assert per_node == Counter(nodes), f"one agent pod per node: {dict(per_node)}"
    assert {p["metadata"]["uid"]: restarts(p) for p in pods} == before, (
        "no agent pod was replaced or restarted"
    )
    spread = Counter(found.values())
    rss = {n: agent_rss_mib(e2e, n) for n in cluster.workers() if cluster.running(n)}
    shown_rss = {n: None if r is None else round(r, 1) for n, r in rss.items()}

    started = time.monotonic()
    # kubectl's --wait polls the deleted objects one by one every 0.2 s (30 s for 150 that are
    # long gone): one list instead.
    cluster.kubectl("delete", "virtualips", "-n", NAMESPACE, "-l", SELECTOR, "--wait=false")
    wait_until("the 150 VirtualIPs gone", lambda: not masters(e2e), 60, every=0.5)
    deleted_at = time.monotonic() - started
    left: dict[str, set[str]] = {}

    def unbound() -> bool:
        left.clear()
        left.update(bound_anywhere(e2e, set(address_of.values())))
        return not left

    try:
        wait_until("none of the 150 addresses on any node", unbound, 60, every=1.0)
    except AssertionError:
        raise AssertionError(f"still bound 60 s after the delete: {left}") from None
    gone_at = time.monotonic() - started
    assert not {a: w for a, w in e2e.answers(list(expected)).items() if w}, "nobody answers"
    print(
        f"{COUNT} VirtualIPs: all Ready with a master {ready_at:.1f} s after the apply, all "
        f"answering from their master at {answering_at:.1f} s; masters {dict(spread)}; "
        f"agent RSS MiB {shown_rss}; "
        f"deleted (gone from the API) in {deleted_at:.1f} s, unbound everywhere at "
        f"{gone_at:.1f} s"
    )
