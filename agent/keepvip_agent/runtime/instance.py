"""One VirtualIP on this node: drives the sans-IO router and carries out its actions.

The runner is the only place where protocol decisions meet the kernel:

* one real timer per instance, armed lazily at the router's deadline (an
  advertisement only moves the deadline; the timer is re-armed when it fires
  early), so a backup costs one wake-up per master-down interval;
* addresses converge to a wanted state in one task (bind, announce, renew the
  kernel lifetime; or unbind), so an acquire and a release racing each other
  cannot interleave their netlink calls;
* encoded advertisements are cached per (priority, destination): the master's
  hot path is a dict lookup and a ``sendmsg``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from keepvip_agent.health import Health, HealthBoard
from keepvip_agent.runtime.addresses import AddressManager
from keepvip_agent.runtime.checks import CheckRunner
from keepvip_agent.runtime.notify import Notifier
from keepvip_agent.vrrp.packet import (
    AUTH_NONE,
    AUTH_SIMPLE_TEXT,
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    Advertisement,
    DropReason,
    IPAddress,
    PacketError,
    encode,
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
from keepvip_api.model import Check, OnFailure, VirtualIP

if TYPE_CHECKING:
    from keepvip_agent.runtime.metrics import Metrics
    from keepvip_agent.runtime.port import Port

logger = logging.getLogger("keepvip_agent.transitions")
log = logging.getLogger(__name__)
UNSET_SOURCE = IPv4Address("0.0.0.0")
HISTORY = 10
TAKEOVER_LEAD = 0.001
"""A backup's master-down timer is armed this early and the rest waited out exactly
(see ``_on_timer``): with 20 ms adverts the skews of neighbouring priorities
differ by fractions of a millisecond, and epoll's millisecond rounding would
let the lower one win some races and delay every take-over."""
HANDOVER_GRACE = 0.02
"""How long a stopping master keeps its VIP after hearing its successor: the
successor's gratuitous ARP follows its first advertisement within a millisecond
or two, and until it lands clients still send here."""
_ADDRESS_FAULT = OnFailure(action="fault")


@dataclass(frozen=True, slots=True)
class TransitionRecord:
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
        addresses: AddressManager,
        metrics: Metrics,
    ) -> None:
        self.vip = vip
        self.spec = vip.spec
        self.name = vip.key
        self.node = node
        self.port = port
        self.vrid: int = int(self.spec.virtual_router_id or 0)
        self._addresses = addresses
        self._loop = asyncio.get_running_loop()
        self.metrics = metrics.instance(self.name)
        self.notifier = Notifier(self.name, self.spec.notify)
        self._static_peers: frozenset[IPAddress] = frozenset(self.spec.unicast_peers)
        self._discovered_peers: frozenset[IPAddress] | None = None
        self.last_heard: dict[IPAddress, float] = {}
        """Loop time of the last advertisement (priority > 0) from each allowed peer, in any state."""
        self._checks: dict[str, tuple[Check, asyncio.Task[None]]] = {}
        self.history: deque[TransitionRecord] = deque(maxlen=HISTORY)
        self.listeners: list[TransitionListener] = []
        configured = self.spec.priority_for(node)
        self.metrics.configured.set(configured)
        self.board = HealthBoard(configured, self._on_health)
        self._applied_faults: frozenset[str] = frozenset()
        auth = self.spec.authentication
        self.router = VirtualRouter(
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
            )
        )
        self._payloads: dict[tuple[int, IPAddress], bytes] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._successor: asyncio.Future[IPAddress] | None = None
        """While a stopping master hands over: resolved by the new master's first advertisement."""
        self._timer_at = math.inf
        self._want_bound = False
        self.bound = False
        self._addr_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = False
        self.problem: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        removed = await self._addresses.purge(self.spec.addresses)
        if removed:
            log.warning(
                "%s: removed leftover VIP copies before joining: %s", self.name, ", ".join(removed)
            )
        self.board.expect(self.port.health_name)
        self.port.attach(self)
        for check in self.spec.checks:
            self._start_check(check)
        # Join the election once every check has answered once (bounded by the
        # slowest timeout), so a node with a failing check never starts master.
        wait = max((c.timeout for c in self.spec.checks), default=0.0) + 0.5
        deadline = self._loop.time() + wait
        while any(v is None for v in self.board.reports.values()) and self._loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        self.router.priority = self.board.health.priority
        self.metrics.effective.set(self.router.priority)
        self._applied_faults = self.board.health.faults
        self.router.faults = self._applied_faults
        self._apply(self.router.startup(self._loop.time()))
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
        actions = self.router.shutdown(self._loop.time())
        release: list[Action] = [a for a in actions if isinstance(a, ReleaseAddresses)]
        if release and self.bound:
            self._successor = self._loop.create_future()
            self._apply([a for a in actions if not isinstance(a, ReleaseAddresses)])
            longest = self.router.advert_interval if self.spec.version == 3 else 1.0
            try:
                await asyncio.wait_for(self._successor, longest + HANDOVER_GRACE)
                await asyncio.sleep(HANDOVER_GRACE)
            except TimeoutError:
                log.info("%s: no successor heard; releasing the VIP", self.name)
            self._successor = None
            self._apply(release)
        else:
            self._apply(actions)
        self._cancel_timer()
        if self._addr_task is not None:
            await self._addr_task
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.port.detach(self)
        await self.notifier.close()
        self.metrics.remove()

    def _start_check(self, check: Check, *, expect: bool = True) -> None:
        """Run a check; with ``expect`` it counts as failing until its first result.

        That is right at start-up (never become master untested) and wrong for a
        check added to a running instance: a serving master must not fault while
        a new check has not answered yet, so such a check counts from its first
        result on.
        """
        if expect:
            self.board.expect(check.name)
        runner = CheckRunner(check, self._check_report)
        self._checks[check.name] = (check, self._spawn(runner.run()))

    def _stop_check(self, name: str) -> None:
        _, task = self._checks.pop(name)
        task.cancel()
        self.board.forget(name)

    @property
    def peers(self) -> frozenset[IPAddress] | None:
        """Who may send us advertisements (and whom we send to): None means anyone, by multicast."""
        if self._static_peers:
            return self._static_peers
        return self._discovered_peers

    def set_peers(self, peers: frozenset[IPAddress]) -> None:
        """Peers found by other means (Kubernetes: the hostIPs of the agent pods)."""
        if peers != self._discovered_peers:
            log.info("%s: peers %s", self.name, ", ".join(sorted(map(str, peers))) or "none")
        self._discovered_peers = peers

    def reconfigure(self, vip: VirtualIP) -> bool:
        """Apply a changed spec in place, without leaving the election; False if that is impossible.

        A new VRID, interface, VRRP version, election family or password is a
        different virtual router: the caller must replace the instance. Everything
        else (priorities, interval, preempt, checks, peers, addresses, notify,
        announce, lifetime) changes here, so a master stays master.
        """
        old, new = self.spec, vip.spec
        if (
            old.virtual_router_id != new.virtual_router_id
            or old.interface != new.interface
            or old.version != new.version
            or old.addresses[0].version != new.addresses[0].version
            or old.authentication != new.authentication
        ):
            return False
        self.vip, self.spec = vip, new
        self._static_peers = frozenset(new.unicast_peers)
        self.router.config = replace(
            self.router.config,
            interval_cs=new.interval_cs,
            preempt=new.preempt,
            preempt_delay=new.preempt_delay,
        )
        self._payloads.clear()
        self.notifier.notify = new.notify
        old_checks = {c.name: c for c in old.checks}
        new_checks = {c.name: c for c in new.checks}
        for name, check in old_checks.items():
            if new_checks.get(name) != check and name in self._checks:
                self._stop_check(name)
        for name, check in new_checks.items():
            if name not in self._checks:
                self._start_check(check, expect=False)
        configured = new.priority_for(self.node)
        self.metrics.configured.set(configured)
        self.board.set_configured(configured)
        removed = [a for a in old.addresses if a not in new.addresses]
        if self.bound and (removed or set(new.addresses) - set(old.addresses)):
            self._spawn(self._readdress(removed))
        log.info("%s: configuration updated in place", self.name)
        return True

    async def _readdress(self, removed: list[Any]) -> None:
        link = self.port.link
        if link is None:
            return
        await self._addresses.bind(
            link.index, self.spec.addresses, math.ceil(self.spec.address_lifetime)
        )
        await self._addresses.unbind(link.index, removed)
        self._announce()

    def set_source(self, source: IPAddress) -> None:
        if self.router.config.primary_address != source:
            self.router.config = replace(self.router.config, primary_address=source)
            self._payloads.clear()

    # -- inputs ------------------------------------------------------------------------

    def on_advertisement(self, adv: Advertisement, source: IPAddress) -> None:
        sock = self.port.sock
        peers = self.peers
        if peers is not None and source not in peers:
            if sock is not None:
                sock.count_drop(DropReason.PEER, f"{source} is not an allowed peer", source)
            return
        now = self._loop.time()
        if adv.priority:
            self.last_heard[source] = now
        try:
            actions = self.router.advertisement_received(adv, source, now)
        except PacketError as exc:
            if sock is not None:
                sock.count_drop(exc.reason, exc.detail, source)
            return
        self.metrics.received.inc()
        if self._successor is not None and adv.priority and not self._successor.done():
            self._successor.set_result(source)
        if adv.interval_cs != self.router.config.interval_cs:
            self.metrics.interval_mismatch.inc()
        if actions:
            self._apply(actions)
        elif self.router.deadline is not None and self.router.deadline < self._timer_at:
            self._rearm()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self._loop.time()
        deadline = self.router.deadline
        if deadline is not None and 0 < deadline - now <= TAKEOVER_LEAD:
            # A backup's master-down timer, armed TAKEOVER_LEAD early: wait out
            # the last stretch here rather than in epoll, which sleeps whole
            # milliseconds (asyncio rounds up). Only a real expiry gets here.
            while (now := self._loop.time()) < deadline:
                pass
        self._apply(self.router.timer_expired(now))

    def _check_report(self, check: Check, healthy: bool, detail: str) -> None:
        self.metrics.check(check.name, healthy)
        self.board.report(check.name, healthy, check.on_failure, detail)

    def _on_health(self, health: Health) -> None:
        if not self.started:
            return  # start() applies the first outcome itself
        now = self._loop.time()
        self.metrics.effective.set(health.priority)
        actions = self.router.set_priority(health.priority, now)
        old = self._applied_faults
        for reason in sorted(health.faults - old):
            actions += self.router.set_fault(reason, True, now)
        for reason in sorted(old - health.faults):
            actions += self.router.set_fault(reason, False, now)
        self._applied_faults = health.faults
        self._apply(actions)

    # -- actions -----------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        # Transitions are bookkeeping (log, metrics, notify, listeners): they run
        # after the packets and addresses, which clients are waiting for.
        transitions: list[Transition] = []
        for action in actions:
            if isinstance(action, SendAdvertisement):
                self._send(action.priority)
            elif isinstance(action, AcquireAddresses):
                self._want(True)
            elif isinstance(action, ReleaseAddresses):
                self._want(False)
            elif isinstance(action, Announce):
                log.info("%s: announcing again: %s", self.name, action.reason)
                # A burst, not one frame: the other master may still be in its own
                # take-over burst, and the client must hear us last.
                self._announce_burst()
            elif isinstance(action, Transition):
                transitions.append(action)
        for t in transitions:
            self._transition(t)
        self._rearm()

    def _transition(self, t: Transition) -> None:
        record = TransitionRecord(t.old, t.new, t.reason, time.time(), self.router.priority)
        self.history.append(record)
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
                "priority": self.router.priority,
                "node": self.node,
            },
        )
        self.metrics.transition(t.new, record.at)
        self.notifier.state_changed(t.old, t.new, self.router.priority, t.reason)
        for listener in self.listeners:
            listener(self, record)

    def _destinations(self) -> tuple[IPAddress, ...]:
        peers = self.peers
        if peers is not None:
            return tuple(peers)
        return (VRRP_GROUP_V4 if self.port.family == 4 else VRRP_GROUP_V6,)

    def _send(self, priority: int) -> None:
        sock, src = self.port.sock, self.port.source
        if sock is None or src is None:
            return
        for dst in self._destinations():
            payload = self._payloads.get((priority, dst))
            if payload is None:
                adv = Advertisement(
                    self.spec.version,
                    self.vrid,
                    priority,
                    self.router.config.interval_cs,
                    tuple(a.ip for a in self.spec.election_addresses),
                    self.router.config.auth_type,
                    self.router.config.auth_data,
                )
                payload = self._payloads[(priority, dst)] = encode(adv, src, dst)
            if sock.send(payload, src, dst):
                self.metrics.sent.inc()

    # -- timer -------------------------------------------------------------------------

    def _rearm(self) -> None:
        deadline = self.router.deadline
        if deadline is None:
            self._cancel_timer()
        elif deadline < self._timer_at:
            self._cancel_timer()
            lead = TAKEOVER_LEAD if self.router.state is State.BACKUP else 0.0
            self._timer = self._loop.call_at(deadline - lead, self._on_timer)
            self._timer_at = deadline
        # A later deadline leaves the armed timer alone: it fires, finds nothing
        # due, and re-arms at the new deadline.

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    # -- addresses ---------------------------------------------------------------------

    def _want(self, bound: bool) -> None:
        self._want_bound = bound
        if self._addr_task is None or self._addr_task.done():
            if bound:
                # Binding is one synchronous netlink request per address: do it
                # now, so the gratuitous ARP leaves right behind the
                # advertisement instead of a loop iteration later.
                if not self.bound:
                    self._bind()
            else:
                self._addr_task = self._loop.create_task(self._converge())

    def _bind(self) -> None:
        """Bind (or renew) the VIPs now, announce them and keep renewing them."""
        link = self.port.link
        if link is None:
            self.bound = False
            return
        lifetime = math.ceil(self.spec.address_lifetime)
        try:
            self._addresses.bind_now(link.index, self.spec.addresses, lifetime)
        except Exception as exc:
            self._address_problem(exc)
            return
        self.bound = True
        self.metrics.bound.set(1)
        self._announce_burst()
        self._renew_task = self._spawn(self._renew(link.index, lifetime))

    async def _converge(self) -> None:
        while self.bound != self._want_bound:
            link = self.port.link
            if link is None:
                self.bound = False
                return
            if self._want_bound:
                self._bind()
                if not self.bound:
                    return
                continue
            if self._renew_task is not None:
                self._renew_task.cancel()
                self._renew_task = None
            try:
                await self._addresses.unbind(link.index, self.spec.addresses)
            except Exception as exc:
                self._address_problem(exc)
                return
            self.bound = False
            self.metrics.bound.set(0)

    def _address_problem(self, exc: Exception) -> None:
        # Master without its VIP is worse than no master: leave the election so
        # a backup takes over, and say why.
        self.problem = f"cannot {'bind' if self._want_bound else 'unbind'} addresses: {exc}"
        log.error("%s: %s", self.name, self.problem)
        if self._want_bound:
            self.board.report("addresses", False, _ADDRESS_FAULT, self.problem)
            self._spawn(self._clear_address_fault(10.0))

    async def _clear_address_fault(self, after: float) -> None:
        await asyncio.sleep(after)
        self.problem = None
        self.board.report("addresses", True, _ADDRESS_FAULT, "ok")

    async def _renew(self, index: int, lifetime: int) -> None:
        period = lifetime / 3
        refresh = self.spec.announce.refresh
        last_announce = self._loop.time()
        while True:
            await asyncio.sleep(period if not refresh else min(period, refresh))
            if self.router.state is not State.MASTER:
                continue
            try:
                await self._addresses.bind(index, self.spec.addresses, lifetime)
            except Exception as exc:
                log.error("%s: cannot renew address lifetime: %s", self.name, exc)
            if refresh and self._loop.time() - last_announce >= refresh:
                last_announce = self._loop.time()
                self._announce()

    def _announce(self) -> None:
        announcer = self.port.announcer
        # A burst armed while master must stop when we step down (the address is
        # still bound until the release task has run).
        if announcer is not None and self.bound and self.router.state is State.MASTER:
            self.metrics.announcements.inc(announcer.announce(self.spec.addresses))

    def _announce_burst(self) -> None:
        self._announce()
        a = self.spec.announce
        for i in range(1, a.count):
            self._loop.call_later(i * a.interval, self._announce)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- status ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else None
        return {
            "name": self.name,
            "node": self.node,
            "vrid": self.vrid,
            "interface": self.port.ifname,
            "addresses": [str(a) for a in self.spec.addresses],
            "state": self.router.state.value,
            "configuredPriority": self.board.configured,
            "effectivePriority": self.router.priority,
            "master": str(self.router.master_address) if self.router.master_address else None,
            "bound": self.bound,
            "faults": sorted(self.router.faults),
            "lastTransition": None
            if last is None
            else {
                "from": last.old.value,
                "to": last.new.value,
                "reason": last.reason,
                "at": last.at,
            },
        }
