"""The VRRP virtual-router state machine (RFC 9568 section 6, RFC 3768 section 6).

Sans-IO in the manner of h11: every method takes the current time and
returns the actions the runtime must carry out; the object never sleeps,
sends or binds. Everything that affects a state transition lives in this
module, and :data:`TRANSITIONS`, keyed by (state, event), is the machine: a
handler names the event it saw and the table says where it leads. An event
the table has no entry for in the current state raises
:class:`IllegalTransition`, a bug of ours, whereas a packet we must drop
raises :class:`~keepvip_agent.vrrp.packet.PacketError`, the peer's.

The router also builds every advertisement it asks to send
(:meth:`VirtualRouter.advertisement`): the VRID, version, interval, priority,
authentication and address list are protocol knowledge, so the runtime only
encodes it for a source and destination and caches the bytes.

Beyond the RFC, three keepalived-user needs are met here:

* ``FAULT`` (a health check with ``action: fault`` failed, or the interface
  is down): the router leaves the election, releasing the addresses with a
  priority-0 advertisement if it was master.
* A master that yields to a higher-priority one sends a last advertisement
  at its own priority, so after a healed partition the winner always hears
  the loser and re-announces the VIP (clients' ARP caches follow).
* With ``preempt: false`` a backup still takes over from a master whose
  advertised priority *fell* below the backup's own (a demoted master), so a
  failing ``demote`` check moves the VIP while a healthy master is never
  displaced by a returning higher-priority node.

Timers are deadlines, not callbacks: :attr:`VirtualRouter.deadline` says when
:meth:`VirtualRouter.timer_expired` must next be called. Receiving an
advertisement only moves a deadline, which lets the runtime re-arm a real
timer lazily (once per master-down interval, not once per packet).

A backup hears the same advertisement from its master every interval, and
with hundreds of instances that is the agent's busiest path. When one was
accepted and could change nothing but the master-down timer if it came again
(see :meth:`VirtualRouter._backup_received`), the router remembers it, and
:meth:`VirtualRouter.advertisement_repeated` handles the next identical one
(the same object: the runtime's decode cache returns one per distinct packet)
by resetting the timer alone. Anything that could change the outcome (a
transition, another priority, another configuration) makes it miss, and the
full rules run again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from keepvip_agent.vrrp.packet import (
    PRIORITY_OWNER,
    PRIORITY_RELEASE,
    Advertisement,
    DropReason,
    IPAddress,
    PacketError,
)


class State(enum.Enum):
    INITIALIZE = "Initialize"
    BACKUP = "Backup"
    MASTER = "Master"
    FAULT = "Fault"


class Event(enum.Enum):
    """What moves the machine: the RFC's events, plus the fault this agent adds."""

    JOIN = "join"
    """RFC 9568 6.4.1 Startup (or the last fault cleared): enter Backup."""
    JOIN_AS_OWNER = "join as owner"
    """6.4.1 Startup with priority 255 (or its fault cleared): Master at once."""
    MASTER_DOWN_TIMER = "master down timer fired"
    """6.4.2: no advertisement from a master for Master_Down_Interval."""
    PREEMPTED = "higher priority advertisement"
    """6.4.3: a master hears a higher priority (or equal priority, higher address)."""
    FAULT = "fault"
    """Beyond the RFC: a ``fault`` health source failed; leave the election."""
    SHUTDOWN = "shutdown"
    """6.4.2 / 6.4.3: the Shutdown event."""


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.INITIALIZE, Event.JOIN): State.BACKUP,
    (State.INITIALIZE, Event.JOIN_AS_OWNER): State.MASTER,
    (State.INITIALIZE, Event.FAULT): State.FAULT,
    (State.BACKUP, Event.MASTER_DOWN_TIMER): State.MASTER,
    (State.BACKUP, Event.FAULT): State.FAULT,
    (State.BACKUP, Event.SHUTDOWN): State.INITIALIZE,
    (State.MASTER, Event.PREEMPTED): State.BACKUP,
    (State.MASTER, Event.FAULT): State.FAULT,
    (State.MASTER, Event.SHUTDOWN): State.INITIALIZE,
    (State.FAULT, Event.JOIN): State.BACKUP,
    (State.FAULT, Event.JOIN_AS_OWNER): State.MASTER,
    (State.FAULT, Event.SHUTDOWN): State.INITIALIZE,
}
"""Every legal move, and nothing else: (state, event) -> new state."""


class IllegalTransition(RuntimeError):
    """An event :data:`TRANSITIONS` has no move for in the current state: a bug in this module."""


@dataclass(frozen=True, slots=True)
class SendAdvertisement:
    """Send one advertisement with this priority (0 releases mastership).

    The packet itself is :meth:`VirtualRouter.advertisement` of this priority;
    the action carries only the priority, so the runtime can key its cache of
    encoded bytes on it.
    """

    priority: int


@dataclass(frozen=True, slots=True)
class AcquireAddresses:
    """Bind the virtual addresses and announce them (gratuitous ARP / unsolicited NA)."""


@dataclass(frozen=True, slots=True)
class ReleaseAddresses:
    """Remove the virtual addresses from the interface."""


@dataclass(frozen=True, slots=True)
class Announce:
    """Announce the addresses again: another master was heard and we stayed master."""

    reason: str


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: str


Action = SendAdvertisement | AcquireAddresses | ReleaseAddresses | Announce | Transition


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """What the state machine needs of a VirtualIP; built by the runtime from the spec."""

    vrid: int
    version: int
    priority: int
    interval_cs: int
    primary_address: IPAddress
    preempt: bool = False
    preempt_delay: float = 0.0
    auth_type: int = 0
    auth_data: bytes = b""
    addresses: tuple[IPAddress, ...] = ()
    """The virtual addresses carried in advertisements (RFC 9568 5.2.9)."""


@dataclass
class VirtualRouter:
    """One VRRP instance. Times are seconds on any monotonic clock the caller picks."""

    config: RouterConfig
    state: State = State.INITIALIZE
    priority: int = field(init=False)
    master_adver_interval_cs: int = field(init=False)
    master_down_at: float | None = None
    adver_at: float | None = None
    master_address: IPAddress | None = None
    faults: frozenset[str] = frozenset()
    _master_best: int = 0
    _lower_master_since: float | None = None
    _announced_at: float = float("-inf")
    _repeat: tuple[Advertisement, IPAddress, RouterConfig, int, float] | None = None
    """(advertisement, source, config, priority, Master_Down_Interval) of the last accepted
    advertisement whose repetition can only reset the master-down timer."""

    def __post_init__(self) -> None:
        self.priority = self.config.priority
        self.master_adver_interval_cs = self.config.interval_cs

    # -- timers (RFC 9568 6.1) -------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When :meth:`timer_expired` must next run, or None when no timer is armed."""
        if self.state is State.BACKUP:
            return self.master_down_at
        if self.state is State.MASTER:
            return self.adver_at
        return None

    def skew_time(self) -> float:
        """RFC 9568 6.1: ((256 - Priority) * Master_Adver_Interval) / 256; v2: (256 - Priority) / 256 s."""
        if self.config.version == 2:
            return (256 - self.priority) / 256
        return (256 - self.priority) * self.master_adver_interval_cs / 25600

    def master_down_interval(self) -> float:
        """RFC 9568 6.1: (3 * Master_Adver_Interval) + Skew_Time."""
        return 3 * self.master_adver_interval_cs / 100 + self.skew_time()

    @property
    def advert_interval(self) -> float:
        return self.config.interval_cs / 100

    # -- the packet we send (RFC 9568 5.2) -----------------------------------------

    def advertisement(self, priority: int) -> Advertisement:
        """The advertisement a :class:`SendAdvertisement` of this priority means.

        Built from the configuration alone, so the runtime may encode it once
        per (priority, destination) and reuse the bytes until the
        configuration changes.
        """
        c = self.config
        return Advertisement(
            c.version, c.vrid, priority, c.interval_cs, c.addresses, c.auth_type, c.auth_data
        )

    # -- events -----------------------------------------------------------------

    def startup(self, now: float) -> list[Action]:
        """RFC 9568 6.4.1: Startup event in Initialize."""
        if self.state is not State.INITIALIZE:
            raise IllegalTransition(f"startup in {self.state.value}")
        if self.faults:
            return [self._enter(Event.FAULT, self._fault_reason(), now)]
        return self._join(now, "startup")

    def shutdown(self, now: float) -> list[Action]:
        """RFC 9568 6.4.2/6.4.3: Shutdown event; a master sends priority 0 first."""
        if self.state is State.INITIALIZE:
            return []
        actions: list[Action] = []
        if self.state is State.MASTER:
            actions += [SendAdvertisement(PRIORITY_RELEASE), ReleaseAddresses()]
        actions.append(self._enter(Event.SHUTDOWN, "shutdown", now))
        return actions

    def timer_expired(self, now: float) -> list[Action]:
        """Run whichever timer is due; calling early is harmless and does nothing."""
        if self.state is State.BACKUP and self.master_down_at is not None:
            if now >= self.master_down_at:
                return self._become_master(
                    Event.MASTER_DOWN_TIMER, "master down timer expired", now
                )
        elif self.state is State.MASTER and self.adver_at is not None and now >= self.adver_at:
            # RFC 9568 6.4.3: Adver_Timer fires: send an advertisement, reset the timer.
            self.adver_at = now + self.advert_interval
            return [SendAdvertisement(self.priority)]
        return []

    def advertisements_sent(self, last_due: float) -> None:
        """The adapter sent the periodic advertisement when it was due, last at ``last_due``,
        as :meth:`timer_expired` would have had it (RFC 9568 6.4.3): restart Adver_Timer from
        there. Only meaningful in Master, with nothing else changed meanwhile."""
        if self.state is State.MASTER:
            self.adver_at = last_due + self.advert_interval

    def advertisement_repeated(self, adv: Advertisement, source: IPAddress, now: float) -> bool:
        """RFC 9568 6.4.2, for the advertisement just accepted arriving again: True if handled.

        Handled means: in Backup, from the same master, with nothing changed
        since (state, priority, configuration), so the full rules would only
        reset Master_Down_Timer. False: call :meth:`advertisement_received`.
        """
        r = self._repeat
        if r is None or not self.repeats(adv, source):
            return False
        self.master_down_at = now + r[4]
        return True

    def repeats(self, adv: Advertisement, source: IPAddress) -> bool:
        """Would :meth:`advertisement_repeated` handle ``adv`` from ``source`` now? (No change.)"""
        r = self._repeat
        return (
            r is not None
            and r[0] is adv
            and r[1] is source
            and r[2] is self.config
            and r[3] == self.priority
            and self.state is State.BACKUP
        )

    def advertisement_received(
        self, adv: Advertisement, source: IPAddress, now: float
    ) -> list[Action]:
        """RFC 9568 6.4.2 (Backup) and 6.4.3 (Master): an ADVERTISEMENT arrives.

        The packet has already passed the codec's checks and the VRID demux;
        the rules that need this router's configuration are checked here.
        """
        self._verify(adv)
        if self.state is State.BACKUP:
            return self._backup_received(adv, source, now)
        if self.state is State.MASTER:
            return self._master_received(adv, source, now)
        return []

    def set_priority(self, priority: int, now: float) -> list[Action]:
        """Health checks changed the effective priority."""
        if priority == self.priority:
            return []
        self.priority = priority
        if self.state is State.MASTER:
            # Tell the backups now rather than at the next Adver_Timer: a
            # demoted master is then replaced up to one interval sooner.
            self.adver_at = now + self.advert_interval
            return [SendAdvertisement(priority)]
        return []

    def set_fault(self, reason: str, active: bool, now: float) -> list[Action]:
        """Enter FAULT when the first fault appears, leave it when the last one clears."""
        before = self.faults
        self.faults = before | {reason} if active else before - {reason}
        if self.state is State.INITIALIZE or bool(before) == bool(self.faults):
            return []
        if self.faults:
            actions: list[Action] = []
            if self.state is State.MASTER:
                actions += [SendAdvertisement(PRIORITY_RELEASE), ReleaseAddresses()]
            return [*actions, self._enter(Event.FAULT, self._fault_reason(), now)]
        return self._join(now, f"recovered from fault ({reason})")

    # -- RFC 9568 6.4.2: Backup ------------------------------------------------

    def _backup_received(self, adv: Advertisement, source: IPAddress, now: float) -> list[Action]:
        self._repeat = None
        if adv.priority == PRIORITY_RELEASE:
            # The master is leaving: take over after Skew_Time only.
            self.master_down_at = now + self.skew_time()
            return []
        if source != self.master_address:
            self.master_address = source
            self._master_best = adv.priority
            self._lower_master_since = None
        self._master_best = max(self._master_best, adv.priority)
        if adv.priority >= self.priority:
            # Not a lower-priority master (any more): preempt_delay counts from scratch.
            self._lower_master_since = None
        if adv.priority >= self.priority or not self._may_preempt(adv, now):
            if self.config.version == 3:
                self.master_adver_interval_cs = adv.interval_cs
            mdi = self.master_down_interval()
            self.master_down_at = now + mdi
            # The same advertisement again would take this branch again and change
            # nothing else, unless preempt_delay's clock (a lower master, preempt on)
            # or a demotion (below the master's best) is involved.
            if adv.priority == self._master_best and (
                adv.priority >= self.priority or not self.config.preempt
            ):
                self._repeat = (adv, source, self.config, self.priority, mdi)
            else:
                self._repeat = None
            return []
        # Otherwise discard: the master-down timer runs out and we preempt.
        self._repeat = None
        return []

    def _may_preempt(self, adv: Advertisement, now: float) -> bool:
        """May this backup displace a master advertising a lower priority than its own?"""
        if adv.priority < self._master_best:
            return True  # the master was demoted by its checks: never keep it sticky
        if not self.config.preempt:
            return False
        if self._lower_master_since is None:
            self._lower_master_since = now
        return now - self._lower_master_since >= self.config.preempt_delay

    def _become_master(self, event: Event, reason: str, now: float) -> list[Action]:
        """RFC 9568 6.4.2: Master_Down_Timer fires (also 6.4.1 for the owner)."""
        self.master_down_at = None
        self.adver_at = now + self.advert_interval
        self.master_address = self.config.primary_address
        self._announced_at = now
        return [
            self._enter(event, reason, now),
            SendAdvertisement(self.priority),
            AcquireAddresses(),
        ]

    # -- RFC 9568 6.4.3: Master ------------------------------------------------

    def _master_received(self, adv: Advertisement, source: IPAddress, now: float) -> list[Action]:
        if adv.priority == PRIORITY_RELEASE:
            # Another router released: assert ourselves at once.
            self.adver_at = now + self.advert_interval
            return [SendAdvertisement(self.priority)]
        if adv.priority > self.priority or (
            adv.priority == self.priority and source.packed > self.config.primary_address.packed
        ):
            self.adver_at = None
            if self.config.version == 3:
                self.master_adver_interval_cs = adv.interval_cs
            self.master_address = source
            self._master_best = adv.priority
            self._lower_master_since = None
            self.master_down_at = now + self.master_down_interval()
            reason = f"higher priority master {source} (priority {adv.priority})"
            # Beyond the RFC: one last advertisement at our own priority. If we
            # were both master (a healed partition), the winner may not have
            # heard us yet; this makes it see a lower-priority master and
            # announce again, so clients that followed us re-learn its MAC.
            # On the wire it is an ordinary advertisement, harmless to others.
            return [
                SendAdvertisement(self.priority),
                ReleaseAddresses(),
                self._enter(Event.PREEMPTED, reason, now),
            ]
        # We stay master. Clients that sat with the other master during a
        # partition still point their ARP caches at it: announce again, at
        # most once per advertisement interval.
        if now - self._announced_at >= self.advert_interval:
            self._announced_at = now
            return [Announce(f"lower priority master {source} (priority {adv.priority}) heard")]
        return []

    # -- helpers -----------------------------------------------------------------

    def _join(self, now: float, reason: str) -> list[Action]:
        """RFC 9568 6.4.1: the owner becomes master at once, everybody else backup."""
        if self.priority == PRIORITY_OWNER:
            return self._become_master(
                Event.JOIN_AS_OWNER, f"{reason}: address owner (priority 255)", now
            )
        self.master_adver_interval_cs = self.config.interval_cs
        self.master_down_at = now + self.master_down_interval()
        self.master_address = None
        self._master_best = 0
        self._lower_master_since = None
        return [self._enter(Event.JOIN, reason, now)]

    def _verify(self, adv: Advertisement) -> None:
        if adv.version != self.config.version:
            raise PacketError(DropReason.VERSION, f"version {adv.version}")
        if adv.version == 2:
            # RFC 3768 7.1: the interval MUST match the configured one; the
            # authentication type and data must match ours.
            if adv.interval_cs != self.config.interval_cs:
                raise PacketError(
                    DropReason.INTERVAL_MISMATCH,
                    f"interval {adv.interval_cs / 100:g}s, configured "
                    f"{self.config.interval_cs / 100:g}s",
                )
            if adv.auth_type != self.config.auth_type or (
                adv.auth_type and adv.auth_data != self.config.auth_data.ljust(8, b"\x00")[:8]
            ):
                raise PacketError(DropReason.AUTH, f"authentication type {adv.auth_type}")

    def _fault_reason(self) -> str:
        return "fault: " + ", ".join(sorted(self.faults))

    def _enter(self, event: Event, reason: str, now: float) -> Transition:
        self._repeat = None
        old = self.state
        new = TRANSITIONS.get((old, event))
        if new is None:
            raise IllegalTransition(f"{event.value} in {old.value} ({reason})")
        self.state = new
        if new is not State.MASTER:
            self.adver_at = None
        if new is not State.BACKUP:
            self.master_down_at = None
        return Transition(old, new, reason)
