"""The node agent's pure parts and its shells under fake time.

Which VirtualIPs run on a node (:func:`select`), the shared names and the
liveness rule, the client-side label selector, the split-brain shell that
judges the holder by its node Lease (:class:`VipLease`, the arbiter's rules
unchanged), and the status entry written on change only (:class:`EntryWriter`).
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from types import SimpleNamespace
from typing import Any

import pytest

from keepvip_agent.kube import paths, vipglue
from keepvip_agent.kube.entries import REWRITE_PAUSE, EntryWriter, fault_entry
from keepvip_agent.kube.lease import API_FENCE
from keepvip_agent.kube.nodelease import LeaseCache, NodeLease
from keepvip_agent.kube.pods import peer_addresses, selector_matches
from keepvip_agent.kube.selection import ParseCache, select
from keepvip_agent.kube.viplease import VipLease
from keepvip_agent.vrrp.router import State
from keepvip_api.cluster import LabelSelector
from keepvip_api.names import (
    NODE_LEASE_DURATION,
    SPLIT_BRAIN_FAULT,
    node_lease_name,
    vip_lease_name,
)
from keepvip_api.status import NodeStatus, node_alive
from keepvip_harness.fakeagentapi import FakeApi
from keepvip_harness.runtime_rig import run

# -- names and liveness ---------------------------------------------------------------------


def test_vip_lease_names_are_readable_unique_and_fit_63_characters() -> None:
    short = vip_lease_name("prod", "web")
    assert short.startswith("keepvip-vip-prod-web-") and len(short) <= 63
    long_ns, long_name = "n" * 63, "x" * 253
    a, b = vip_lease_name(long_ns, long_name), vip_lease_name(long_ns, long_name + "y")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    assert vip_lease_name("a-b", "c") != vip_lease_name("a", "b-c"), "the hash tells them apart"
    assert vip_lease_name("prod", "web") == short
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", a)


def test_a_node_is_alive_while_its_node_lease_renews() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert node_alive(now - timedelta(seconds=30), now)
    assert not node_alive(now - timedelta(seconds=30.5), now)
    assert not node_alive(None, now)


def test_label_selectors_are_matched_client_side() -> None:
    sel = LabelSelector.model_validate_json(
        json.dumps(
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["a", "b"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            }
        )
    )
    assert selector_matches(sel, {"app": "web", "tier": "a"})
    assert not selector_matches(sel, {"app": "web", "tier": "c"})
    assert not selector_matches(sel, {"app": "web"})
    assert not selector_matches(sel, {"app": "web", "tier": "b", "canary": "1"})
    assert not selector_matches(sel, {"app": "db", "tier": "a"})


def _agent_pod(node: str, *ips: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"agent-{node}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {"hostIP": ips[0], "hostIPs": [{"ip": ip} for ip in ips]},
    }


def test_ipv4_elections_unicast_to_the_other_agents_host_ips_ipv6_ones_multicast() -> None:
    """IPv6 adverts come from link-local addresses that no pod status shows: an IPv6
    election is told "anyone, by multicast" (None), never a list of host IPs: those would
    drop every advert as from a stranger, and on single-stack IPv4 nodes (kind's) the list
    would be empty, so every node would hear nobody and be master."""
    pods = [
        _agent_pod("n1", "198.51.100.2", "2001:db8::2"),
        _agent_pod("n2", "198.51.100.3", "2001:db8::3"),
        _agent_pod("n3", "198.51.100.4"),
        _agent_pod("n4", "198.51.100.5", deleting=True),
        {"metadata": {"name": "pending"}, "spec": {}, "status": {}},
    ]
    # A terminating agent (n4) is still a peer: it hands its VIPs over right then.
    assert peer_addresses(pods, "n1", 4) == {
        ip_address("198.51.100.3"),
        ip_address("198.51.100.4"),
        ip_address("198.51.100.5"),
    }
    assert peer_addresses(pods, "n1", 6) is None
    assert peer_addresses(pods[2:3], "n1", 6) is None


# -- which VirtualIPs run here ------------------------------------------------------------


def obj(name: str, **spec: Any) -> dict[str, Any]:
    base = {"addresses": ["192.0.2.50/24"], "virtualRouterID": 7}
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {**base, **spec},
    }


NODE = {
    "metadata": {"name": "n1", "labels": {"zone": "a"}},
    "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
}


def test_select_runs_what_parses_has_a_vrid_is_not_blocked_and_is_placed_here() -> None:
    blocked = obj("blocked")
    blocked["status"] = {"conditions": [{"type": "Conflict", "status": "True"}]}
    gone = obj("gone")
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    tolerate = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    objects = [
        obj("ok", tolerations=tolerate, nodeSelector={"zone": "a"}),
        obj("untolerated"),
        obj("elsewhere", tolerations=tolerate, nodeSelector={"zone": "b"}),
        {**obj("novrid", tolerations=tolerate), "spec": {"addresses": ["192.0.2.51/24"]}},
        obj("invalid", advertInterval="soon"),
        blocked,
        gone,
    ]
    sel = select(objects, NODE)
    assert list(sel.run) == ["ns/ok"]
    assert "dedicated=db:NoSchedule" in sel.skipped["ns/untolerated"]
    assert "zone" in sel.skipped["ns/elsewhere"]
    assert "virtualRouterID" in sel.skipped["ns/novrid"]
    assert sel.skipped["ns/invalid"].startswith("invalid: ")
    assert "Conflict" in sel.skipped["ns/blocked"]
    assert sel.skipped["ns/gone"] == "being deleted"
    assert select([obj("ok")], None).run == {}, "no Node known yet: nothing runs"


def test_a_virtualip_is_parsed_once_per_generation_and_allocated_vrid() -> None:
    cache = ParseCache()
    tolerate = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    ok, bad = obj("ok", tolerations=tolerate), obj("bad", advertInterval="soon")
    for o, uid in ((ok, "u1"), (bad, "u2")):
        o["metadata"].update(uid=uid, generation=1)
    first = select([ok, bad], NODE, cache=cache)
    assert cache.parses == 2
    ok["status"] = {"nodes": [{"name": "n1", "state": "Master"}]}  # a status write: no parse
    again = select([ok, bad], NODE, cache=cache)
    assert cache.parses == 2 and again.run["ns/ok"] is first.run["ns/ok"]
    assert again.skipped["ns/bad"] == first.skipped["ns/bad"], "a parse error is remembered"
    ok["metadata"]["generation"] = 2
    ok["spec"]["priority"] = 120
    assert select([ok], NODE, cache=cache).run["ns/ok"].spec.priority == 120
    assert cache.parses == 3
    select([], NODE, cache=cache)
    select([ok, bad], NODE, cache=cache)
    assert cache.parses == 5, "the VirtualIPs gone from the list were forgotten"


def test_an_allocated_vrid_in_status_counts() -> None:
    o = obj("ok")
    del o["spec"]["virtualRouterID"]
    o["status"] = {"virtualRouterID": 9}
    vip = select([o], {"metadata": {"name": "n1"}}).run["ns/ok"]
    assert vip.spec.virtual_router_id == 9


# -- split brain judged by the holder's node Lease --------------------------------------------


def lease_api(cache: LeaseCache) -> FakeApi:
    """The fake API, with every Lease written also seen by the node's Lease watch (``cache``)."""
    kube = FakeApi()

    def watched(path: str, obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        cache.leases[obj["metadata"]["name"]] = {
            "metadata": {"name": obj["metadata"]["name"], "resourceVersion": "1"},
            "spec": {k: spec[k] for k in ("holderIdentity", "renewTime") if k in spec},
        }

    kube.after_write = watched
    return kube


def lease_writes(kube: FakeApi) -> list[tuple[str, str | None]]:
    """Each Lease write as (method, holder)."""
    return [(m, body["spec"].get("holderIdentity")) for m, _, body in kube.writes()]


class FakeBoard:
    def __init__(self) -> None:
        self.reports: list[tuple[str, bool, str]] = []

    def report(self, name: str, healthy: bool, on_failure: Any, detail: str = "") -> None:
        self.reports.append((name, healthy, detail))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def vip_lease(node: str = "b") -> tuple[VipLease, LeaseCache, FakeApi, Any, Clock]:
    cache = LeaseCache(None, "agents")  # type: ignore[arg-type]
    kube = lease_api(cache)
    node_lease = SimpleNamespace(last_renewed=0.0)
    la = VipLease(kube, "agents", "ns", "web", node, cache, node_lease)  # type: ignore[arg-type]
    clock = Clock()
    la.clock = clock
    runner = SimpleNamespace(
        name="ns/web", state=State.MASTER, health=FakeBoard(), last_heard={}, family=4
    )
    la.inst = runner  # type: ignore[assignment]
    la.holder_address = {"a": "192.0.2.1"}.get  # type: ignore[assignment]
    return la, cache, kube, runner, clock


def hold(kube: FakeApi, cache: LeaseCache, holder: str | None) -> None:
    name = vip_lease_name("ns", "web")
    lease = {
        "metadata": {"name": name, "resourceVersion": "5"},
        "spec": {"holderIdentity": holder, "renewTime": "2026-01-01T00:00:00.000000Z"},
    }
    cache.leases[name] = lease
    kube.objects[paths.lease("agents", name)] = lease


def renew_node(cache: LeaseCache, node: str, at: float) -> None:
    cache.leases[node_lease_name(node)] = {
        "metadata": {"name": node_lease_name(node)},
        "spec": {"holderIdentity": node, "renewTime": f"t={at}"},
    }


def test_a_master_creates_the_lease_once_and_never_renews_it() -> None:
    async def scenario() -> None:
        la, cache, kube, runner, clock = vip_lease()
        await la.round()
        assert lease_writes(kube) == [("POST", "b")]
        for i in range(1, 20):  # a minute of rounds holding it: no write at all
            clock.now = 2.0 * i
            renew_node(cache, "b", clock.now)
            await la.round()
        assert lease_writes(kube) == [("POST", "b")]
        raw = cache.get(vip_lease_name("ns", "web"))
        assert raw is not None
        runner.state = State.BACKUP
        await la.round()  # left master: given back
        assert lease_writes(kube)[-1] == ("PUT", None)

    asyncio.run(scenario())


def test_a_holder_whose_node_lease_renews_wins_the_split_brain() -> None:
    async def scenario() -> None:
        la, cache, kube, runner, clock = vip_lease()
        hold(kube, cache, "a")  # the VirtualIP Lease itself never changes
        for i in range(3):
            clock.now = 2.0 * i
            renew_node(cache, "a", clock.now)
            await la.round()
        lease = vip_lease_name("ns", "web")
        assert runner.health.reports == [
            (SPLIT_BRAIN_FAULT, False, f"a holds lease {lease} and renews it")
        ]
        assert lease_writes(kube) == []
        runner.state = State.FAULT
        clock.now = 6.0
        renew_node(cache, "a", clock.now)
        runner.last_heard["192.0.2.1"] = 6.0  # the holder's own adverts: healed
        await la.round()
        assert runner.health.reports[-1] == (SPLIT_BRAIN_FAULT, True, "hearing a again")

    asyncio.run(scenario())


def test_a_holder_whose_node_lease_stops_is_taken_over() -> None:
    async def scenario() -> None:
        la, cache, kube, runner, clock = vip_lease()
        hold(kube, cache, "a")
        renew_node(cache, "a", 0.0)
        for t in (0.0, 2.0, 4.0, 5.9):
            clock.now = t
            await la.round()
        assert lease_writes(kube) == [], "within the lease duration the holder may be alive"
        clock.now = 6.0
        await la.round()
        assert lease_writes(kube) == [("PUT", "b")]
        assert runner.health.reports == []

    asyncio.run(scenario())


def test_strict_fencing_judges_this_nodes_own_node_lease() -> None:
    la, _cache, kube, runner, clock = vip_lease()
    la.fencing = "strict"
    kube.last_ok = 100.0  # other calls succeeding do not count
    la.node_lease.last_renewed, clock.now = 0.0, 6.5  # type: ignore[attr-defined]
    la._check_api_fence()
    assert runner.health.reports == [
        (API_FENCE, False, "cut off from the API server for 6s (fencing: strict)")
    ]
    la.node_lease.last_renewed = 6.0  # type: ignore[attr-defined]
    la._check_api_fence()
    assert runner.health.reports[-1] == (API_FENCE, True, "API server reachable")


# -- status entries on change only ------------------------------------------------------------


def entry_bodies(kube: FakeApi) -> list[dict[str, Any]]:
    """The status applies that went through, in order."""
    return [body for _, _, body in kube.writes("PATCH")]


def test_entries_are_written_on_first_start_and_on_change_only() -> None:
    async def scenario() -> None:
        kube = FakeApi()
        current = {"entry": fault_entry("n1", "interface eth9 not found", "why", 0.0)}
        w = EntryWriter(kube, "ns", "web", "n1", lambda now: current["entry"])  # type: ignore[arg-type]
        w.start()
        await asyncio.sleep(20)
        assert len(entry_bodies(kube)) == 1, "nothing changed: one write in 20 s"
        assert entry_bodies(kube)[0]["status"]["nodes"][0]["faults"] == ["interface eth9 not found"]
        current["entry"] = NodeStatus(name="n1", state="Backup", effective_priority=100)
        kube.fail = 2
        w.changed()
        await asyncio.sleep(10)
        assert len(entry_bodies(kube)) == 2, "retried until written, then quiet"
        assert entry_bodies(kube)[1]["status"]["nodes"][0]["state"] == "Backup"
        await w.stop(withdraw=True)
        assert entry_bodies(kube)[-1]["status"]["nodes"] == []

    run(scenario)


def test_an_entry_writer_stopped_as_its_entry_changes_stops() -> None:
    """A stop in the same loop iteration as a change (an instance's shutdown transition, then
    its VirtualIP's glue stopping): with asyncio.wait_for on Python 3.11 the cancel was
    swallowed, the loop ran on and stop() never returned; on kind a node agent then applied
    no VirtualIP change again. Real event loop: the race is in asyncio itself."""

    async def scenario() -> None:
        kube = FakeApi()
        w = EntryWriter(kube, "ns", "web", "n1", lambda now: None)  # type: ignore[arg-type]
        w.start()
        await asyncio.sleep(0.01)  # waiting for a change
        w.changed()
        async with asyncio.timeout(3):
            await w.stop()

    asyncio.run(scenario())


def test_a_lease_shell_stopped_as_its_round_completes_stops() -> None:
    """The same race in the split-brain Lease loop: a round completing as stop() cancels it."""

    async def scenario() -> None:
        la, *_ = vip_lease()
        gate = asyncio.get_running_loop().create_future()

        async def round_() -> None:
            await gate

        la.round = round_  # type: ignore[method-assign]
        la.start()
        await asyncio.sleep(0.01)  # the loop is in a round
        gate.set_result(None)  # the round completes...
        stopping = asyncio.create_task(la.stop())  # ...as the stop cancels it
        async with asyncio.timeout(3):
            await stopping

    asyncio.run(scenario())


def test_an_entry_removed_by_someone_else_is_written_again_at_most_every_pause() -> None:
    """The operator prunes a node's entries while its Lease looks lapsed; the live agent
    (writing on change only) must put them back, without racing a repeated pruning."""

    async def scenario() -> None:
        kube = FakeApi()
        entry = NodeStatus(name="n1", state="Master", effective_priority=150)
        w = EntryWriter(kube, "ns", "web", "n1", lambda now: entry)  # type: ignore[arg-type]
        w.observed(False)  # before the first write: nothing of ours to miss
        w.start()
        await asyncio.sleep(3)
        assert len(entry_bodies(kube)) == 1
        w.observed(True)
        await asyncio.sleep(3)
        assert len(entry_bodies(kube)) == 1, "present: nothing to do"
        w.observed(False)  # pruned
        await asyncio.sleep(1.5)
        assert len(entry_bodies(kube)) == 2, "written again at once"
        for _ in range(8):  # pruned again and again, every half second
            w.observed(False)
            await asyncio.sleep(0.5)
        assert len(entry_bodies(kube)) == 2, "not again within the pause"
        await asyncio.sleep(REWRITE_PAUSE)
        assert len(entry_bodies(kube)) == 3, "then once more"
        w.observed(True)
        await asyncio.sleep(3 * REWRITE_PAUSE)
        assert len(entry_bodies(kube)) == 3, "back: quiet"
        await w.stop()

    run(scenario)


@pytest.mark.parametrize("state", ["Master", "Backup"])
def test_fault_entries_carry_no_instance_fields(state: str) -> None:
    entry = fault_entry("n1", "address 203.0.113.9 is on no connected network", "long", 1.0)
    assert entry.state == "Fault" and entry.effective_priority is None
    assert NodeStatus(name="n1", state=state).state == state  # type: ignore[arg-type]


# -- the node Lease: one PUT per renewal, in a thread of its own --------------------------------


def test_the_node_lease_is_renewed_with_one_put_and_read_again_only_after_a_conflict() -> None:
    async def scenario() -> None:
        kube = FakeApi()
        lease = NodeLease(kube, "agents", "n1")  # type: ignore[arg-type]
        path = paths.lease("agents", node_lease_name("n1"))
        try:
            await lease.renew_once()  # none yet: looked for, created
            await lease.renew_once()
            await lease.renew_once()
            assert methods(kube) == ["GET", "POST", "PUT", "PUT"]
            stored = kube.objects[path]
            assert stored["spec"]["holderIdentity"] == "n1"
            assert stored["spec"]["leaseDurationSeconds"] == NODE_LEASE_DURATION
            kube.version += 1  # written by someone else meanwhile
            stored["metadata"]["resourceVersion"] = str(kube.version)
            kube.calls.clear()
            await lease.renew_once()
            assert methods(kube) == ["PUT", "GET", "PUT"]
        finally:
            await lease.stop()

    asyncio.run(scenario())


def methods(kube: FakeApi) -> list[str]:
    return [m for m, _, _ in kube.calls]


# -- the first entry of a new instance ----------------------------------------------------------


def test_a_new_instance_writes_no_initialize_entry_a_stopping_one_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Initialize lasts until the instance starts: its first entry is Backup (or Master), one
    write less in the way of status.master. Later (a shutdown) Initialize is news and written."""
    monkeypatch.setattr(
        vipglue, "node_entry", lambda inst, now: NodeStatus(name="n1", state=inst.state.value)
    )

    async def scenario() -> None:
        vip = select([obj("web")], {"metadata": {"name": "n1"}}).run["ns/web"]
        glue = vipglue.VipGlue(
            FakeApi(), vip, "n1", agent_namespace="agents", watches=None,  # type: ignore[arg-type]
            leases=LeaseCache(None, "agents"), node_lease=SimpleNamespace(),  # type: ignore[arg-type]
            problem=lambda key: None, peers=lambda family: None, address_of=lambda n, f: None,
        )  # fmt: skip
        glue.inst = SimpleNamespace(state=State.INITIALIZE)  # type: ignore[assignment]
        assert glue._entry(0.0) is None
        glue.inst.state = State.BACKUP
        entry = glue._entry(0.0)
        assert entry is not None and entry.state == "Backup"
        glue.entries.writes = 1  # written
        glue.inst.state = State.INITIALIZE
        entry = glue._entry(0.0)
        assert entry is not None and entry.state == "Initialize"

    asyncio.run(scenario())
