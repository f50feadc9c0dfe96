"""Standalone health checks: TCP connect, HTTP GET, exec, link state.

Each check is its own asyncio task with interval, timeout, rise and fall; a
probe never blocks the protocol loop (subprocesses and sockets are awaited,
and every probe is bounded by its timeout). An exec check whose command
cannot start is a *failure* with the reason logged: keepalived users have
been bitten by script errors counted as success. :class:`CheckSet` keeps one
instance's checks running and in step with its spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from keepvip_agent.health import HealthBoard
from keepvip_agent.runtime.httpwire import CertificateError, HTTPCheckError, get_status
from keepvip_agent.runtime.tlscontext import TLSContexts, TLSSetupError
from keepvip_api.model import Check

if TYPE_CHECKING:
    from keepvip_agent.runtime.metrics import InstanceMetrics

logger = logging.getLogger(__name__)

Reporter = Callable[[Check, bool, str], None]


async def probe(check: Check, tls: TLSContexts | None = None) -> tuple[bool, str]:
    """Run one probe within its timeout; return (healthy, detail).

    ``tls`` keeps an https check's client context between probes; without it
    one is built for this probe.
    """
    try:
        async with asyncio.timeout(check.timeout):
            return await _probe(check, tls)
    except TimeoutError:
        return False, f"timed out after {check.timeout:g}s"
    except Exception as exc:  # a probe must never take the agent down
        return False, f"{type(exc).__name__}: {exc}"


async def _probe(check: Check, tls: TLSContexts | None) -> tuple[bool, str]:
    if check.tcp_socket is not None:
        t = check.tcp_socket
        try:
            _, writer = await asyncio.open_connection(t.host, t.port)
        except OSError as exc:
            return False, f"connect {t.host}:{t.port}: {exc.strerror or exc}"
        writer.close()
        return True, f"connected to {t.host}:{t.port}"
    if check.http_get is not None:
        h = check.http_get
        try:
            context = None
            if h.url.startswith("https://"):
                context = (tls or TLSContexts(h)).get()
            status = await get_status(h.url, tls=context, server_name=h.server_name)
        except CertificateError as exc:
            trusted = f"caFile {h.ca_file}" if h.ca_file else "the system's trust store"
            return False, f"GET {h.url}: {exc} (checked against {trusted})"
        except (HTTPCheckError, TLSSetupError) as exc:
            return False, f"GET {h.url}: {exc}"
        ok = status in h.expect_status if h.expect_status else 200 <= status < 400
        return ok, f"GET {h.url}: {status}"
    if check.exec is not None:
        cmd = check.exec.command
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            return False, f"cannot run {cmd[0]}: {exc.strerror or exc}"
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        return code == 0, f"{cmd[0]} exited {code}"
    if check.link is not None:
        return link_state(check.link.interface)
    raise AssertionError("validated to have one probe")  # pragma: no cover


def link_state(name: str) -> tuple[bool, str]:
    base = Path("/sys/class/net") / name
    try:
        oper = (base / "operstate").read_text().strip()
        carrier = (base / "carrier").read_text().strip() == "1"
    except FileNotFoundError:
        return False, f"interface {name} does not exist"
    except OSError:  # carrier is unreadable while the link is administratively down
        return False, f"interface {name} is down"
    if oper not in ("up", "unknown") or not carrier:
        return False, f"interface {name} is {oper}{'' if carrier else ', no carrier'}"
    return True, f"interface {name} is up"


class CheckRunner:
    """Runs one check forever, reporting on the first result and on every rise/fall."""

    def __init__(self, check: Check, report: Reporter) -> None:
        self.check = check
        self._report = report
        self.healthy: bool | None = None
        self._streak = 0
        self._tls = TLSContexts(check.http_get) if check.http_get is not None else None

    async def run(self) -> None:
        while True:
            ok, detail = await probe(self.check, self._tls)
            self._observe(ok, detail)
            await asyncio.sleep(self.check.interval)

    def _observe(self, ok: bool, detail: str) -> None:
        if self.healthy is None:
            self.healthy = ok
            self._report(self.check, ok, detail)
            return
        if ok == self.healthy:
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= (self.check.rise if ok else self.check.fall):
            self._streak = 0
            self.healthy = ok
            logger.info(
                "check %s is now %s: %s", self.check.name, "passing" if ok else "failing", detail
            )
            self._report(self.check, ok, detail)


class CheckSet:
    """The running checks of one instance, each reporting to its health board.

    A check started with the instance counts as failing until its first
    result: never become master untested. One added to a running instance
    counts from its first result on: a serving master must not fault while a
    new check has not answered yet.
    """

    def __init__(self, health: HealthBoard, metrics: InstanceMetrics) -> None:
        self._health = health
        self._metrics = metrics
        self._running: dict[str, tuple[Check, asyncio.Task[None]]] = {}

    def start(self, checks: Iterable[Check]) -> None:
        """At start-up: each check counts as failing until it has answered."""
        for check in checks:
            self._start(check, expect=True)

    def update(self, checks: Iterable[Check]) -> None:
        """A new spec: restart the changed checks, stop the removed, start the new."""
        wanted = {c.name: c for c in checks}
        for name, (check, _) in list(self._running.items()):
            if wanted.get(name) != check:
                self._stop(name)
        for name, check in wanted.items():
            if name not in self._running:
                self._start(check, expect=False)

    async def close(self) -> None:
        tasks = [task for _, task in self._running.values()]
        self._running.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, check: Check, *, expect: bool) -> None:
        if expect:
            self._health.expect(check.name)
        runner = CheckRunner(check, self._report)
        self._running[check.name] = (check, asyncio.get_running_loop().create_task(runner.run()))

    def _stop(self, name: str) -> None:
        _, task = self._running.pop(name)
        task.cancel()
        self._health.forget(name)

    def _report(self, check: Check, healthy: bool, detail: str) -> None:
        self._metrics.check(check.name, healthy)
        self._health.report(check.name, healthy, check.on_failure, detail)
