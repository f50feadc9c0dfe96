"""One VirtualIP on this node: drives the sans-IO router and carries out its actions.

The runner is a thin driver: inputs (advertisements from the :class:`~.port.Port`,
its timer, health changes from the :class:`~keepvip_agent.health.HealthBoard`
that its :class:`~.checks.CheckSet`, its port and the Kubernetes glue report
to) go into the router, and the router's actions come out to the wire, to
:class:`~.binding.Binding` (the addresses) and to the bookkeeping (log,
metrics, notify, listeners). What it owns itself:

* one deadline per instance in the agent's :class:`~.deadlines.Deadlines`,
  armed lazily at the router's deadline (an advertisement only moves the
  deadline; it is re-armed when it comes early), so a backup costs one
  wake-up per master-down interval, shared with every instance due then;
* encoded advertisements with their socket's send function, cached per
  priority for every destination: the router builds the advertisement, the
  master's hot path is a dict lookup and a ``sendmsg`` per destination;
* the short path of a backup's most common input, the advertisement it
  accepted last arriving again (the same object from the decode cache):
  the router resets its timer (:meth:`~keepvip_agent.vrrp.router.VirtualRouter.advertisement_repeated`)
  and the runner counts it and notes the time, nothing else;
* where the sockets have the receive thread (:mod:`.rxwatch`), the steady
  state handed to the thread: a backup *expects* its master's advertisement
  there (the thread absorbs the repeats and keeps the master-down deadline),
  a master has the thread send its periodic advertisement. The runner
  *settles* (learns the counts and the last time, and the router its timer)
  before anything else reaches the router, or when the thread ends it (the
  deadline passed, or the socket changed);
* the graceful handover of :meth:`InstanceRunner.stop`.

The Kubernetes glue uses only the small public surface below ``# -- public``
(name, node, family, state, priority, faults, source, health, transitions,
last_heard, add_listener, set_peers), never the router or the port.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from keepvip_agent.health import Health, HealthBoard
from keepvip_agent.runtime.binding import AddressBackend, Binding, VipAddress
from keepvip_agent.runtime.checks import CheckSet
from keepvip_agent.runtime.deadlines import deadlines
from keepvip_agent.runtime.keyfile import KeyFileWatch
from keepvip_agent.runtime.notify import Notifier
from keepvip_agent.runtime.port import INTERFACE_FAULT, Port
from keepvip_agent.runtime.rxwatch import Counts, RxWatch
from keepvip_agent.runtime.vrrp_socket import VrrpSocket
from keepvip_agent.vrrp.authstate import (
    AdvertAuth,
    AuthSettings,
    Keyring,
    Mode,
    default_window,
)
from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    AUTH_SIMPLE_TEXT,
    Advertisement,
    DropReason,
    IPAddress,
    PacketError,
    encode,
    finish,
    multicast_group,
    unsummed,
)
from keepvip_agent.vrrp.router import (
    AcquireAddresses,
    Action,
    Announce,
    ReleaseAddresses,
    RouterConfig,
    SendAdvertisement,
    State,
    Transition,
    VirtualRouter,
)
from keepvip_api.model import OnFailure, VirtualIP

if TYPE_CHECKING:
    from keepvip_agent.runtime.metrics import Metrics

logger = logging.getLogger("keepvip_agent.transitions")
log = logging.getLogger(__name__)
UNSET_SOURCE = IPv4Address("0.0.0.0")
HISTORY = 10
TAKEOVER_LEAD = 0.001
"""A backup's master-down timer is armed this early and the rest waited out exactly
(see ``on_deadline``): with 20 ms adverts the skews of neighbouring priorities
differ by fractions of a millisecond, and epoll's millisecond rounding would
let the lower one win some races and delay every take-over."""
ADVERT_EARLY = 0.002
"""How early a master's periodic advertisement may go out to share a wake-up with others
(at most a twentieth of its interval); its schedule is kept: the next one is due a whole
interval after the one it replaced was due."""
KEYS_HEALTH = "authHMAC keys"
"""The health source of an instance with ``authHMAC``: a fault until its first keys load."""
KEYS_FAULT = OnFailure(action="fault")
HANDOVER_GRACE = 0.02
"""How long a stopping master keeps its VIP after hearing its successor: the
successor's gratuitous ARP follows its first advertisement within a millisecond
or two, and until it lands clients still send here."""


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One state change, as kept in :attr:`InstanceRunner.transitions` and given to listeners."""

    old: State
    new: State
    reason: str
    at: float
    """Unix time."""
    priority: int


TransitionListener = Callable[["InstanceRunner", TransitionRecord], None]


class InstanceRunner:
    def __init__(
        self,
        vip: VirtualIP,
        node: str,
        port: Port,
        addresses: AddressBackend,
        metrics: Metrics,
    ) -> None:
        self.vip = vip
        self.spec = vip.spec
        self.name = vip.key
        self.node = node
        self.port = port
        self.vrid: int = int(self.spec.virtual_router_id or 0)
        self._loop = asyncio.get_running_loop()
        self._metrics = metrics.instance(self.name)
        self._notifier = Notifier(self.name, self.spec.notify)
        self._static_peers: frozenset[IPAddress] = frozenset(self.spec.unicast_peers)
        self._discovered_peers: frozenset[IPAddress] | None = None
        self._last_heard: dict[IPAddress, float] = {}
        self._last_heard_view: Mapping[IPAddress, float] = MappingProxyType(self._last_heard)
        self._history: deque[TransitionRecord] = deque(maxlen=HISTORY)
        self._listeners: list[TransitionListener] = []
        self.started = False
        configured = self.spec.priority_for(node)
        self._metrics.configured.set(configured)
        self._health = HealthBoard(configured, self._on_health)
        self._checks = CheckSet(self._health, self._metrics)
        self._applied_faults: frozenset[str] = frozenset()
        auth = self.spec.authentication
        self._router = VirtualRouter(
            RouterConfig(
                vrid=self.vrid,
                version=self.spec.version,
                priority=configured,
                interval_cs=self.spec.interval_cs,
                primary_address=UNSET_SOURCE,
                preempt=self.spec.preempt,
                preempt_delay=self.spec.preempt_delay,
                auth_type=AUTH_SIMPLE_TEXT if auth else AUTH_NONE,
                auth_data=auth.password.encode() if auth else b"",
                addresses=tuple(a.ip for a in self.spec.election_addresses),
            )
        )
        self._binding = Binding(
            self.name,
            self.spec,
            port,
            addresses,
            self._metrics,
            self._health,
            lambda: self._router.state is State.MASTER,
        )
        self._payloads: dict[tuple[int, IPAddress], bytes] = {}
        self._pdus: dict[int, bytes] = {}
        """With authHMAC: the unsigned PDU per priority (each advert gets a fresh trailer)."""
        self._auth: AdvertAuth | None = None
        self._auth_drops: dict[str, int] = {}
        self._key_watch: KeyFileWatch | None = None
        if self.spec.auth_hmac is not None:
            self._health.expect(KEYS_HEALTH)
        self._group = (multicast_group(port.family),)
        self._deadlines = deadlines()
        self._wire: dict[int, list[tuple[bytes, Callable[[bytes], bool]]]] = {}
        """Per priority: (payload, send) for each destination, on :attr:`_wire_sock`."""
        self._wire_sock: object = None
        self._repeat: Advertisement | None = None
        """The advertisement accepted last, if hearing it again only resets the router's timer."""
        self._repeat_src: IPAddress | None = None
        self._heard_at: float | None = None
        """When :attr:`_repeat` last came again (folded into ``_last_heard`` when read)."""
        self._successor: asyncio.Future[IPAddress] | None = None
        """While a stopping master hands over: resolved by the new master's first advertisement."""
        self._timer_at = math.inf
        self._handed: tuple[RxWatch, int, bool] | None = None
        """The receive thread and slot holding this instance's steady state, and whether it
        sends (a master's adverts) or expects (a backup's :attr:`_repeat`): see :meth:`_settle`."""
        self._metrics.before_flush = self._count_absorbed
        self.started = False

    # -- public: what the Kubernetes glue (and the status endpoint) may use ---------------

    @property
    def family(self) -> int:
        """The election's address family (4 or 6)."""
        return self.port.family

    @property
    def state(self) -> State:
        return self._router.state

    @property
    def priority(self) -> int:
        """The effective priority: configured, less the weights of failing ``demote`` sources."""
        return self._router.priority

    @property
    def faults(self) -> frozenset[str]:
        """The faults that keep this instance out of the election (empty when none)."""
        return self._router.faults

    @property
    def source(self) -> IPAddress | None:
        """The source (and tie-break) address in use, or None while the interface has none."""
        return self.port.source

    @property
    def health(self) -> HealthBoard:
        """Where every health source reports (expect / forget / report; configured priority)."""
        return self._health

    @property
    def transitions(self) -> Sequence[TransitionRecord]:
        """The recent state changes, oldest first."""
        return tuple(self._history)

    @property
    def last_heard(self) -> Mapping[IPAddress, float]:
        """Loop time of the last advertisement (priority > 0) from each allowed peer, in any
        state (a read-only view, current when this property is read)."""
        self._fold_heard()
        return self._last_heard_view

    def _fold_heard(self) -> None:
        self._count_absorbed()
        if self._heard_at is not None:
            assert self._repeat_src is not None
            self._last_heard[self._repeat_src] = self._heard_at
            self._heard_at = None

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(runner, record)`` after every state change."""
        self._listeners.append(listener)

    @property
    def peers(self) -> frozenset[IPAddress] | None:
        """Who may send us advertisements (and whom we send to): None means anyone, by multicast."""
        if self._static_peers:
            return self._static_peers
        return self._discovered_peers

    def set_peers(self, peers: frozenset[IPAddress] | None) -> None:
        """Peers found by other means (Kubernetes: the hostIPs of the agent pods); None: anyone."""
        self._settle()
        if peers != self._discovered_peers:
            shown = "any (multicast)" if peers is None else ", ".join(sorted(map(str, peers)))
            log.info("%s: peers %s", self.name, shown or "none")
        self._discovered_peers = peers
        self._forget_wire()

    def set_keys(self, keyring: Keyring | None, problem: str | None = None) -> None:
        """The authHMAC keys from their source (a file, a Secret), or why there are none.

        Before the first keys the instance is faulted (it could neither sign nor
        verify). Once it has keys, a key source that breaks (a bad edit, a deleted
        Secret) leaves the last good keys in use and is logged: a working router is
        not taken down by a mistake in a file.
        """
        hm = self.spec.auth_hmac
        if hm is None:
            return
        if keyring is None:
            if self._auth is None:
                self._health.report(KEYS_HEALTH, False, KEYS_FAULT, problem or "no keys")
            else:
                log.error("%s: %s; keeping the keys loaded before", self.name, problem)
            return
        now = time.time()
        if self._auth is None:
            window = hm.time_window or default_window(self.spec.advert_interval)
            settings = AuthSettings(Mode(hm.mode), hm.anti_replay == "time", window, hm.key_grace)
            self._auth = AdvertAuth(self.spec.version, self.vrid, settings, keyring)
            log.info(
                "%s: authHMAC keys %s loaded, signing with %d",
                self.name,
                sorted(keyring.keys),
                keyring.active,
            )
        elif keyring != self._auth.keyring:
            self._auth.rekey(keyring, now)
            log.info(
                "%s: authHMAC keys now %s, signing with %d",
                self.name,
                sorted(keyring.keys),
                keyring.active,
            )
        self._health.report(KEYS_HEALTH, True, KEYS_FAULT, "loaded")

    def watch_key_file(self, path: str) -> None:
        """Standalone: read the keys from ``path`` now and whenever it changes."""
        self._key_watch = KeyFileWatch(path, self.set_keys)

    @property
    def auth_drops(self) -> Mapping[str, int]:
        """Adverts refused by authHMAC, by reason (auth_replay, auth_bad_hmac, ...)."""
        return MappingProxyType(self._auth_drops)

    # -- for the port and the status endpoint ------------------------------------------

    @property
    def bound(self) -> bool:
        """Whether this node holds the VIPs now."""
        return self._binding.bound

    @property
    def addresses(self) -> Sequence[VipAddress]:
        """The VIPs (for the port, which never takes one for the link's own address)."""
        return self.spec.addresses

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self._binding.purge()
        self._health.expect(self.port.health_name)
        self.port.attach(self)
        self._checks.start(self.spec.checks)
        # Join the election once every check has answered once (bounded by the
        # slowest timeout), so a node with a failing check never starts master.
        wait = max((c.timeout for c in self.spec.checks), default=0.0) + 0.5
        deadline = self._loop.time() + wait
        health = self._health
        while any(v is None for v in health.reports.values()) and self._loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self._router.priority = self._health.health.priority
        self._metrics.effective.set(self._router.priority)
        self._applied_faults = self._health.health.faults
        self._router.faults = self._applied_faults
        self._apply(self._router.startup(self._loop.time()))
        self.started = True

    async def stop(self) -> None:
        """Graceful: a master sends priority 0, hands over, and removes the VIP before we return.

        Make before break: after the priority-0 advertisement the VIP stays bound
        until the successor's first advertisement is heard (plus
        :data:`HANDOVER_GRACE` for its gratuitous ARP to land), or until any
        backup must have taken over (a Skew_Time is below one advertisement
        interval; version 2: one second). Clients are still answered here while
        the backups count down their skew, so a drain costs them next to
        nothing instead of Skew_Time plus a take-over. The router has already
        left Master, so nothing is advertised, renewed or announced meanwhile.
        """
        self._settle()
        actions = self._router.shutdown(self._loop.time())
        release: list[Action] = [a for a in actions if isinstance(a, ReleaseAddresses)]
        if release and self._binding.bound:
            self._successor = self._loop.create_future()
            self._apply([a for a in actions if not isinstance(a, ReleaseAddresses)])
            longest = self._router.advert_interval if self.spec.version == 3 else 1.0
            try:
                async with asyncio.timeout(longest + HANDOVER_GRACE):
                    await self._successor
                await asyncio.sleep(HANDOVER_GRACE)
            except TimeoutError:
                log.info("%s: no successor heard; releasing the VIP", self.name)
            self._successor = None
            self._apply(release)
        else:
            self._apply(actions)
        self._cancel_timer()
        if self._key_watch is not None:
            self._key_watch.close()
        await self._binding.close()
        await self._checks.close()
        self.port.detach(self)
        await self._notifier.close()
        self._metrics.remove()

    def reconfigure(self, vip: VirtualIP) -> bool:
        """Apply a changed spec in place, without leaving the election; False if that is impossible.

        A new VRID, interface, VRRP version, election family or password is a
        different virtual router: the caller must replace the instance. Everything
        else (priorities, interval, preempt, checks, peers, addresses, notify,
        announce, lifetime) changes here, so a master stays master.
        """
        self._settle()
        old, new = self.spec, vip.spec
        if (
            old.virtual_router_id != new.virtual_router_id
            or old.interface != new.interface
            or old.version != new.version
            or old.addresses[0].version != new.addresses[0].version
            or old.authentication != new.authentication
            or old.auth_hmac != new.auth_hmac
        ):
            return False
        self.vip, self.spec = vip, new
        self._binding.spec = new
        self._static_peers = frozenset(new.unicast_peers)
        self._router.config = replace(
            self._router.config,
            interval_cs=new.interval_cs,
            preempt=new.preempt,
            preempt_delay=new.preempt_delay,
            addresses=tuple(a.ip for a in new.election_addresses),
        )
        self._payloads.clear()
        self._pdus.clear()
        self._forget_wire()
        self._notifier.notify = new.notify
        self._checks.update(new.checks)
        configured = new.priority_for(self.node)
        self._metrics.configured.set(configured)
        self._health.set_configured(configured)
        self._binding.readdress(old.addresses)
        log.info("%s: configuration updated in place", self.name)
        return True

    def _set_source(self, source: IPAddress) -> None:
        if self._router.config.primary_address != source:
            self._settle()
            self._router.config = replace(self._router.config, primary_address=source)
            self._payloads.clear()
            self._pdus.clear()
            self._forget_wire()

    def _forget_wire(self) -> None:
        """What the cached sends and the short path of repeats assumed has changed."""
        self._settle()
        self._wire.clear()
        self._fold_heard()
        self._repeat = None

    # -- inputs (the port calls these: see port.PortListener) ---------------------------

    def link_changed(self, health_name: str, problem: str | None, source: IPAddress | None) -> None:
        """The interface is usable (``problem`` None) or not; ``source`` is its address."""
        healthy = problem is None
        self._health.report(health_name, healthy, INTERFACE_FAULT, problem or "up")
        if healthy and source is not None:
            self._set_source(source)

    def on_advertisement(self, adv: Advertisement, source: IPAddress) -> None:
        if self._handed is not None:
            self._settle()
        now = self._loop.time()
        if adv is self._repeat and self._router.advertisement_repeated(adv, source, now):
            # The advertisement accepted last, again: the checks below passed for it
            # and nothing they depend on has changed since (see _forget_wire).
            self._heard_at = now
            self._metrics.received_n += 1
            return
        self._fold_heard()
        self._repeat = None
        sock = self.port.sock
        peers = self.peers
        if peers is not None and source not in peers:
            if sock is not None:
                sock.count_drop(DropReason.PEER, f"{source} is not an allowed peer", source)
            return
        if (adv.trailer or self.spec.auth_hmac is not None) and not self._authentic(adv, source):
            return
        if adv.priority:
            self._last_heard[source] = now
        try:
            actions = self._router.advertisement_received(adv, source, now)
        except PacketError as exc:
            if sock is not None:
                sock.count_drop(exc.reason, exc.detail, source)
            return
        self._metrics.received_n += 1
        if self._successor is not None and adv.priority and not self._successor.done():
            self._successor.set_result(source)
        if adv.interval_cs != self._router.config.interval_cs:
            self._metrics.interval_mismatch.inc()
        elif not actions and not adv.trailer and self.spec.auth_hmac is None:
            self._repeat, self._repeat_src = adv, source
            if sock is not None and sock.rx is not None and self._router.repeats(adv, source):
                self._expect(sock.rx, sock, now)
                return
        self._accepted(actions)

    def _accepted(self, actions: list[Action]) -> None:
        if actions:
            self._apply(actions)
        elif self._router.deadline is not None and self._router.deadline < self._timer_at:
            self._rearm()

    def _authentic(self, adv: Advertisement, source: IPAddress) -> bool:
        """authHMAC's verdict on an advert; a refused one is counted and logged (rate-limited)."""
        auth = self._auth
        try:
            if auth is not None:
                auth.check(adv.pdu, adv.trailer, source, time.time())
            elif self.spec.auth_hmac is not None:
                raise PacketError(DropReason.AUTH_UNKNOWN_KEY, "no authHMAC keys loaded yet")
            else:
                raise PacketError(
                    DropReason.AUTH_MISSING, "an authentication trailer, but authHMAC is not set"
                )
        except PacketError as exc:
            reason = exc.reason.value
            self._auth_drops[reason] = self._auth_drops.get(reason, 0) + 1
            self._metrics.auth_dropped(exc.reason)
            sock = self.port.sock
            if sock is not None:
                sock.count_drop(exc.reason, f"{self.name}: {exc.detail}", source)
            return False
        return True

    def on_deadline(self) -> None:
        """The deadline armed in :attr:`_deadlines` has come."""
        self._settle()
        self._timer_at = math.inf
        now = self._loop.time()
        deadline = self._router.deadline
        if deadline is not None and deadline > now and self._router.state is State.MASTER:
            # Called early to join a batch (see ADVERT_EARLY): the advert timer fires now
            # as if at its deadline, so the cadence does not drift.
            if deadline - now <= self._advert_early():
                now = deadline
        elif deadline is not None and 0 < deadline - now <= TAKEOVER_LEAD:
            # A backup's master-down timer, armed TAKEOVER_LEAD early: wait out
            # the last stretch here rather than in epoll, which sleeps whole
            # milliseconds (asyncio rounds up). Only a real expiry gets here.
            while (now := self._loop.time()) < deadline:
                pass
        self._apply(self._router.timer_expired(now))
        self._hand_sends()

    def _on_health(self, health: Health) -> None:
        if not self.started:
            return  # start() applies the first outcome itself
        self._settle()
        now = self._loop.time()
        self._metrics.effective.set(health.priority)
        actions = self._router.set_priority(health.priority, now)
        old = self._applied_faults
        for reason in sorted(health.faults - old):
            actions += self._router.set_fault(reason, True, now)
        for reason in sorted(old - health.faults):
            actions += self._router.set_fault(reason, False, now)
        self._applied_faults = health.faults
        self._apply(actions)

    # -- the receive thread's share (see rxwatch) ---------------------------------------

    def _expect(self, rx: RxWatch, sock: VrrpSocket, now: float) -> None:
        """Hand the repeats of :attr:`_repeat` (just accepted at ``now``) to the thread."""
        key, deadline = sock.current_key, self._router.deadline
        if key is None or deadline is None or deadline <= now:
            self._rearm()
            return
        slot = rx.expect(self, sock.fileno, self.vrid, key, now, deadline - now)
        if slot is None:
            self._rearm()
            return
        self._handed = (rx, slot, False)
        self._cancel_timer()  # the thread keeps the master-down deadline now

    def _hand_sends(self) -> None:
        """A master that just advertised on its timer: the thread sends the next ones."""
        router, sock, src = self._router, self.port.sock, self.port.source
        due = router.deadline
        if (
            router.state is not State.MASTER
            or due is None
            or sock is None
            or sock.rx is None
            or src is None
            or self.spec.auth_hmac is not None
            or self._successor is not None
        ):
            return
        packets = []
        for dst in self._destinations():
            payload = self._payloads.get((router.priority, dst))
            if payload is None:
                return  # not sent from here yet (no source, or no socket): stay in Python
            packets.append((payload, dst.packed))
        slot = sock.rx.send_every(
            self, sock.fileno, sock.family, sock.ifindex, src.packed, packets,
            router.advert_interval, due,
        )  # fmt: skip
        if slot is not None:
            self._handed = (sock.rx, slot, True)
            self._cancel_timer()

    def _settle(self) -> None:
        """Take the steady state back from the thread before anything else reaches the router."""
        handed = self._handed
        if handed is None:
            return
        self._handed = None
        rx, slot, sending = handed
        if sending:
            errors = rx.send_errors(slot)
            if errors is not None and errors[0]:
                log.warning(
                    "%s: %d advertisements failed to send: %s",
                    self.name, errors[0], os.strerror(errors[1]),
                )  # fmt: skip
        self._take_back(sending, rx.withdraw(slot))
        self._rearm()

    def expectation_ended(self, expired: bool, counts: Counts) -> None:
        """The thread ended it (see :class:`.rxwatch.Expecting`): run the router's timer."""
        handed, self._handed = self._handed, None
        self._take_back(handed is not None and handed[2], counts)
        deadline = self._router.deadline
        if deadline is not None and deadline <= self._loop.time():
            self.on_deadline()
        else:
            self._rearm()

    def _count_absorbed(self) -> None:
        """Bring the counts and the last arrival up to date, the thread going on."""
        if self._handed is not None:
            rx, slot, sending = self._handed
            count, last = rx.peek(slot)
            if sending:
                self._metrics.sent_n += count
            elif count and last is not None:
                self._metrics.received_n += count
                self._heard_at = last

    def _take_back(self, sending: bool, counts: Counts) -> None:
        count, last = counts
        if sending:
            self._metrics.sent_n += count
            if last is not None:
                self._router.advertisements_sent(last)
            return
        self._metrics.received_n += count
        if last is None:
            return
        self._heard_at = last
        adv, src = self._repeat, self._repeat_src
        if adv is None or src is None or not self._router.advertisement_repeated(adv, src, last):
            # Cannot happen: everything that could change the verdict settles first.
            log.error("%s: absorbed advertisements no longer repeat the last", self.name)

    # -- actions -----------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        # Transitions are bookkeeping (log, metrics, notify, listeners): they run
        # after the packets and addresses, which clients are waiting for.
        transitions: list[Transition] = []
        for action in actions:
            if isinstance(action, SendAdvertisement):
                self._send(action.priority)
            elif isinstance(action, AcquireAddresses):
                self._binding.want(True)
            elif isinstance(action, ReleaseAddresses):
                self._binding.want(False)
            elif isinstance(action, Announce):
                log.info("%s: announcing again: %s", self.name, action.reason)
                # A burst, not one frame: the other master may still be in its own
                # take-over burst, and the client must hear us last.
                self._binding.announce_burst()
            elif isinstance(action, Transition):
                transitions.append(action)
        for t in transitions:
            self._transition(t)
        self._rearm()

    def _transition(self, t: Transition) -> None:
        record = TransitionRecord(t.old, t.new, t.reason, time.time(), self._router.priority)
        self._history.append(record)
        logger.info(
            "%s: %s -> %s (%s)",
            self.name,
            t.old.value,
            t.new.value,
            t.reason,
            extra={
                "vip": self.name,
                "old_state": t.old.value,
                "new_state": t.new.value,
                "reason": t.reason,
                "priority": self._router.priority,
                "node": self.node,
            },
        )
        self._metrics.transition(t.new, record.at)
        self._notifier.state_changed(t.old, t.new, self._router.priority, t.reason)
        for listener in self._listeners:
            listener(self, record)

    def _destinations(self) -> tuple[IPAddress, ...]:
        peers = self.peers
        if peers is not None:
            return tuple(peers)
        return self._group

    def _send(self, priority: int) -> None:
        sock = self.port.sock
        wire = self._wire.get(priority)
        if wire is None or sock is not self._wire_sock:
            src = self.port.source
            if sock is None or src is None:
                return
            if self.spec.auth_hmac is not None:
                self._send_signed(priority, sock, src)
                return
            wire = self._wire_for(priority, sock, src)
        metrics = self._metrics
        for payload, send in wire:
            if send(payload):
                metrics.sent_n += 1

    def _wire_for(
        self, priority: int, sock: VrrpSocket, src: IPAddress
    ) -> list[tuple[bytes, Callable[[bytes], bool]]]:
        if sock is not self._wire_sock:
            self._wire.clear()
            self._wire_sock = sock
        wire = []
        for dst in self._destinations():
            payload = self._payloads.get((priority, dst))
            if payload is None:
                adv = self._router.advertisement(priority)
                payload = self._payloads[(priority, dst)] = encode(adv, src, dst)
            wire.append((payload, sock.sender(src, dst)))
        self._wire[priority] = wire
        return wire

    def _send_signed(self, priority: int, sock: VrrpSocket, src: IPAddress) -> None:
        """One trailer per advert (a fresh sequence), the same on every destination's copy."""
        auth = self._auth
        if auth is None:
            return  # no keys: faulted, and a priority-0 advert nobody can verify helps no one
        pdu = self._pdus.get(priority)
        if pdu is None:
            pdu = self._pdus[priority] = unsummed(self._router.advertisement(priority), src)
        trailer = auth.seal(pdu, src, time.time())
        for dst in self._destinations():
            if sock.send(finish(pdu, src, dst, trailer), src, dst):
                self._metrics.sent_n += 1

    # -- timer -------------------------------------------------------------------------

    def _rearm(self) -> None:
        deadline = self._router.deadline
        if deadline is None:
            self._cancel_timer()
        elif deadline < self._timer_at:
            if self._router.state is State.BACKUP:
                self._deadlines.arm(self, deadline - TAKEOVER_LEAD)
            else:
                self._deadlines.arm(self, deadline, self._advert_early())
            self._timer_at = deadline
        # A later deadline leaves the armed timer alone: it fires, finds nothing
        # due, and re-arms at the new deadline.

    def _advert_early(self) -> float:
        return min(ADVERT_EARLY, self._router.advert_interval / 20)

    def _cancel_timer(self) -> None:
        self._deadlines.cancel(self)
        self._timer_at = math.inf

    # -- status ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        last = self._history[-1] if self._history else None
        return {
            "name": self.name,
            "node": self.node,
            "vrid": self.vrid,
            "interface": self.port.ifname,
            "addresses": [str(a) for a in self.spec.addresses],
            "state": self._router.state.value,
            "configuredPriority": self._health.configured,
            "effectivePriority": self._router.priority,
            "master": str(self._router.master_address) if self._router.master_address else None,
            "bound": self._binding.bound,
            "faults": sorted(self._router.faults),
            **self._auth_snapshot(),
            "lastTransition": None
            if last is None
            else {
                "from": last.old.value,
                "to": last.new.value,
                "reason": last.reason,
                "at": last.at,
            },
        }

    def _auth_snapshot(self) -> dict[str, Any]:
        if self.spec.auth_hmac is None:
            return {}
        auth = self._auth
        return {
            "authHMAC": {
                "mode": self.spec.auth_hmac.mode,
                "keyIDs": sorted(auth.keyring.keys) if auth else [],
                "activeKeyID": auth.keyring.active if auth else None,
                "dropped": dict(sorted(self._auth_drops.items())),
            }
        }
