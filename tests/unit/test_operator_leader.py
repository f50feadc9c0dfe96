"""Leader election: client-go's rules on injected time, and two electors over one in-memory Lease.

The core (:class:`Election`) is driven with explicit monotonic and wall
times. The electors run their real loops against a fake API (resource
versions, 409 on a stale write, an outage switch) under a fake clock whose
sleep advances time, so a 15 s lease takes no real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepvip_operator.kube import ApiError
from keepvip_operator.leader import Election, LeaderElector, LeaseRecord, LeaseStore, Timing
from keepvip_operator.settings import parse

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TIMING = Timing()  # 15, 10, 2: client-go's defaults


def wall(t: float) -> datetime:
    return T0 + timedelta(seconds=t)


def held_by(holder: str, rv: str = "1", *, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder, duration, T0, T0, 3, rv)


# -- the core ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 0), (15, 2, 2)])
def test_timing_must_leave_room(lease: int, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period"):
        Timing(lease, renew, retry)


def test_a_missing_lease_is_created_and_then_renewed_as_ours() -> None:
    e = Election("a", TIMING)
    created = e.plan(None, 0.0, wall(0))
    assert created == LeaseRecord("a", 15, wall(0), wall(0), 0, None)
    assert not e.leading
    e.written(replace(created, resource_version="1"), 0.0)
    assert e.leading
    renewal = e.plan(replace(created, resource_version="1"), 2.0, wall(2))
    assert renewal == LeaseRecord("a", 15, wall(0), wall(2), 0, "1")  # acquireTime kept


def test_a_held_lease_is_taken_over_only_a_lease_duration_after_it_last_changed() -> None:
    e = Election("b", TIMING)
    assert e.plan(held_by("a", "1"), 100.0, wall(0)) is None
    # The holder renews (new resourceVersion): the clock starts again.
    assert e.plan(held_by("a", "2"), 110.0, wall(10)) is None
    assert e.plan(held_by("a", "2"), 124.9, wall(24.9)) is None
    taken = e.plan(held_by("a", "2"), 125.0, wall(25))
    assert taken == LeaseRecord("b", 15, wall(25), wall(25), 4, "2")  # one more transition
    # Expiry uses the holder's own duration, not ours.
    e2 = Election("b", TIMING)
    assert e2.plan(held_by("a", "7", duration=40), 0.0, wall(0)) is None
    assert e2.plan(held_by("a", "7", duration=40), 39.0, wall(39)) is None
    assert e2.plan(held_by("a", "7", duration=40), 40.0, wall(40)) is not None


def test_the_holders_clock_is_never_compared_with_ours() -> None:
    # A renewTime far in the past (the holder's clock is behind) does not make it expired.
    e = Election("b", TIMING)
    stale_clock = LeaseRecord("a", 15, T0 - timedelta(days=1), T0 - timedelta(days=1), 0, "5")
    assert e.plan(stale_clock, 0.0, wall(0)) is None
    assert e.plan(stale_clock, 14.0, wall(14)) is None


def test_a_released_lease_is_taken_at_once() -> None:
    e = Election("b", TIMING)
    released = LeaseRecord("", 1, T0, T0, 3, "9")
    assert e.plan(released, 0.0, wall(0)) == LeaseRecord("b", 15, wall(0), wall(0), 4, "9")


def test_the_leader_loses_at_the_renew_deadline() -> None:
    e = Election("a", TIMING)
    e.written(held_by("a", "1"), 0.0)
    assert e.lost(10.0) is None
    why = e.lost(10.1)
    assert why is not None and "renew deadline" in why
    assert not e.leading
    assert e.plan(held_by("a", "1"), 10.2, wall(10)) is None  # and never tries again


def test_the_leader_loses_as_soon_as_another_holder_appears() -> None:
    e = Election("a", TIMING)
    e.written(held_by("a", "1"), 0.0)
    assert e.plan(held_by("intruder", "2"), 1.0, wall(1)) is None
    assert e.lost(1.0) == "the Lease is now held by 'intruder'"
    assert e.release(wall(1)) is None  # not ours to release


def test_release_hands_over_only_what_we_hold() -> None:
    e = Election("a", TIMING)
    assert e.release(wall(0)) is None  # never led
    e.written(held_by("a", "4"), 0.0)
    out = e.release(wall(5))
    assert out == LeaseRecord("", 1, T0, wall(5), 3, "4")


def test_lease_json_round_trip() -> None:
    record = LeaseRecord("pod-1", 15, wall(0.25), wall(1.5), 2, "77")
    obj = {"metadata": {"resourceVersion": "77"}, "spec": record.spec()}
    assert obj["spec"]["renewTime"] == "2025-01-01T00:00:01.500000Z"  # MicroTime
    assert LeaseRecord.from_lease(obj) == record
    assert LeaseRecord.from_lease({"metadata": {"resourceVersion": "1"}, "spec": {}}) == (
        LeaseRecord(resource_version="1")
    )


# -- two electors over one fake API -----------------------------------------------------------


class FakeClock:
    """Monotonic time that moves only in :meth:`run_for`, waking sleepers in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return wall(self.now)

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), woken))
        await woken

    async def run_for(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        end = self.now + seconds
        await self._settle()
        while self._sleepers and self._sleepers[0][0] <= end and not until():
            at, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not woken.done():
                woken.set_result(None)
            await self._settle()
        if not until():
            self.now = end

    @staticmethod
    async def _settle() -> None:
        for _ in range(50):  # let every woken task run up to its next sleep
            await asyncio.sleep(0)


class Inline(Executor):
    """Runs each call at once in the loop's thread: no real thread, no real time."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class FakeApi:
    """One Lease with resource versions; ``down`` makes every request fail as unreachable."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.down = False
        self.writes: list[str] = []

    def request(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        if self.down:
            raise ApiError(0, f"{method} {url}: connection refused")
        if method == "GET":
            if self.obj is None:
                raise ApiError(404, "not found", "NotFound")
            return self.obj
        if method == "POST" and self.obj is not None:
            raise ApiError(409, "already exists", "AlreadyExists")
        if method == "PUT":
            assert self.obj is not None
            if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "the object has been modified", "Conflict")
        self.rv += 1
        self.obj = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}
        self.writes.append(body["spec"]["holderIdentity"])
        return self.obj


def elector(api: FakeApi, identity: str, clock: FakeClock) -> LeaderElector:
    store = LeaseStore(api, "keepvip-system", "keepvip-operator")  # type: ignore[arg-type]
    return LeaderElector(
        store,
        Election(identity, TIMING),
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
        executor=Inline(),
    )


def test_one_leads_the_other_waits_and_takes_over_a_lease_duration_after_a_crash() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), FakeClock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        await a.acquire()  # no Lease yet: created at once
        assert a.election.leading and api.obj is not None
        assert api.obj["spec"]["holderIdentity"] == "a"
        holding = asyncio.create_task(a.hold())
        waiting = asyncio.create_task(b.acquire())
        await clock.run_for(60.0)  # a renews every 2 s; b never gets it
        assert not waiting.done() and not b.election.leading
        assert set(api.writes) == {"a"} and len(api.writes) >= 30
        # a dies: no more renewals. b takes over a lease duration after it saw the last one.
        last_renewal = a.election.renewed_at
        assert last_renewal is not None
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await clock.run_for(60.0, until=waiting.done)
        assert waiting.done(), "b did not take over within a minute"
        # At most a retry period to see the last renewal, and one more to see it expire.
        took = clock.now - last_renewal
        assert TIMING.lease_duration <= took <= TIMING.lease_duration + 2 * TIMING.retry_period
        assert api.obj["spec"]["holderIdentity"] == "b"
        assert api.obj["spec"]["leaseTransitions"] == 1

    asyncio.run(scenario())


def test_graceful_release_lets_the_standby_take_over_within_a_retry_period() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), FakeClock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        await a.acquire()
        holding = asyncio.create_task(a.hold())
        waiting = asyncio.create_task(b.acquire())
        await clock.run_for(5.0)
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        assert await a.release()
        assert api.obj is not None and api.obj["spec"]["leaseDurationSeconds"] == 1
        assert api.obj["spec"]["holderIdentity"] == ""
        released = clock.now
        await clock.run_for(60.0, until=waiting.done)
        assert waiting.done()
        assert clock.now - released <= TIMING.retry_period
        assert b.election.leading and api.obj["spec"]["holderIdentity"] == "b"
        assert not await a.release()  # no longer ours

    asyncio.run(scenario())


def test_a_leader_cut_off_from_the_api_gives_up_at_the_renew_deadline() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), FakeClock()
        a = elector(api, "a", clock)
        await a.acquire()
        holding = asyncio.create_task(a.hold())
        await clock.run_for(4.0)
        last_renewal = a.election.renewed_at
        assert last_renewal is not None
        api.down = True
        await clock.run_for(60.0, until=holding.done)
        assert holding.done(), "still leading a minute after the API went away"
        assert "renew deadline" in await holding
        assert TIMING.renew_deadline < clock.now - last_renewal
        assert clock.now - last_renewal <= TIMING.renew_deadline + TIMING.retry_period
        api.down = False
        assert not await a.release()  # lost: nothing to release

    asyncio.run(scenario())


def test_a_leader_gives_up_at_once_when_another_holder_appears() -> None:
    async def scenario() -> None:
        api, clock = FakeApi(), FakeClock()
        a = elector(api, "a", clock)
        await a.acquire()
        holding = asyncio.create_task(a.hold())
        await clock.run_for(3.0)
        api.obj = {
            "metadata": {"resourceVersion": "99"},
            "spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 15},
        }
        stolen = clock.now
        await clock.run_for(60.0, until=holding.done)
        assert holding.done(), "still leading a minute after another holder appeared"
        assert await holding == "the Lease is now held by 'intruder'"
        assert clock.now - stolen <= TIMING.retry_period

    asyncio.run(scenario())


def test_replace_keeps_what_others_put_on_the_lease() -> None:
    api = FakeApi()
    store = LeaseStore(api, "ns", "keepvip-operator")  # type: ignore[arg-type]
    api.obj = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "keepvip-operator", "resourceVersion": "5", "labels": {"x": "y"}},
        "spec": {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "strategy": "OldestEmulationVersion",
        },
    }
    api.rv = 5
    current = store.get()
    assert current is not None
    written = store.write(replace(current, holder="a", duration=15))
    assert written is not None and written.holder == "a"
    assert api.obj["metadata"]["labels"] == {"x": "y"}
    assert api.obj["spec"]["strategy"] == "OldestEmulationVersion"
    # A stale write loses (409), it does not overwrite.
    assert store.write(replace(current, holder="b")) is None
    assert api.obj["spec"]["holderIdentity"] == "a"


# -- settings, at the process edge ------------------------------------------------------------


def test_on_by_default_in_a_cluster_with_the_pods_name_and_namespace() -> None:
    assert parse([], environ={}).leader_election is False  # a laptop, or embedded
    pod = {"KUBERNETES_SERVICE_HOST": "192.0.2.10", "POD_NAME": "kv-7d9-x", "POD_NAMESPACE": "kv"}
    s = parse([], environ=pod)
    assert s.leader_election is True
    assert (s.leader_election_namespace, s.leader_election_identity) == ("kv", "kv-7d9-x")
    assert s.leader_election_lease_name == "keepvip-operator"
    assert Timing(
        s.leader_election_lease_duration,
        s.leader_election_renew_deadline,
        s.leader_election_retry_period,
    ) == Timing(15, 10.0, 2.0)
    off = parse([], environ={**pod, "KEEPVIP_LEADER_ELECTION": "false"})
    assert off.leader_election is False
    given = parse(
        ["--leader-election-identity", "me", "--leader-election-retry-period", "0.5"],
        environ={**pod, "KEEPVIP_LEADER_ELECTION_NAMESPACE": "ops"},
    )
    assert (given.leader_election_identity, given.leader_election_namespace) == ("me", "ops")
    assert given.leader_election_retry_period == 0.5


@pytest.mark.parametrize(
    "env",
    [
        {"KEEPVIP_LEADER_ELECTION": "maybe", "POD_NAMESPACE": "kv"},
        {"KEEPVIP_LEADER_ELECTION": "true"},  # no namespace to put the Lease in
        {
            "KEEPVIP_LEADER_ELECTION": "true",
            "POD_NAMESPACE": "kv",
            "KEEPVIP_LEADER_ELECTION_RENEW_DEADLINE": "15",
        },
        {
            "KEEPVIP_LEADER_ELECTION": "1",
            "POD_NAMESPACE": "kv",
            "KEEPVIP_LEADER_ELECTION_LEASE_DURATION": "1.5",
        },
    ],
    ids=["not-a-bool", "no-namespace", "deadline-not-below-duration", "duration-not-int"],
)
def test_bad_leader_election_settings_stop_at_the_edge(env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse([], environ=env)
    assert exit_.value.code == 2
