"""Prometheus metrics of the agent, one registry per process.

Per-packet paths hold pre-bound label children (``InstanceMetrics``) so a
received advertisement costs one attribute lookup and an increment, not a
label-dict resolution. The two per-packet counters (advertisements sent and
received) are plain integers on that object, added to their Prometheus
counters whenever the registry is collected (a scrape): a Prometheus counter
takes a lock per increment, and with hundreds of instances at 100 ms those
increments were a measurable share of the agent's CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from keepvip_agent.runtime import rxwatch
from keepvip_agent.vrrp.packet import DropReason
from keepvip_agent.vrrp.router import State


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._live: set[InstanceMetrics] = set()
        # First in the registry, so a collection sees the counts it adds.
        r.register(_Flush(self))
        r.register(_ReceiveThread())
        self.state = Gauge(
            "keepvip_vrrp_state",
            "1 for the instance's current VRRP state",
            ["vip", "state"],
            registry=r,
        )
        self.priority_configured = Gauge(
            "keepvip_vrrp_priority_configured",
            "Configured priority of this node",
            ["vip"],
            registry=r,
        )
        self.priority_effective = Gauge(
            "keepvip_vrrp_priority_effective",
            "Priority after health checks (what is advertised)",
            ["vip"],
            registry=r,
        )
        self.transitions = Counter(
            "keepvip_vrrp_transitions", "State transitions, by new state", ["vip", "to"], registry=r
        )
        self.last_transition = Gauge(
            "keepvip_vrrp_last_transition_timestamp_seconds",
            "Unix time of the last state transition",
            ["vip"],
            registry=r,
        )
        self.adverts_sent = Counter(
            "keepvip_vrrp_adverts_sent", "Advertisements sent", ["vip"], registry=r
        )
        self.adverts_received = Counter(
            "keepvip_vrrp_adverts_received", "Advertisements accepted", ["vip"], registry=r
        )
        self.interval_mismatch = Counter(
            "keepvip_vrrp_interval_mismatch",
            "v3 advertisements accepted with another interval than configured (learned, RFC 9568 6.4.2)",
            ["vip"],
            registry=r,
        )
        self.dropped = Counter(
            "keepvip_vrrp_packets_dropped",
            "Received VRRP packets dropped, by interface and reason",
            ["interface", "reason"],
            registry=r,
        )
        self.auth_dropped = Counter(
            "keepvip_vrrp_auth_dropped",
            "Advertisements refused by authHMAC, by VirtualIP and reason (missing trailer, "
            "unknown key, bad HMAC, stale, replay)",
            ["vip", "reason"],
            registry=r,
        )
        self.check_healthy = Gauge(
            "keepvip_check_healthy", "1 while a health check passes", ["vip", "check"], registry=r
        )
        self.vip_bound = Gauge(
            "keepvip_vip_bound", "1 while this node holds the VIP", ["vip"], registry=r
        )
        self.announcements = Counter(
            "keepvip_announcements",
            "Gratuitous ARP / unsolicited NA frames sent",
            ["vip"],
            registry=r,
        )

    def instance(self, vip: str) -> InstanceMetrics:
        m = InstanceMetrics(self, vip)
        self._live.add(m)
        return m

    def flush(self) -> None:
        """Add the per-packet counts to their Prometheus counters (done by every collection)."""
        for m in self._live:
            m.flush()

    def drop_counter(self, interface: str) -> Callable[[DropReason], None]:
        children = {r: self.dropped.labels(interface, r.value) for r in DropReason}

        def count(reason: DropReason) -> None:
            children[reason].inc()

        return count


class InstanceMetrics:
    def __init__(self, m: Metrics, vip: str) -> None:
        self._m = m
        self.vip = vip
        self.sent = m.adverts_sent.labels(vip)
        self.received = m.adverts_received.labels(vip)
        self.sent_n = 0
        """Advertisements sent since the last :meth:`flush` (``+= 1`` on the hot path)."""
        self.received_n = 0
        """Advertisements accepted since the last :meth:`flush`."""
        self.before_flush: Callable[[], None] | None = None
        """Brings ``received_n`` up to date (the receive thread counts some elsewhere)."""
        self.interval_mismatch = m.interval_mismatch.labels(vip)
        self.announcements = m.announcements.labels(vip)
        self.bound = m.vip_bound.labels(vip)
        self.configured = m.priority_configured.labels(vip)
        self.effective = m.priority_effective.labels(vip)
        self._states = {s: m.state.labels(vip, s.value) for s in State}
        self.set_state(State.INITIALIZE)

    def set_state(self, state: State) -> None:
        for s, g in self._states.items():
            g.set(1 if s is state else 0)

    def transition(self, new: State, unix_time: float) -> None:
        self.set_state(new)
        self._m.transitions.labels(self.vip, new.value).inc()
        self._m.last_transition.labels(self.vip).set(unix_time)

    def auth_dropped(self, reason: DropReason) -> None:
        self._m.auth_dropped.labels(self.vip, reason.value).inc()

    def check(self, name: str, healthy: bool) -> None:
        self._m.check_healthy.labels(self.vip, name).set(1 if healthy else 0)

    def flush(self) -> None:
        if self.before_flush is not None:
            self.before_flush()
        if self.sent_n:
            self.sent.inc(self.sent_n)
            self.sent_n = 0
        if self.received_n:
            self.received.inc(self.received_n)
            self.received_n = 0

    def remove(self) -> None:
        """Forget this instance's series when its VirtualIP goes away."""
        self._m._live.discard(self)
        for metric in (
            self._m.adverts_sent,
            self._m.adverts_received,
            self._m.interval_mismatch,
            self._m.announcements,
            self._m.vip_bound,
            self._m.priority_configured,
            self._m.priority_effective,
            self._m.last_transition,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(self.vip)
        for s in State:
            with contextlib.suppress(KeyError):
                self._m.state.remove(self.vip, s.value)
        for reason in DropReason:
            with contextlib.suppress(KeyError):
                self._m.auth_dropped.remove(self.vip, reason.value)


class _Flush:
    """A collector that yields nothing: collecting it flushes the per-packet counts."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        self._metrics.flush()
        return []


class _ReceiveThread:
    """What the receive thread (:mod:`.rxwatch`) did without Python."""

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        found = rxwatch.totals()
        yield CounterMetricFamily(
            "keepvip_rx_thread_absorbed",
            "Advertisements the receive thread took as repeats of the one accepted last",
            value=found.get("matched", 0),
        )
        yield CounterMetricFamily(
            "keepvip_rx_thread_sent",
            "Periodic advertisements the receive thread sent for masters",
            value=found.get("sent", 0),
        )
        yield CounterMetricFamily(
            "keepvip_rx_thread_overflow",
            "Datagrams the receive thread dropped because the agent fell behind",
            value=found.get("dropped", 0),
        )
