"""A backup's repeated advertisement: the short path must change exactly what the full rules would.

``advertisement_repeated`` handles an advertisement identical (the same
object) to the last accepted one by resetting the master-down timer alone.
The property test drives two routers with the same random events, one taking
the short path whenever it says it may, one always running the full rules,
and compares everything the machine holds after every step.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from hypothesis import example, given, settings
from hypothesis import strategies as st

from keepvip_agent.vrrp.packet import AUTH_NONE, Advertisement
from keepvip_agent.vrrp.router import RouterConfig, State, VirtualRouter

OURS = IPv4Address("192.0.2.5")
HIGHER = IPv4Address("192.0.2.9")
LOWER = IPv4Address("192.0.2.2")
VIP = IPv4Address("192.0.2.100")


def advert(priority: int, interval_cs: int = 100) -> Advertisement:
    return Advertisement(3, 51, priority, interval_cs, (VIP,), AUTH_NONE, b"")


def backup(priority: int = 100, preempt: bool = False, delay: float = 0.0) -> VirtualRouter:
    config = RouterConfig(51, 3, priority, 100, OURS, preempt, delay, addresses=(VIP,))
    r = VirtualRouter(config)
    r.startup(0.0)
    assert r.state is State.BACKUP
    return r


def test_a_repeat_from_the_master_only_resets_the_timer() -> None:
    r = backup()
    adv = advert(150)
    r.advertisement_received(adv, HIGHER, 1.0)
    assert r.advertisement_repeated(adv, HIGHER, 2.0)
    assert r.master_down_at == 2.0 + r.master_down_interval()
    # Not the same object, or not the same source: the full rules.
    assert not r.advertisement_repeated(advert(150), HIGHER, 2.5)
    assert not r.advertisement_repeated(adv, IPv4Address("192.0.2.9"), 2.5)


def test_anything_that_could_change_the_outcome_ends_the_short_path() -> None:
    adv = advert(150)
    r = backup()
    r.advertisement_received(adv, HIGHER, 1.0)
    r.set_priority(200, 1.1)  # now above the master: the rules may preempt
    assert not r.advertisement_repeated(adv, HIGHER, 1.2)

    r = backup()
    r.advertisement_received(adv, HIGHER, 1.0)
    r.config = replace(r.config, preempt=True)
    assert not r.advertisement_repeated(adv, HIGHER, 1.2)

    r = backup()
    r.advertisement_received(adv, HIGHER, 1.0)
    r.timer_expired(10.0)  # master down: a transition
    assert r.state is State.MASTER
    assert not r.advertisement_repeated(adv, HIGHER, 10.1)


def test_a_lower_master_with_preempt_never_takes_the_short_path() -> None:
    # preempt_delay counts from the first such advertisement: each one matters.
    r = backup(preempt=True)
    adv = advert(50)
    r.config = replace(r.config, preempt_delay=5.0)
    r.advertisement_received(adv, LOWER, 1.0)
    assert not r.advertisement_repeated(adv, LOWER, 2.0)


def test_a_demoted_master_never_takes_the_short_path() -> None:
    r = backup()
    r.advertisement_received(advert(150), HIGHER, 1.0)
    demoted = advert(80)  # below its best and below ours: discarded, the timer runs out
    r.advertisement_received(demoted, HIGHER, 2.0)
    assert not r.advertisement_repeated(demoted, HIGHER, 3.0)


ADVERTS = [advert(0), advert(50), advert(150), advert(150, 200)]
SOURCES = [HIGHER, LOWER]
EVENT = st.one_of(
    st.tuples(st.just("advert"), st.integers(0, len(ADVERTS) - 1), st.integers(0, 1)),
    st.tuples(st.just("priority"), st.sampled_from([100, 200]), st.just(0)),
    st.tuples(st.just("preempt"), st.booleans(), st.just(0)),
    st.tuples(st.just("fault"), st.booleans(), st.just(0)),
    st.tuples(st.just("timer"), st.just(0), st.just(0)),
)


def snapshot(r: VirtualRouter) -> tuple[object, ...]:
    return (
        r.state, r.priority, r.master_adver_interval_cs, r.master_down_at, r.adver_at,
        r.master_address, r.faults, r._master_best, r._lower_master_since, r._announced_at,
    )  # fmt: skip


HEAR_150, HEAR_50 = ("advert", 2, 0), ("advert", 1, 1)


@settings(max_examples=500, deadline=None)
# The sequences that matter, for certain (random ones rarely repeat an advert around a change):
@example([(HEAR_150, 0.5), (("priority", 200, 0), 0.5), (HEAR_150, 0.5)], False)
@example([(HEAR_150, 0.5), (("priority", 200, 0), 0.5), (HEAR_150, 0.5)], True)
@example([(HEAR_50, 0.5), (HEAR_50, 0.6), (HEAR_50, 0.6)], True)
@example([(HEAR_150, 0.5), (("advert", 1, 0), 0.5), (("advert", 1, 0), 0.5)], False)
@example(
    [(HEAR_150, 0.5), (("preempt", True, 0), 0.1), (("priority", 200, 0), 0.1), (HEAR_150, 0.5)],
    False,
)
@given(
    st.lists(st.tuples(EVENT, st.floats(0.0, 2.0)), max_size=40),
    st.booleans(),
)
def test_the_short_path_changes_exactly_what_the_full_rules_change(
    events: list[tuple[tuple[str, object, int], float]], preempt: bool
) -> None:
    # preempt_delay 1 s: a lower master's adverts count towards it one by one.
    short, full = backup(preempt=preempt, delay=1.0), backup(preempt=preempt, delay=1.0)
    now = 0.0
    for (kind, arg, which), dt in events:
        now += dt
        outs = []
        for r, fast in ((short, True), (full, False)):
            if kind == "advert":
                adv, src = ADVERTS[int(arg)], SOURCES[which]  # type: ignore[call-overload]
                if fast and r.advertisement_repeated(adv, src, now):
                    outs.append([])
                else:
                    outs.append(r.advertisement_received(adv, src, now))
            elif kind == "priority":
                outs.append(r.set_priority(int(arg), now))  # type: ignore[call-overload]
            elif kind == "preempt":
                r.config = replace(r.config, preempt=bool(arg))
                outs.append([])
            elif kind == "fault":
                outs.append(r.set_fault("f", bool(arg), now))
            else:
                deadline = r.deadline
                outs.append(r.timer_expired(deadline if deadline is not None else now))
        assert outs[0] == outs[1]
        assert snapshot(short) == snapshot(full)
