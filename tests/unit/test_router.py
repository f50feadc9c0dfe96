"""The VRRP state machine under fake time: every RFC 9568 6.4 transition, and a small wire.

Time is a plain float handed to every call; nothing sleeps and nothing runs a
loop. Deadlines are compared exactly: with 1 s intervals and the priorities
used here every skew time is a dyadic fraction (156/256 = 0.609375), so the
floating-point sums are exact.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    AUTH_SIMPLE_TEXT,
    VRRP_GROUP_V4,
    Advertisement,
    DropReason,
    PacketError,
    decode,
    encode,
)
from keepvip_agent.vrrp.router import (
    TRANSITIONS,
    AcquireAddresses,
    Action,
    Announce,
    Event,
    IllegalTransition,
    ReleaseAddresses,
    RouterConfig,
    SendAdvertisement,
    State,
    Transition,
    VirtualRouter,
)

OURS = IPv4Address("192.0.2.5")
HIGHER = IPv4Address("192.0.2.9")  # a peer whose primary address is above ours
LOWER = IPv4Address("192.0.2.2")  # and one below
VIP = IPv4Address("192.0.2.100")

SKEW_100 = 156 / 256  # (256 - 100) / 256 of a 1 s interval
MDI_100 = 3 + SKEW_100  # 3.609375


def router(
    priority: int = 100,
    *,
    version: int = 3,
    interval_cs: int = 100,
    preempt: bool = False,
    preempt_delay: float = 0.0,
    auth_type: int = AUTH_NONE,
    auth_data: bytes = b"",
    primary: IPv4Address = OURS,
) -> VirtualRouter:
    return VirtualRouter(
        RouterConfig(
            vrid=51,
            version=version,
            priority=priority,
            interval_cs=interval_cs,
            primary_address=primary,
            preempt=preempt,
            preempt_delay=preempt_delay,
            auth_type=auth_type,
            auth_data=auth_data,
        )
    )


def adv(
    priority: int,
    *,
    version: int = 3,
    interval_cs: int = 100,
    auth_type: int = AUTH_NONE,
    auth_data: bytes = b"",
) -> Advertisement:
    if version == 2 and not auth_data:
        auth_data = bytes(8)  # what the codec hands over for a v2 packet
    return Advertisement(version, 51, priority, interval_cs, (VIP,), auth_type, auth_data)


def started(r: VirtualRouter, now: float = 0.0) -> VirtualRouter:
    r.startup(now)
    return r


def elected(r: VirtualRouter, now: float = 0.0) -> VirtualRouter:
    """Start ``r`` so that its master-down timer runs out, and it wins, exactly at ``now``."""
    r.startup(now - r.master_down_interval())
    assert r.deadline == now
    r.timer_expired(now)
    assert r.state is State.MASTER
    assert r.deadline == now + r.advert_interval
    return r


def kinds(actions: list[Action]) -> list[type]:
    return [type(a) for a in actions]


# -- 6.4.1 Initialize ----------------------------------------------------------------


def test_startup_enters_backup_with_master_down_timer() -> None:
    r = router(100)
    assert r.state is State.INITIALIZE and r.deadline is None
    actions = r.startup(5.0)
    assert actions == [Transition(State.INITIALIZE, State.BACKUP, "startup")]
    assert r.state is State.BACKUP
    assert r.master_down_interval() == MDI_100 == 3.609375
    assert r.deadline == 5.0 + 3.609375


def test_owner_startup_is_master_at_once() -> None:
    r = router(255)
    actions = r.startup(5.0)
    assert actions == [
        Transition(State.INITIALIZE, State.MASTER, "startup: address owner (priority 255)"),
        SendAdvertisement(255),
        AcquireAddresses(),
    ]
    assert r.state is State.MASTER
    assert r.deadline == 6.0  # Adver_Timer
    assert r.master_address == OURS


def test_startup_twice_is_illegal() -> None:
    r = started(router())
    with pytest.raises(IllegalTransition, match="startup in Backup"):
        r.startup(1.0)


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS],
    ids=lambda x: x.value,
)
def test_events_missing_from_the_table_raise(state: State, event: Event) -> None:
    # The table is the machine: an event it has no move for is a bug of ours.
    r = router()
    r.state = state
    with pytest.raises(IllegalTransition, match=f"{event.value} in {state.value}"):
        r._enter(event, "test", 0.0)
    assert r.state is state


def test_the_table_has_no_self_moves() -> None:
    # A handler that "re-enters" a state is a bug: no event leads back where it started.
    assert all(old is not new for (old, _), new in TRANSITIONS.items())
    assert {new for new in TRANSITIONS.values()} == set(State)


def test_the_router_builds_the_advertisement_it_sends() -> None:
    r = router(150, version=2, auth_type=AUTH_SIMPLE_TEXT, auth_data=b"secret", primary=OURS)
    r.config = replace(r.config, addresses=(VIP,))
    assert r.advertisement(150) == Advertisement(
        2, 51, 150, 100, (VIP,), AUTH_SIMPLE_TEXT, b"secret"
    )
    assert r.advertisement(0).priority == 0


# -- timers (6.1) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "interval_cs", "priority", "skew", "mdi"),
    [
        # v3: Skew_Time = (256 - Priority) * Master_Adver_Interval / 256 (centiseconds).
        (3, 100, 100, 0.609375, 3.609375),
        (3, 300, 100, 1.828125, 10.828125),
        (3, 100, 200, 0.21875, 3.21875),
        (3, 100, 1, 0.99609375, 3.99609375),
        # v2: Skew_Time = (256 - Priority) / 256 seconds, whatever the interval.
        (2, 100, 100, 0.609375, 3.609375),
        (2, 300, 100, 0.609375, 9.609375),
        (2, 100, 200, 0.21875, 3.21875),
    ],
)
def test_master_down_interval(
    version: int, interval_cs: int, priority: int, skew: float, mdi: float
) -> None:
    r = started(router(priority, version=version, interval_cs=interval_cs), 10.0)
    assert r.skew_time() == skew
    assert r.master_down_interval() == mdi
    assert r.deadline == 10.0 + mdi


def test_v3_backup_learns_master_adver_interval() -> None:
    r = started(router(100, interval_cs=100))
    assert r.advertisement_received(adv(150, interval_cs=200), HIGHER, 10.0) == []
    assert r.master_adver_interval_cs == 200
    # 3 * 2 s + (256 - 100) * 2 s / 256 = 6 + 1.21875
    assert r.deadline == 10.0 + 7.21875
    # Our own Advertisement_Interval is unchanged: it is used again once we are master.
    assert r.advert_interval == 1.0


def test_v2_backup_keeps_its_configured_interval() -> None:
    r = started(router(100, version=2, interval_cs=300))
    r.advertisement_received(adv(150, version=2, interval_cs=300), HIGHER, 10.0)
    assert r.deadline == 10.0 + 9 + 0.609375


def test_backup_early_timer_is_a_no_op() -> None:
    r = started(router(100))
    assert r.timer_expired(3.6) == []
    assert r.state is State.BACKUP
    assert r.deadline == MDI_100


def test_master_down_timer_fires() -> None:
    r = started(router(100))
    actions = r.timer_expired(MDI_100)
    assert actions == [
        Transition(State.BACKUP, State.MASTER, "master down timer expired"),
        SendAdvertisement(100),
        AcquireAddresses(),
    ]
    assert r.deadline == MDI_100 + 1.0
    assert r.master_address == OURS


def test_late_timer_call_still_fires() -> None:
    r = started(router(100))
    assert kinds(r.timer_expired(100.0)) == [Transition, SendAdvertisement, AcquireAddresses]
    assert r.deadline == 101.0


def test_master_adver_timer_resends() -> None:
    r = elected(router(100), 20.0)
    assert r.deadline == 21.0
    assert r.timer_expired(20.999) == []
    assert r.deadline == 21.0
    assert r.timer_expired(21.0) == [SendAdvertisement(100)]
    assert r.deadline == 22.0
    assert r.timer_expired(22.5) == [SendAdvertisement(100)]
    assert r.deadline == 23.5
    assert r.state is State.MASTER


def test_advertisements_only_move_the_deadline() -> None:
    # Lazy timers: a steady stream of adverts never fires the backup's timer.
    r = started(router(100))
    now = 0.0
    for _ in range(50):
        now += 1.0
        assert r.advertisement_received(adv(150), HIGHER, now) == []
        assert r.timer_expired(now) == []
        assert r.deadline == now + MDI_100
    assert r.state is State.BACKUP


# -- 6.4.2 Backup --------------------------------------------------------------------


def test_backup_receiving_priority_zero_takes_over_after_skew_only() -> None:
    r = started(router(100))
    r.advertisement_received(adv(150), HIGHER, 1.0)
    assert r.advertisement_received(adv(0), HIGHER, 2.0) == []
    assert r.deadline == 2.0 + SKEW_100
    assert r.timer_expired(2.0 + SKEW_100 - 0.001) == []
    assert kinds(r.timer_expired(2.0 + SKEW_100)) == [
        Transition,
        SendAdvertisement,
        AcquireAddresses,
    ]


def test_priority_zero_uses_the_learned_interval_for_skew() -> None:
    r = started(router(100))
    r.advertisement_received(adv(150, interval_cs=200), HIGHER, 1.0)
    r.advertisement_received(adv(0, interval_cs=200), HIGHER, 2.0)
    assert r.deadline == 2.0 + 1.21875


def test_preempt_false_keeps_a_lower_priority_master() -> None:
    # The returning higher-priority node hears a healthy master and stays backup.
    r = started(router(150, preempt=False))
    now = 0.0
    for _ in range(30):
        now += 1.0
        assert r.advertisement_received(adv(100), LOWER, now) == []
        assert r.timer_expired(now) == []
    assert r.state is State.BACKUP
    assert r.master_address == LOWER


def test_preempt_true_takes_over_from_a_lower_priority_master() -> None:
    r = started(router(150, preempt=True))
    mdi = 3 + 106 / 256
    # RFC 9568 6.4.2: adverts of lower priority are discarded, so the timer runs out.
    for t in (0.5, 1.5, 2.5):
        assert r.advertisement_received(adv(100), LOWER, t) == []
        assert r.deadline == mdi
    assert r.timer_expired(mdi - 0.001) == []
    actions = r.timer_expired(mdi)
    assert actions[0] == Transition(State.BACKUP, State.MASTER, "master down timer expired")
    assert SendAdvertisement(150) in actions


def test_preempt_delay_defers_takeover() -> None:
    r = started(router(150, preempt=True, preempt_delay=5.0))
    mdi = 3 + 106 / 256
    t = 0.5
    # For 5 s after the first lower advert the backup behaves as with preempt off ...
    while t < 5.5:
        r.advertisement_received(adv(100), LOWER, t)
        assert r.deadline == t + mdi
        assert r.timer_expired(t) == []
        t += 1.0
    # ... then it discards them and the master-down timer, last reset at 4.5, runs out.
    for t in (5.5, 6.5, 7.5):
        r.advertisement_received(adv(100), LOWER, t)
        assert r.deadline == 4.5 + mdi
        assert r.timer_expired(t) == []
    assert r.state is State.BACKUP
    assert kinds(r.timer_expired(4.5 + mdi))[0] is Transition
    assert r.state is State.MASTER


def test_preempt_delay_restarts_when_the_master_is_no_longer_lower() -> None:
    # The delay counts how long a lower-priority master has been seen without a break.
    r = started(router(150, preempt=True, preempt_delay=5.0))
    r.advertisement_received(adv(100), LOWER, 0.5)  # lower master first seen
    r.set_priority(90, 1.0)  # our own check demotes us below the master
    for t in (1.5, 2.5, 3.5, 4.5, 5.5, 6.5):
        r.advertisement_received(adv(100), LOWER, t)
    r.set_priority(150, 7.0)  # healthy again: the master is lower once more
    mdi = 3 + 106 / 256
    for t in (7.5, 8.5, 9.5, 10.5, 11.5):
        r.advertisement_received(adv(100), LOWER, t)
        assert r.deadline == t + mdi, f"preempted at {t}, before 5 s of a lower master"
    r.advertisement_received(adv(100), LOWER, 12.5)
    assert r.deadline == 11.5 + mdi


def test_preempt_false_still_displaces_a_demoted_master() -> None:
    r = started(router(100, preempt=False))
    r.advertisement_received(adv(150), HIGHER, 1.0)
    r.advertisement_received(adv(120), HIGHER, 2.0)  # demoted but still above us
    assert r.deadline == 2.0 + MDI_100
    for t in (3.0, 4.0, 5.0):
        r.advertisement_received(adv(90), HIGHER, t)  # demoted below us: discarded
        assert r.deadline == 2.0 + MDI_100
    actions = r.timer_expired(2.0 + MDI_100)
    assert kinds(actions) == [Transition, SendAdvertisement, AcquireAddresses]


def test_a_new_master_is_judged_by_its_own_best_priority() -> None:
    # A different source resets the memory: a low-priority master that was never
    # higher is not "demoted", so preempt=false keeps it.
    r = started(router(100, preempt=False))
    r.advertisement_received(adv(150), HIGHER, 1.0)
    r.advertisement_received(adv(90), LOWER, 2.0)
    assert r.master_address == LOWER
    assert r.deadline == 2.0 + MDI_100


def test_preempting_backup_accepts_an_equal_priority_master() -> None:
    r = started(router(100, preempt=True))
    r.advertisement_received(adv(100), LOWER, 1.0)
    assert r.deadline == 1.0 + MDI_100


# -- 6.4.3 Master --------------------------------------------------------------------


def test_master_receiving_higher_priority_becomes_backup() -> None:
    r = elected(router(100), 10.0)
    actions = r.advertisement_received(adv(150, interval_cs=200), LOWER, 11.0)
    assert actions == [
        SendAdvertisement(100),  # the last word: lets a winner that never heard us re-announce
        ReleaseAddresses(),
        Transition(State.MASTER, State.BACKUP, f"higher priority master {LOWER} (priority 150)"),
    ]
    assert r.state is State.BACKUP
    assert r.master_address == LOWER
    assert r.master_adver_interval_cs == 200
    assert r.deadline == 11.0 + 7.21875
    assert r.adver_at is None


def test_equal_priority_higher_address_wins() -> None:
    r = elected(router(100), 10.0)
    actions = r.advertisement_received(adv(100), HIGHER, 11.0)
    assert kinds(actions) == [SendAdvertisement, ReleaseAddresses, Transition]
    assert r.state is State.BACKUP


def test_equal_priority_lower_address_loses() -> None:
    r = elected(router(100), 10.0)
    actions = r.advertisement_received(adv(100), LOWER, 11.0)
    assert actions == [Announce(f"lower priority master {LOWER} (priority 100) heard")]
    assert r.state is State.MASTER


def test_address_comparison_is_unsigned_network_order() -> None:
    # 192.0.2.10 > 192.0.2.9 numerically although "10" < "9" as text.
    r = elected(router(100, primary=IPv4Address("192.0.2.9")), 10.0)
    r.advertisement_received(adv(100), IPv4Address("192.0.2.10"), 11.0)
    assert r.state is State.BACKUP


def test_master_receiving_lower_priority_stays_and_announces_rate_limited() -> None:
    r = elected(router(150), 10.0)
    deadline = r.deadline
    # Becoming master announced already: nothing for one interval.
    assert r.advertisement_received(adv(100), HIGHER, 10.5) == []
    announce = [Announce(f"lower priority master {HIGHER} (priority 100) heard")]
    assert r.advertisement_received(adv(100), HIGHER, 11.0) == announce
    assert r.advertisement_received(adv(100), HIGHER, 11.5) == []
    assert r.advertisement_received(adv(100), HIGHER, 11.99) == []
    assert r.advertisement_received(adv(100), HIGHER, 12.0) == announce
    assert r.state is State.MASTER
    assert r.deadline == deadline  # the Adver_Timer is not disturbed


def test_master_receiving_priority_zero_advertises_at_once() -> None:
    r = elected(router(100), 10.0)
    assert r.advertisement_received(adv(0), HIGHER, 10.3) == [SendAdvertisement(100)]
    assert r.deadline == 11.3
    assert r.state is State.MASTER


def test_shutdown_from_master_releases() -> None:
    r = elected(router(100), 10.0)
    assert r.shutdown(12.0) == [
        SendAdvertisement(0),
        ReleaseAddresses(),
        Transition(State.MASTER, State.INITIALIZE, "shutdown"),
    ]
    assert r.state is State.INITIALIZE
    assert r.deadline is None
    assert r.timer_expired(100.0) == []


def test_shutdown_from_backup_and_initialize() -> None:
    r = started(router())
    assert r.shutdown(1.0) == [Transition(State.BACKUP, State.INITIALIZE, "shutdown")]
    assert r.deadline is None
    assert r.shutdown(2.0) == []
    # A stopped router can be started again.
    assert kinds(r.startup(3.0)) == [Transition]
    assert r.deadline == 3.0 + MDI_100


def test_initialize_ignores_advertisements() -> None:
    r = router()
    assert r.advertisement_received(adv(150), HIGHER, 1.0) == []
    assert r.state is State.INITIALIZE


def test_set_priority_on_master_advertises_now() -> None:
    r = elected(router(150), 10.0)
    assert r.set_priority(90, 10.4) == [SendAdvertisement(90)]
    assert r.deadline == 11.4
    assert r.set_priority(90, 10.5) == []
    assert r.timer_expired(11.4) == [SendAdvertisement(90)]


def test_set_priority_on_backup_changes_skew_only() -> None:
    r = started(router(100))
    assert r.set_priority(200, 1.0) == []
    assert r.skew_time() == 0.21875
    assert r.deadline == MDI_100  # the running timer is not moved
    r.advertisement_received(adv(250), HIGHER, 2.0)
    assert r.deadline == 2.0 + 3.21875


def test_demoted_master_is_replaced_end_to_end() -> None:
    # The old master's check fails: it advertises the lower priority at once and the
    # backup (preempt off) takes over one master-down interval after that advert.
    old, new = elected(router(150, primary=HIGHER), 0.0), started(router(100, preempt=False))
    new.advertisement_received(adv(150), HIGHER, 0.0)
    (send,) = old.set_priority(50, 0.2)
    assert isinstance(send, SendAdvertisement)
    new.advertisement_received(adv(send.priority), HIGHER, 0.2)
    assert new.deadline == 0.0 + MDI_100  # discarded: the timer keeps running from 0.0
    takeover = new.timer_expired(MDI_100)
    assert kinds(takeover) == [Transition, SendAdvertisement, AcquireAddresses]
    assert old.advertisement_received(adv(100), OURS, MDI_100) == [
        SendAdvertisement(50),
        ReleaseAddresses(),
        Transition(State.MASTER, State.BACKUP, f"higher priority master {OURS} (priority 100)"),
    ]


# -- FAULT ---------------------------------------------------------------------------


def test_backup_enters_and_leaves_fault() -> None:
    r = started(router(100))
    assert r.set_fault("link eth0", True, 1.0) == [
        Transition(State.BACKUP, State.FAULT, "fault: link eth0")
    ]
    assert r.deadline is None
    assert r.advertisement_received(adv(150), HIGHER, 1.5) == []
    assert r.timer_expired(100.0) == []
    assert r.set_fault("check api", True, 2.0) == []  # already in FAULT
    assert r.set_fault("link eth0", False, 3.0) == []  # one fault left
    assert r.state is State.FAULT
    assert r.set_fault("check api", False, 4.0) == [
        Transition(State.FAULT, State.BACKUP, "recovered from fault (check api)")
    ]
    assert r.deadline == 4.0 + MDI_100


def test_master_in_fault_releases() -> None:
    r = elected(router(100), 10.0)
    assert r.set_fault("check api", True, 11.0) == [
        SendAdvertisement(0),
        ReleaseAddresses(),
        Transition(State.MASTER, State.FAULT, "fault: check api"),
    ]
    assert r.deadline is None
    # Recovery joins as backup, not master, even though it was master before.
    actions = r.set_fault("check api", False, 12.0)
    assert actions == [Transition(State.FAULT, State.BACKUP, "recovered from fault (check api)")]
    assert r.deadline == 12.0 + MDI_100


def test_owner_recovering_from_fault_is_master_at_once() -> None:
    r = started(router(255))
    r.set_fault("link eth0", True, 1.0)
    actions = r.set_fault("link eth0", False, 2.0)
    assert actions[0] == Transition(
        State.FAULT, State.MASTER, "recovered from fault (link eth0): address owner (priority 255)"
    )
    assert kinds(actions) == [Transition, SendAdvertisement, AcquireAddresses]


def test_fault_before_startup() -> None:
    r = router()
    assert r.set_fault("link eth0", True, 0.0) == []
    assert r.state is State.INITIALIZE
    assert r.startup(1.0) == [Transition(State.INITIALIZE, State.FAULT, "fault: link eth0")]
    assert r.set_fault("link eth0", False, 2.0) == [
        Transition(State.FAULT, State.BACKUP, "recovered from fault (link eth0)")
    ]


def test_fault_clear_of_unknown_reason_is_ignored() -> None:
    r = started(router())
    assert r.set_fault("never set", False, 1.0) == []
    assert r.state is State.BACKUP


def test_shutdown_from_fault() -> None:
    r = started(router())
    r.set_fault("x", True, 1.0)
    assert r.shutdown(2.0) == [Transition(State.FAULT, State.INITIALIZE, "shutdown")]


# -- configuration checks on receipt (RFC 3768 7.1, RFC 9568 7.1) ------------------------


def test_v2_interval_mismatch_is_dropped() -> None:
    r = started(router(version=2, interval_cs=100))
    with pytest.raises(PacketError) as err:
        r.advertisement_received(adv(150, version=2, interval_cs=200), HIGHER, 1.0)
    assert err.value.reason is DropReason.INTERVAL_MISMATCH
    assert err.value.detail == "interval 2s, configured 1s"
    assert r.deadline == MDI_100  # nothing changed


def test_v3_interval_difference_is_accepted() -> None:
    r = started(router(interval_cs=100))
    r.advertisement_received(adv(150, interval_cs=50), HIGHER, 1.0)
    assert r.master_adver_interval_cs == 50


def test_version_mismatch_is_dropped() -> None:
    r = started(router(version=3))
    with pytest.raises(PacketError) as err:
        r.advertisement_received(adv(150, version=2), HIGHER, 1.0)
    assert err.value.reason is DropReason.VERSION


@pytest.mark.parametrize(
    ("auth_type", "auth_data"),
    [
        (AUTH_NONE, bytes(8)),
        (AUTH_SIMPLE_TEXT, b"wrong\0\0\0"),
        (AUTH_SIMPLE_TEXT, b"secretXX"),
        (2, b"secret\0\0"),
    ],
)
def test_v2_auth_mismatch_is_dropped(auth_type: int, auth_data: bytes) -> None:
    r = started(router(version=2, auth_type=AUTH_SIMPLE_TEXT, auth_data=b"secret"))
    with pytest.raises(PacketError) as err:
        r.advertisement_received(
            adv(150, version=2, auth_type=auth_type, auth_data=auth_data), HIGHER, 1.0
        )
    assert err.value.reason is DropReason.AUTH


def test_v2_auth_unexpected_is_dropped() -> None:
    r = started(router(version=2))
    with pytest.raises(PacketError) as err:
        r.advertisement_received(
            adv(150, version=2, auth_type=AUTH_SIMPLE_TEXT, auth_data=b"secret\0\0"), HIGHER, 1.0
        )
    assert err.value.reason is DropReason.AUTH


def test_v2_auth_match_through_the_codec() -> None:
    # What the peer encodes and our codec decodes is what the router accepts.
    r = started(router(version=2, auth_type=AUTH_SIMPLE_TEXT, auth_data=b"secret"))
    wire = encode(adv(150, version=2, auth_type=AUTH_SIMPLE_TEXT, auth_data=b"secret"),
                  HIGHER, VRRP_GROUP_V4)  # fmt: skip
    received = decode(wire, HIGHER, VRRP_GROUP_V4)
    assert r.advertisement_received(received, HIGHER, 1.0) == []
    assert r.master_address == HIGHER


def test_dropped_packets_are_checked_in_every_state() -> None:
    r = elected(router(100, version=2))
    with pytest.raises(PacketError):
        r.advertisement_received(adv(150, version=2, interval_cs=300), HIGHER, 1.0)
    assert r.state is State.MASTER


# -- a small wire -------------------------------------------------------------------------


@dataclass
class Wire:
    """Routers on one zero-latency segment, driven by a fake clock.

    Every SendAdvertisement is delivered to every other live router at the same
    instant; their replies are delivered in turn.
    """

    routers: dict[str, VirtualRouter]
    now: float = 0.0
    down: set[str] = field(default_factory=set)
    log: list[tuple[float, str, Transition]] = field(default_factory=list)

    def live(self) -> dict[str, VirtualRouter]:
        return {n: r for n, r in self.routers.items() if n not in self.down}

    def masters(self) -> list[str]:
        return [n for n, r in self.live().items() if r.state is State.MASTER]

    def handle(self, name: str, actions: list[Action]) -> None:
        queue = [(name, actions)]
        while queue:
            sender, acts = queue.pop(0)
            for action in acts:
                if isinstance(action, Transition):
                    self.log.append((self.now, sender, action))
                if not isinstance(action, SendAdvertisement):
                    continue
                me = self.routers[sender]
                packet = adv(action.priority, interval_cs=me.config.interval_cs)
                for other, r in self.live().items():
                    if other != sender:
                        got = r.advertisement_received(packet, me.config.primary_address, self.now)
                        queue.append((other, got))

    def start(self) -> None:
        for name, r in self.routers.items():
            self.handle(name, r.startup(self.now))

    def run_until(self, end: float) -> None:
        """Fire timers in deadline order up to ``end``; check the one-master invariant."""
        while True:
            due = [(r.deadline, n) for n, r in self.live().items() if r.deadline is not None]
            heapq.heapify(due)
            if not due or due[0][0] > end:
                break
            self.now, name = due[0]
            self.handle(name, self.routers[name].timer_expired(self.now))
            assert len(self.masters()) <= 1, f"two masters at {self.now}: {self.masters()}"
        self.now = end

    def crash(self, name: str) -> None:
        self.down.add(name)

    def stop(self, name: str) -> None:
        self.handle(name, self.routers[name].shutdown(self.now))
        self.down.add(name)


def three_routers(preempt: bool = False) -> Wire:
    def node(priority: int, last_octet: int) -> VirtualRouter:
        return router(priority, preempt=preempt, primary=IPv4Address(f"192.0.2.{last_octet}"))

    return Wire({"a": node(200, 1), "b": node(150, 2), "c": node(100, 3)})


def became_master(wire: Wire) -> list[tuple[float, str]]:
    return [(t, n) for t, n, tr in wire.log if tr.new is State.MASTER]


def test_wire_elects_the_highest_priority() -> None:
    wire = three_routers()
    wire.start()
    wire.run_until(30.0)
    # a's master-down interval is the shortest: 3 + 56/256.
    assert became_master(wire) == [(3.21875, "a")]
    assert wire.masters() == ["a"]
    assert [r.state for r in wire.routers.values()] == [State.MASTER, State.BACKUP, State.BACKUP]
    assert wire.routers["c"].master_address == IPv4Address("192.0.2.1")


def test_wire_failover_after_a_crash_takes_the_next_masters_down_interval() -> None:
    wire = three_routers()
    wire.start()
    wire.run_until(10.0)
    last_advert = 3.21875 + 6  # a advertises every second from 3.21875
    wire.crash("a")
    wire.run_until(30.0)
    # b: 3 * 1 s + (256 - 150) / 256 s after a's last advertisement.
    assert became_master(wire)[1:] == [(last_advert + 3 + 106 / 256, "b")]
    assert wire.masters() == ["b"]
    assert wire.routers["c"].state is State.BACKUP
    assert wire.routers["c"].master_address == IPv4Address("192.0.2.2")


def test_wire_failover_after_a_shutdown_takes_skew_only() -> None:
    wire = three_routers()
    wire.start()
    wire.run_until(10.0)
    wire.stop("a")
    wire.run_until(30.0)
    assert became_master(wire)[1:] == [(10.0 + 106 / 256, "b")]
    assert wire.masters() == ["b"]


def test_wire_returning_higher_priority_node_without_preempt() -> None:
    wire = three_routers(preempt=False)
    wire.start()
    wire.run_until(10.0)
    wire.crash("a")
    wire.run_until(20.0)
    wire.down.discard("a")
    wire.routers["a"].shutdown(wire.now)
    wire.handle("a", wire.routers["a"].startup(wire.now))
    wire.run_until(60.0)
    assert wire.masters() == ["b"]
    assert wire.routers["a"].state is State.BACKUP


def test_wire_returning_higher_priority_node_with_preempt() -> None:
    wire = three_routers(preempt=True)
    wire.start()
    wire.run_until(10.0)
    wire.crash("a")
    wire.run_until(20.0)
    wire.down.discard("a")
    wire.routers["a"].shutdown(wire.now)
    wire.handle("a", wire.routers["a"].startup(wire.now))
    wire.run_until(60.0)
    assert wire.masters() == ["a"]
    assert became_master(wire)[-1] == (20.0 + 3.21875, "a")
    assert {wire.routers[n].state for n in "bc"} == {State.BACKUP}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 254), min_size=2, max_size=5, unique=True),
    st.lists(st.integers(0, 1000), min_size=5, max_size=5),
    st.booleans(),
)
def test_wire_property_exactly_one_master(
    priorities: list[int], offsets_cs: list[int], preempt: bool
) -> None:
    # Any priorities, started at any times within 10 s: one master, and with preempt
    # it is the highest priority; without, nobody displaces the first one elected.
    routers = {
        f"r{i}": router(p, preempt=preempt, primary=IPv4Address(f"192.0.2.{i + 1}"))
        for i, p in enumerate(priorities)
    }
    wire = Wire(routers)
    for name, offset in sorted(zip(routers, offsets_cs, strict=False), key=lambda x: x[1]):
        wire.run_until(offset / 100)
        wire.handle(name, routers[name].startup(wire.now))
    wire.run_until(60.0)
    (winner,) = wire.masters()
    if preempt:
        assert routers[winner].priority == max(priorities)
    else:
        assert became_master(wire)[-1][1] == winner
        assert len(became_master(wire)) == 1
    assert all(r.master_address == routers[winner].config.primary_address
               for r in routers.values())  # fmt: skip
