"""The node agent's sharing and isolation: one watch per (kind, namespace), one VirtualIP's failure its own.

:class:`SharedWatches` is driven with a fake ``ListWatch`` (no thread, no
API); :class:`Agent` with a fake instance start that raises, as a bug or a
kernel refusal would, to show the exception stays with its VirtualIP.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from keepvip_agent.kube import shared
from keepvip_agent.kube.shared import PODS, SERVICES, SharedWatches
from keepvip_agent.runtime.agent import Agent
from keepvip_api import from_api_object
from keepvip_harness.runtime_rig import now, run


class FakeListWatch:
    made: list[FakeListWatch] = []

    def __init__(
        self, kube: Any, name: str, path: str, on_snapshot: Any, loop: Any, query: Any = None
    ) -> None:
        self.name, self.deliver, self.path, self.query = name, on_snapshot, path, query
        self.started = self.stopped = False
        FakeListWatch.made.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def watches(monkeypatch: pytest.MonkeyPatch) -> SharedWatches:
    FakeListWatch.made = []
    monkeypatch.setattr(shared, "ListWatch", FakeListWatch)
    return SharedWatches(None, "n1")  # type: ignore[arg-type]


def test_one_pod_watch_per_namespace_narrowed_to_this_node(watches: SharedWatches) -> None:
    async def scenario() -> None:
        got: dict[str, list[Any]] = {"a": [], "b": [], "late": []}
        ta = watches.subscribe(PODS, "ns1", got["a"].append)
        tb = watches.subscribe(PODS, "ns1", got["b"].append)
        watches.subscribe(SERVICES, "ns1", lambda _: None)
        assert len(FakeListWatch.made) == 2, "two VirtualIPs tracking ns1 share one pod watch"
        pods = FakeListWatch.made[0]
        assert pods.path == "/api/v1/namespaces/ns1/pods"
        assert pods.query == {"fieldSelector": "spec.nodeName=n1"}
        pods.deliver([{"metadata": {"name": "p"}}])
        assert len(got["a"]) == len(got["b"]) == 1
        watches.subscribe(PODS, "ns1", got["late"].append)
        await asyncio.sleep(0)
        assert got["late"] == [[{"metadata": {"name": "p"}}]], (
            "a late subscriber gets the last snapshot"
        )
        watches.unsubscribe(ta)
        watches.unsubscribe(tb)
        assert not pods.stopped, "still one subscriber"
        assert watches.watching() == [(PODS, "ns1"), (SERVICES, "ns1")]

    asyncio.run(scenario())


def test_the_last_unsubscribe_stops_the_watch(watches: SharedWatches) -> None:
    async def scenario() -> None:
        token = watches.subscribe(PODS, "ns2", lambda _: None)
        watches.unsubscribe(token)
        assert FakeListWatch.made[0].stopped and watches.watching() == []
        calls: list[Any] = []
        watches.subscribe(PODS, "ns2", calls.append)
        FakeListWatch.made[0].deliver([{"late": True}])  # the stopped watch's last delivery
        assert calls == []

    asyncio.run(scenario())


def vip(name: str) -> Any:
    return from_api_object(
        {
            "apiVersion": "keepvip.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"addresses": ["192.0.2.50/24"], "virtualRouterID": 7},
        }
    )


def test_an_exception_starting_one_virtualip_is_its_own_pending_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        agent = Agent("n1")
        started: list[str] = []

        async def start_instance(v: Any) -> None:
            if v.key == "ns/bad":
                raise OSError(22, "Invalid argument")
            started.append(v.key)

        monkeypatch.setattr(agent, "_start_instance", start_instance)
        agent.pending_blocks_ready = False
        await agent.apply([vip("bad"), vip("good")])
        assert started == ["ns/good"]
        assert agent.pending == {
            "ns/bad": "cannot apply the VirtualIP: [Errno 22] Invalid argument"
        }
        assert agent.ready, "the node agent stays ready"
        agent.pending_blocks_ready = True
        assert not agent.ready, "standalone and per-VirtualIP mode: not ready, as before"

    asyncio.run(scenario())


class _HandingOver:
    """An instance whose stop waits a whole advert interval for a successor that never comes
    (a master of a deleted VirtualIP), as InstanceRunner.stop does."""

    def __init__(self, key: str, port: SimpleNamespace) -> None:
        self.vip = vip(key)
        self.port = port
        port.instances.add(self)

    async def stop(self) -> None:
        await asyncio.sleep(1.0)
        self.port.instances.discard(self)


def test_virtualips_removed_together_stop_together() -> None:
    """150 masters of deleted VirtualIPs stop in about one advert interval, not 150; their
    port closes once, after the last one."""

    async def scenario() -> None:
        agent = Agent("n1")
        closed: list[str] = []
        port = SimpleNamespace(
            instances=set(), ifname="eth0", family=4, close=lambda: closed.append("eth0")
        )
        agent.ports[("eth0", 4)] = port  # type: ignore[assignment]
        for i in range(150):
            agent.instances[f"ns/v{i}"] = _HandingOver(f"v{i}", port)  # type: ignore[assignment]
        started = now()
        await agent.apply([])
        assert agent.instances == {} and agent.ports == {}
        assert now() - started < 1.5
        assert closed, "the port closed when its last instance left"

    run(scenario)
