"""Split-brain arbitration and API fencing: every rule of the arbiter on injected time.

The core (:class:`Arbiter`) is driven with explicit monotonic times and Lease
readings; renewTimes are opaque tokens (it never reads them as times). Then
two cores share one in-memory Lease through a partition, and the shell
(:class:`LeaseArbiter`) runs rounds against a fake API and a fake runner, to
show it applies the decisions and nothing else.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import ApiError
from keepvip_agent.kube.arbiter import (
    ApiFence,
    ApiReachable,
    Arbiter,
    Create,
    LeaseView,
    Rejoin,
    Release,
    Renew,
    StepDown,
    TakeOver,
)
from keepvip_agent.kube.lease import API_FENCE, LeaseArbiter
from keepvip_agent.vrrp.router import State
from keepvip_api.names import SPLIT_BRAIN_FAULT
from keepvip_api.times import micro_time
from keepvip_harness.fakeagentapi import FakeApi

LEASE = "keepvip-web"
RENEW = 2.0
DURATION = 6.0  # 3 * renew


def arbiter(node: str = "b", fencing: str = "none") -> Arbiter:
    a = Arbiter(node, LEASE, renew=RENEW)
    a.fencing = fencing
    return a


def held(holder: str | None, renew: object = 0) -> LeaseView:
    return LeaseView(holder, renew)


def fenced_for_a(b: Arbiter, start: float = 0.0) -> float:
    """Make ``b`` (master) step down for a live holder ``a``; the time it did."""
    b.round(start, True, held("a", 0))
    b.round(start + 2, True, held("a", 1))
    assert isinstance(b.round(start + 4, True, held("a", 2)), StepDown)
    assert b.fenced == "a"
    return start + 4


# -- the Lease round -------------------------------------------------------------------------


def test_a_master_creates_a_missing_lease_and_a_backup_does_not() -> None:
    assert arbiter().round(0.0, True, None) == Create(6)
    assert arbiter().round(0.0, False, None) is None


def test_a_master_renews_the_lease_it_holds() -> None:
    b = arbiter()
    assert b.round(0.0, True, held("b", 0)) == Renew()
    assert b.round(2.0, True, held("b", 1)) == Renew()
    assert b.round(100.0, True, held("b", 1)) == Renew()  # its own: never "expired"


@pytest.mark.parametrize("nobody", [None, ""])
def test_a_released_lease_is_taken_over_at_once(nobody: str | None) -> None:
    assert arbiter().round(0.0, True, held(nobody)) == TakeOver(nobody, 6)


def test_a_holder_not_seen_renewing_for_the_lease_duration_is_taken_over() -> None:
    b = arbiter()
    assert b.round(10.0, True, held("a", 0)) is None  # first sight: the clock starts
    assert b.round(15.9, True, held("a", 0)) is None
    assert b.round(16.0, True, held("a", 0)) == TakeOver("a", 6)
    # A renewal seen restarts the clock.
    b = arbiter()
    b.round(10.0, False, held("a", 0))
    b.round(14.0, False, held("a", 1))
    assert b.round(19.9, True, held("a", 1)) is None
    assert b.round(20.0, True, held("a", 1)) == TakeOver("a", 6)


def test_the_holders_clock_is_never_read() -> None:
    """renewTime is compared for change only: far in the past, or going back, says nothing."""
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    b = arbiter()
    assert b.round(0.0, True, held("a", long_ago)) is None
    assert b.round(5.9, True, held("a", long_ago)) is None
    # A holder whose clock stepped back still renews: a change is a renewal.
    b.round(5.9, True, held("a", long_ago - timedelta(days=1)))
    assert b.round(11.8, True, held("a", long_ago - timedelta(days=1))) is None


def test_a_master_steps_down_after_seeing_the_holder_renew_twice() -> None:
    b = arbiter()
    assert b.round(0.0, True, held("a", 0)) is None  # first sight is no renewal
    assert b.round(2.0, True, held("a", 1)) is None  # one renewal may have been in flight
    out = b.round(4.0, True, held("a", 2))
    assert out == StepDown("a", f"a holds lease {LEASE} and renews it")
    assert (b.fenced, b.fenced_at) == ("a", 4.0)


def test_only_renewals_seen_since_becoming_master_count_towards_stepping_down() -> None:
    b = arbiter()
    b.round(0.0, False, held("a", 0))
    b.round(2.0, False, held("a", 1))
    b.round(4.0, False, held("a", 2))
    assert b.round(6.0, True, held("a", 3)) is None  # the first renewal seen as master
    assert b.round(8.0, False, held("a", 4)) is None  # backup again: the count starts over
    assert b.round(10.0, True, held("a", 5)) is None
    assert b.round(12.0, True, held("a", 6)) == StepDown(
        "a", f"a holds lease {LEASE} and renews it"
    )


def test_a_new_holder_starts_the_count_again() -> None:
    b = arbiter()
    b.round(0.0, True, held("a", 0))
    b.round(2.0, True, held("a", 1))
    assert b.round(4.0, True, held("c", 2)) is None  # c was never seen renewing
    assert b.round(6.0, True, held("c", 3)) is None
    assert isinstance(b.round(8.0, True, held("c", 4)), StepDown)


def test_a_master_steps_down_only_once() -> None:
    b = arbiter()
    t = fenced_for_a(b)
    assert b.round(t + 2, True, held("a", 3)) is None  # still master a moment: no second report
    assert b.fenced_at == t


def test_a_backup_gives_back_a_lease_it_still_holds() -> None:
    b = arbiter()
    assert b.round(0.0, False, held("b", 0)) == Release()
    assert b.round(0.0, False, held("a", 0)) is None
    assert b.round(0.0, False, held(None)) is None


def test_leaving_master_releases_only_our_own_lease() -> None:
    b = arbiter()
    assert b.releases(held("b", 0))
    assert not b.releases(held("a", 0))
    assert not b.releases(held(None))
    assert not b.releases(None)


# -- the split-brain fence lifts --------------------------------------------------------------


def test_the_fence_holds_while_the_holder_renews_unheard() -> None:
    b = arbiter()
    t = fenced_for_a(b)
    assert b.heal(-math.inf) is None
    assert b.heal(t - 1) is None, "advertisements heard before the step-down prove nothing"
    for i in range(1, 10):  # the holder renews every round, as backups we stay fenced
        b.round(t + 2 * i, False, held("a", 2 + i))
        assert b.heal(t - 1) is None
    assert b.fenced == "a"


def test_the_fence_lifts_on_hearing_the_holders_advertisements_again() -> None:
    b = arbiter()
    t = fenced_for_a(b)
    b.round(t + 2, False, held("a", 3))
    assert b.heal(t + 1) == Rejoin("a", "hearing a again")
    assert b.fenced is None
    assert b.heal(t + 1) is None  # once


def test_the_fence_lifts_when_the_holder_stops_renewing() -> None:
    b = arbiter()
    t = fenced_for_a(b)
    b.round(t + 5.9, False, held("a", 2))
    assert b.heal(-math.inf) is None
    b.round(t + 6.0, False, held("a", 2))
    assert b.heal(-math.inf) == Rejoin("a", "a stopped renewing")
    assert b.fenced is None


def test_the_fence_lifts_when_the_lease_is_gone() -> None:
    b = arbiter()
    t = fenced_for_a(b)
    assert b.round(t + 2, False, None) is None
    assert b.heal(-math.inf) == Rejoin("a", "a stopped renewing")


def test_the_fence_lifts_when_another_node_holds_the_lease() -> None:
    """A holder not seen renewing yet is not proven alive: the one we stepped down for is gone."""
    b = arbiter()
    t = fenced_for_a(b)
    b.round(t + 2, False, held("c", 9))
    assert b.heal(-math.inf) == Rejoin("a", "a stopped renewing")


# -- API fencing -----------------------------------------------------------------------------


def test_strict_fencing_drops_a_master_cut_off_longer_than_the_lease() -> None:
    b = arbiter(fencing="strict")
    assert b.check_api(106.0, 100.0, True) is None  # exactly the lease duration: still serving
    assert b.check_api(106.5, 100.0, False) is None  # a backup has no VIP to drop
    out = b.check_api(106.6, 100.0, True)
    assert out == ApiFence("cut off from the API server for 7s (fencing: strict)")
    assert b.api_fenced
    assert b.check_api(120.0, 100.0, True) is None  # once


def test_fencing_none_keeps_serving_without_the_api() -> None:
    b = arbiter(fencing="none")
    assert b.check_api(1000.0, 0.0, True) is None
    assert not b.api_fenced


def test_the_api_fence_lifts_once_the_api_answered_within_one_and_a_half_renewals() -> None:
    b = arbiter(fencing="strict")
    assert isinstance(b.check_api(10.0, 0.0, True), ApiFence)
    assert b.check_api(13.1, 10.0, False) is None  # answered 3.1 s ago: not yet
    assert b.check_api(13.0, 10.0, False) == ApiReachable()
    assert not b.api_fenced
    assert b.check_api(13.0, 10.0, False) is None  # once


def test_the_api_fence_lifts_even_if_fencing_was_turned_off_meanwhile() -> None:
    b = arbiter(fencing="strict")
    assert isinstance(b.check_api(10.0, 0.0, True), ApiFence)
    b.fencing = "none"
    assert b.check_api(20.0, 0.0, False) is None  # still cut off: the fence stays
    assert b.check_api(20.0, 19.0, False) == ApiReachable()


# -- two nodes, one Lease, a partition of the node network --------------------------------------


def test_a_partition_is_settled_for_the_live_holder_within_two_renewals() -> None:
    """docs/concepts.md: the new master steps out within a couple of renew intervals."""
    lease: dict[str, Any] = {}
    a, b = arbiter("a"), arbiter("b")
    master = {"a": True, "b": False}
    heard_a = 0.0  # when b last heard a's advertisements

    def step(core: Arbiter, now: float) -> object:
        view = LeaseView(lease["holder"], lease["renew"]) if lease else None
        out = core.round(now, master[core.node], view)
        if isinstance(out, Create | TakeOver):
            lease.update(holder=core.node, renew=now)
        elif isinstance(out, Renew):
            lease["renew"] = now
        elif isinstance(out, Release):
            lease.update(holder=None, renew=None)
        elif isinstance(out, StepDown):
            master[core.node] = False
        return out

    t = 0.0
    for _ in range(5):  # a master, b backup: a holds and renews
        step(a, t)
        step(b, t)
        t += RENEW
    assert lease["holder"] == "a"
    master["b"] = True  # the partition: b stops hearing a and takes over the VIP at once
    cut = t
    while master["b"]:
        assert t - cut <= 2 * RENEW, "b still master two renewals after the partition"
        step(a, t)
        step(b, t)
        assert b.heal(heard_a) is None
        t += RENEW
    assert lease["holder"] == "a" and b.fenced == "a"
    # The partition heals: b hears a again and rejoins (as backup).
    heard_a = t
    step(a, t)
    step(b, t)
    assert b.heal(heard_a) == Rejoin("a", "hearing a again")


# -- the shell: API calls and the runner, nothing decided ---------------------------------------


PATH = paths.lease("default", LEASE)


def spec(kube: FakeApi, field: str) -> Any:
    return kube.objects[PATH]["spec"].get(field)


class FakeBoard:
    def __init__(self) -> None:
        self.reports: list[tuple[str, bool, str]] = []

    def report(self, name: str, healthy: bool, on_failure: Any, detail: str = "") -> None:
        assert on_failure.action == "fault"
        self.reports.append((name, healthy, detail))


class FakeRunner:
    """The four things the shell reads or calls on the runner."""

    def __init__(self) -> None:
        self.name = "default/web"
        self.state = State.MASTER
        self.health = FakeBoard()
        self.last_heard: dict[str, float] = {}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def shell(node: str = "b") -> tuple[LeaseArbiter, FakeApi, FakeRunner, Clock]:
    kube, runner, clock = FakeApi(), FakeRunner(), Clock()
    la = LeaseArbiter(kube, "default", "web", node, clock=clock)  # type: ignore[arg-type]
    la.inst = runner  # type: ignore[assignment]
    la.holder_address = {"a": "192.0.2.1"}.get  # type: ignore[assignment]
    return la, kube, runner, clock


def stamp(holder: str | None, at: float) -> dict[str, Any]:
    t = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=at)
    spec: dict[str, Any] = {"renewTime": micro_time(t), "leaseTransitions": 3}
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": LEASE, "namespace": "default"}, "spec": spec}


def test_the_shell_writes_what_the_arbiter_decides() -> None:
    async def scenario() -> None:
        la, kube, runner, clock = shell()
        clock.now = 1.0
        await la.round()  # master, no Lease: created, held by us
        assert [(m, p) for m, p, _ in kube.calls] == [
            ("GET", PATH),
            ("POST", paths.leases("default")),
        ]
        assert (spec(kube, "holderIdentity"), spec(kube, "leaseDurationSeconds")) == ("b", 6)
        assert kube.last_ok == 1.0, "a 404 is an answer from the API"
        kube.objects[PATH] = stamp("a", 0)  # someone else's, never renewed
        await la.round()
        clock.now = 6.9
        await la.round()
        assert spec(kube, "holderIdentity") == "a"
        clock.now = 7.0
        await la.round()  # not renewed for the lease duration: ours now
        assert spec(kube, "holderIdentity") == "b"
        assert spec(kube, "leaseTransitions") == 4
        runner.state = State.BACKUP
        await la.round()  # no longer master: given back
        assert spec(kube, "holderIdentity") is None
        assert runner.health.reports == []

    asyncio.run(scenario())


def test_the_shell_reports_the_step_down_and_the_rejoin_to_the_runner() -> None:
    async def scenario() -> None:
        la, kube, runner, clock = shell()
        for i in range(3):
            clock.now = 2.0 * i
            kube.objects[PATH] = stamp("a", clock.now)
            await la.round()
        reason = f"a holds lease {LEASE} and renews it"
        assert runner.health.reports == [(SPLIT_BRAIN_FAULT, False, reason)]
        runner.state = State.FAULT
        clock.now = 6.0
        kube.objects[PATH] = stamp("a", clock.now)
        runner.last_heard["192.0.2.1"] = 3.9  # before the step-down
        await la.round()
        assert len(runner.health.reports) == 1
        runner.last_heard["192.0.2.1"] = 6.0  # the holder's own adverts: healed
        await la.round()
        assert runner.health.reports[-1] == (SPLIT_BRAIN_FAULT, True, "hearing a again")

    asyncio.run(scenario())


def test_a_failed_write_ends_the_round_before_the_fence_is_judged() -> None:
    async def scenario() -> None:
        la, kube, runner, clock = shell()
        for i in range(3):
            clock.now = 2.0 * i
            kube.objects[PATH] = stamp("a", clock.now)
            await la.round()
        assert la.core.fenced == "a"
        # The Lease comes back held by us (a backup now): giving it back fails.
        runner.state = State.FAULT
        kube.objects[PATH] = stamp("b", 8.0)
        kube.fail = 1
        with pytest.raises(ApiError):
            await la.round()
        assert la.core.fenced == "a" and len(runner.health.reports) == 1
        await la.round()
        assert runner.health.reports[-1] == (SPLIT_BRAIN_FAULT, True, "a stopped renewing")

    asyncio.run(scenario())


def test_the_shell_reports_strict_fencing_on_its_own_clock() -> None:
    la, kube, runner, clock = shell()
    la.fencing = "strict"
    kube.last_ok, clock.now = 0.0, 6.7
    la._check_api_fence()
    assert runner.health.reports == [
        (API_FENCE, False, "cut off from the API server for 7s (fencing: strict)")
    ]
    kube.last_ok = 6.0
    la._check_api_fence()
    assert runner.health.reports[-1] == (API_FENCE, True, "API server reachable")
