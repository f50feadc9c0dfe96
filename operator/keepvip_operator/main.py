"""``keepvip-operator``: run the kopf operator with settings from the command line and environment.

With leader election (the default in a cluster) the process first waits as
standby until it holds the Lease (leader.py), and only then starts kopf, so
no handler and no resync loop ever runs in a standby. While standby it
answers the liveness endpoint itself (the chart probes it: a standby is
healthy, and must be Ready for a rolling update to proceed). A leader that
loses the Lease stops kopf and :func:`run` raises :class:`LeadershipLost`:
the process exits with status 1 and restarts as standby, as client-go's
controllers do. On SIGTERM kopf stops first, then the Lease is released, so
a standby takes over within its retry period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import kopf

from keepvip_operator import handlers
from keepvip_operator.kube import Kube
from keepvip_operator.leader import (
    Election,
    LeaderElector,
    LeaseStore,
    Timing,
    default_identity,
)
from keepvip_operator.settings import OperatorSettings, parse

logger = logging.getLogger(__name__)
LOST_EXIT_STATUS = 1


class LeadershipLost(Exception):
    """The Lease was lost while kopf ran; kopf has been stopped."""


# Event handlers that only poke the resync loop run on every watch event (agents'
# heartbeats included); kopf logs each success at INFO, which would drown the log.
QUIET_HANDLERS = (
    "virtualip_event",
    "agent_pod_event",
    "agent_daemonset_event",
    "node_event",
    "node_lease_event",
    "fronted_service_event",
    "lb_service_event",
    "lb_pool_event",
    "lb_virtualip_event",
)


class _QuietPokes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(text == f"Handler {h!r} succeeded." for h in QUIET_HANDLERS)


def operator_args(settings: OperatorSettings) -> dict[str, Any]:
    """The arguments of ``kopf.run``/``kopf.operator`` for these settings (with a fresh registry)."""
    registry = kopf.OperatorRegistry()
    ctx = handlers.Context.create(settings)
    handlers.register(registry, ctx)
    namespaced = bool(settings.watch_namespaces)
    return {
        "registry": registry,
        "settings": handlers.kopf_settings(settings),
        "standalone": settings.peering_name is None,
        "peering_name": settings.peering_name,
        "clusterwide": not namespaced,
        # The agents' namespace too: the node agent DaemonSet, its pods and Leases live there.
        "namespaces": sorted({*settings.watch_namespaces, settings.agent_namespace or ""} - {""})
        if namespaced
        else [],
        "liveness_endpoint": settings.liveness_endpoint,
        "memo": kopf.Memo(context=ctx),
    }


async def run(
    settings: OperatorSettings,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run until ``stop_flag`` (an asyncio or threading Event/Future) is set; for embedding and tests.

    With ``settings.leader_election``, kopf runs only while the Lease is held;
    ``ready_flag`` is set once kopf is ready, that is as leader. Raises
    :class:`LeadershipLost` if the Lease is lost.
    """
    if not settings.agent_namespace:
        raise ValueError("the node agents need agent_namespace")
    if not settings.leader_election:
        await kopf.operator(**operator_args(settings), stop_flag=stop_flag, ready_flag=ready_flag)
        return
    if not settings.leader_election_namespace:
        raise ValueError("leader election needs leader_election_namespace")
    timing = Timing(
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    )
    election = Election(settings.leader_election_identity or default_identity(), timing)
    kube = Kube.connect(settings.kubeconfig)  # its own connections: renewals never queue
    store = LeaseStore(
        kube, settings.leader_election_namespace, settings.leader_election_lease_name
    )
    elector = LeaderElector(store, election)
    stop = asyncio.Event()
    stopper = asyncio.create_task(_relay(stop_flag, stop), name="keepvip stop flag")
    try:
        with _signals_set(stop):
            async with _standby_health(settings.liveness_endpoint, elector):
                leading = await _unless_stopped(elector.acquire(), stop)
            if leading:
                await _lead(settings, elector, stop, ready_flag)
    finally:
        stopper.cancel()
        elector.close()
        kube.close()


async def _lead(
    settings: OperatorSettings, elector: LeaderElector, stop: asyncio.Event, ready_flag: Any
) -> None:
    """kopf until it stops or the Lease is lost; then release the Lease, or raise LeadershipLost."""
    kopf_stop = asyncio.Event()
    lost: list[str] = []

    async def hold() -> None:
        lost.append(await elector.hold())
        kopf_stop.set()

    async def relay() -> None:
        await stop.wait()
        kopf_stop.set()

    args = operator_args(settings)

    @kopf.on.cleanup(registry=args["registry"], id="leader_election_stopping")
    async def stopping(**_: Any) -> None:
        # kopf stopping on its own (SIGTERM) leaves its waiter on our stop flag pending,
        # and waits 5 s for it before it returns: that would delay the release.
        kopf_stop.set()

    # Created before kopf starts: kopf ignores the tasks older than itself when it stops.
    holder = asyncio.create_task(hold(), name="keepvip lease holder")
    relay_task = asyncio.create_task(relay(), name="keepvip stop relay")
    op = asyncio.create_task(
        kopf.operator(**args, stop_flag=kopf_stop, ready_flag=ready_flag), name="kopf operator"
    )
    try:
        await asyncio.wait({op, holder}, return_when=asyncio.FIRST_COMPLETED)
        if lost:
            # A standby may take over once the lease duration has passed since our last
            # renewal; the renew deadline came earlier. kopf gets what is left to stop.
            grace = max(1.0, elector.timing.lease_duration - elector.timing.renew_deadline)
            _done, pending = await asyncio.wait({op}, timeout=grace)
            if pending:
                logger.error("kopf did not stop within %.0fs of losing the Lease: cancelled", grace)
                op.cancel()
                await asyncio.gather(op, return_exceptions=True)
            raise LeadershipLost(lost[0])
        await op  # kopf stopped by itself (SIGTERM, stop flag) or failed: raise its error
    finally:
        for task in (holder, relay_task):
            task.cancel()
        await asyncio.gather(holder, relay_task, return_exceptions=True)
        if not lost:
            if not op.done():  # cancelled from outside
                op.cancel()
                await asyncio.gather(op, return_exceptions=True)
            await elector.release()


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` to its end (True), or cancel it once ``stop`` is set (False)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            t.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()  # its error, if it failed
    return True


async def _relay(flag: Any, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``flag`` (None, an asyncio or threading Event, or a Future) is set."""
    if flag is None:
        return
    if isinstance(flag, asyncio.Event):
        await flag.wait()
    elif isinstance(flag, asyncio.Future):
        await flag
    else:  # threading.Event: polled, as a thread blocked in wait() would hold up the loop's exit
        while not flag.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    stop.set()


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (main thread only); kopf installs its own while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def _standby_health(endpoint: str | None, elector: LeaderElector) -> AsyncIterator[None]:
    """Answer kopf's liveness endpoint (same address and path) until the block ends.

    The leader's kopf serves it from its start; in between, a probe may find
    the port closed for the second kopf needs to start, which the chart's
    probes (failureThreshold 3) absorb.
    """
    if not endpoint:
        yield
        return
    url = urlsplit(endpoint)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, TimeoutError, ValueError):
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
            target = request.split(b" ", 2)[1].decode(errors="replace") if b" " in request else ""
            ok = urlsplit(target).path == (url.path or "/")
            body = json.dumps({"leader": False, "holder": elector.election.holder}).encode()
            status = b"200 OK" if ok else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
                + body
            )  # fmt: skip
            await writer.drain()
        writer.close()

    try:
        server = await asyncio.start_server(
            answer, url.hostname, url.port or 80, reuse_address=True
        )
    except OSError as exc:  # as kopf does with its endpoint: say so, and run on
        logger.error("standby liveness endpoint %s: %s", endpoint, exc)
        yield
        return
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse(argv)
    if not settings.agent_namespace:
        print(
            "keepvip-operator: error: agent-namespace: unknown "
            "(set it, or POD_NAMESPACE from the downward API)",
            file=sys.stderr,
        )
        return 2
    level = settings.log_level
    kopf.configure(debug=level == "debug", quiet=level in ("warning", "error"))
    if level != "debug":
        logging.getLogger("kopf.objects").addFilter(_QuietPokes())
    logger.info(
        "keepvip-operator: agent image %s, watching %s",
        settings.agent_image,
        ", ".join(settings.watch_namespaces) or "all namespaces",
    )
    with asyncio.Runner() as runner:
        try:
            runner.run(run(settings))
        except LeadershipLost as exc:
            logger.error(
                "exiting: leadership lost (%s); the restarted process waits as standby", exc
            )
            # At once: the runner's close would wait for API calls still in flight in worker
            # threads (up to their 30 s timeout), and the pod must restart as standby now.
            logging.shutdown()
            os._exit(LOST_EXIT_STATUS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
