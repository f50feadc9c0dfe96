"""The Kubernetes API address: three real API servers behind a keepvip VIP, a real client on it.

Each lab node runs a kube-apiserver (this tier's binaries, one etcd) and a
standalone keepvip agent with the file ``keepvip static-pod --config-out``
generates: the /readyz check over https, verified against the cluster CA for
the name ``kubernetes``. A kubernetes-client process uses the VIP as its
server and reads the ``default`` Namespace every 50 ms. Three events, each
on whichever node holds the VIP at the time:

(a) its API server is killed: the check fails, the agent faults and hands over;
    or it hangs (SIGSTOP): the check times out, the same follows;
(b) its link is cut (bridge port state 0, carrier kept): the backups' master-down timer;
(c) an upgrade: its agent gets SIGTERM (hands over at once), then its API
    server is stopped.

Each prints what the client saw and asserts, generously for a loaded 2-core
machine, the longest gap, and that no request failed once the new node had
answered (no TLS error: its certificate carries the VIP; no connection error).
The generated Pod itself is checked by the API server's validation
(server-side dry run) at the end.

Time: about 30 s warm (three API servers Ready in about 5 s; 20 s under load).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import yaml

from keepvip_harness import tiers
from keepvip_harness.apiha import ApiNodes, ApiOutage, api_outage
from keepvip_harness.controlplane import ControlPlane, find_bin_dir
from keepvip_harness.labdaemons import Cutter
from keepvip_tools.apiaddress.config import Options, build
from keepvip_tools.apiaddress.staticpod import render_pod
from keepvip_tools.lab.topology import Lab

# The agents' numbers (the generator's, faster than its 1s defaults to keep the test short).
AGENT = {
    "advert_interval": "200ms",
    "check_interval": "200ms",
    "check_timeout": "500ms",
    "check_fall": 2,
}
SETTLE = 30.0


@pytest.fixture(scope="module")
def api_nodes() -> Iterator[ApiNodes]:
    reason = tiers.netns_unavailable_reason()
    if reason is not None:
        tiers.skip_or_fail("cluster", reason)
    bin_dir, why = find_bin_dir()
    if bin_dir is None:
        tiers.skip_or_fail("cluster", why)
        raise AssertionError("unreachable")
    with Lab(nodes=3) as lab:
        nodes = ApiNodes(lab, bin_dir)
        t0 = time.monotonic()
        nodes.setup()
        print(f"\nthree API servers Ready in {time.monotonic() - t0:.1f}s")
        nodes.start_client()
        try:
            yield nodes
        finally:
            nodes.stop_client()


def all_up(nodes: ApiNodes) -> int:
    """Every API server Ready, every agent running, one holder answering the client."""
    return nodes.steady(lambda i: nodes.start_keepvip(i, **AGENT), timeout=SETTLE)


def follow(nodes: ApiNodes, event: float, old: int) -> ApiOutage:
    """Wait for 10 answers in a row from another node, then read what the client saw."""
    others = [i for i in range(1, nodes.lab.nodes + 1) if i != old]
    new = nodes.wait_holder(others, SETTLE, alone=False)
    nodes.wait_answers(f"n{new}", 10, SETTLE)
    seen = api_outage(nodes.requests(), event, f"n{old}", time.monotonic())
    print(
        f"\nn{old} -> {seen.new}: gap {seen.gap:.3f}s, longest unanswered "
        f"{seen.longest_unanswered:.3f}s, failures {list(seen.errors)}"
    )
    return seen


def test_a_killed_api_server_moves_the_address(api_nodes: ApiNodes) -> None:
    old = all_up(api_nodes)
    event = time.monotonic()
    api_nodes.kill_apiserver(old)
    seen = follow(api_nodes, event, old)
    # check 2 x 200 ms + its timeout + fault hand-over: well under a second when idle.
    assert seen.gap is not None and seen.gap < 5.0
    assert seen.errors_after_new == ()
    # Connections refused by the dead server, or cut while the address moved; never a
    # certificate the client does not trust.
    assert set(seen.errors) <= {"refused", "reset", "tls-reset"}, seen.errors


def test_a_hung_api_server_moves_the_address(api_nodes: ApiNodes) -> None:
    """SIGSTOP: the kernel still accepts connections, nothing answers. The check's timeout
    (500 ms here) fails it; the agent faults and hands over."""
    old = all_up(api_nodes)
    server = api_nodes.apiservers[old]
    event = time.monotonic()
    os.kill(server.pid, signal.SIGSTOP)
    try:
        seen = follow(api_nodes, event, old)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    # 2 x (200 ms interval + 500 ms timeout), then the hand-over.
    assert seen.gap is not None and seen.gap < 6.0
    assert seen.errors_after_new == ()
    assert set(seen.errors) <= {"timeout", "reset", "tls-reset", "refused"}, seen.errors


def test_a_cut_master_is_replaced_by_a_backup(api_nodes: ApiNodes) -> None:
    old = all_up(api_nodes)
    cutter = Cutter(api_nodes.lab)
    event = time.monotonic()
    cutter.cut(old)
    try:
        seen = follow(api_nodes, event, old)
    finally:
        cutter.heal(old)
    # Master_Down_Interval 3 x 200 ms + skew, and the client's timeouts on the lost node.
    assert seen.gap is not None and seen.gap < 6.0
    assert seen.errors_after_new == ()
    assert set(seen.errors) <= {"refused", "reset", "tls-reset", "timeout"}, seen.errors


def test_an_upgrade_hands_over_before_the_api_server_stops(api_nodes: ApiNodes) -> None:
    old = all_up(api_nodes)
    event = time.monotonic()
    api_nodes.keepers[old].terminate()
    assert api_nodes.keepers[old].wait(10) == 0
    api_nodes.stop_apiserver(old)
    seen = follow(api_nodes, event, old)
    # A priority-0 advertisement: a backup takes over after its skew time (about 0.1 s).
    assert seen.gap is not None and seen.gap < 2.0
    assert seen.errors_after_new == ()
    # At most the keep-alive connection the old node held is reset, once.
    assert set(seen.errors) <= {"reset", "tls-reset"} and len(seen.errors) <= 2, seen.errors


def test_the_generated_static_pod_passes_api_validation(control_plane: ControlPlane) -> None:
    options = Options(address="192.0.2.10/24")
    for config_path in ("/etc/keepvip/api-address.yaml", None):
        pod = render_pod(build(options), options, image="keepvip:test", config_path=config_path)
        created = control_plane.admin_rest().request(
            "POST",
            "/api/v1/namespaces/kube-system/pods",
            pod,
            query={"dryRun": "All", "fieldValidation": "Strict"},
        )
        spec = created["spec"]
        assert spec["priority"] == 2000001000  # system-node-critical was resolved
        assert (
            spec["containers"][0]["securityContext"]
            == pod["spec"]["containers"][0]["securityContext"]
        )
        assert yaml.safe_dump(created["metadata"]["labels"]) == yaml.safe_dump(
            pod["metadata"]["labels"]
        )
