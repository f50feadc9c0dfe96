"""Drive keepvip agents in a :class:`~keepvip_tools.lab.topology.Lab` and observe them.

The tests assert on what a user or a client can see: addresses in the
kernel, /status and /metrics of each agent, answers a client gets through
the VIP, the client's neighbour cache. This module is the one place that
knows how to start agents and how to read those observations.

Design choices that are not obvious:

* /status and /metrics are read from this process by a short-lived thread
  that enters the node's network namespace with ``setns(2)`` (a network
  namespace switch is per thread, and the thread ends right after). Starting
  ``ip netns exec ... python -c`` costs about 100 ms of CPU per read on these
  machines, too slow to poll with and a load on the agents under test.
* Every time limit is derived from the protocol (:func:`master_down` and
  friends) plus one :data:`MARGIN` for scheduling on a loaded 2-core box, so
  a test states which protocol timer it waits for.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from keepvip_tools.lab.config import dump
from keepvip_tools.lab.topology import Lab

T = TypeVar("T")
Address = IPv4Address | IPv6Address

INTERVAL = 0.1
"""Advertisement interval of most tests (100 ms, as in the failover benchmark)."""
MARGIN = 1.0
"""Slack for scheduling, process start and netlink on a loaded 2-core machine."""
STARTUP = 20.0
"""An agent process is up, has joined its elections and answers /status."""
METRICS_PORT = 9650
WIRE = Path(__file__).with_name("vrrpwire.py")
"""The raw-socket helper (send crafted VRRP packets, sniff VRRP frames)."""


def skew(priority: int, interval: float = INTERVAL) -> float:
    """RFC 9568 6.1 Skew_Time."""
    return (256 - priority) * interval / 256


def master_down(priority: int, interval: float = INTERVAL) -> float:
    """RFC 9568 6.1 Master_Down_Interval: how long a backup waits after the last advert."""
    return 3 * interval + skew(priority, interval)


def takeover(priority: int, interval: float = INTERVAL) -> float:
    """Upper bound for a backup of ``priority`` to hold the VIP after the master vanished."""
    return master_down(priority, interval) + interval + MARGIN


# -- entering a network namespace from a thread ----------------------------------------

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has joined network namespace ``ns``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{ns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def http_get(ns: str, path: str, port: int = METRICS_PORT, timeout: float = 2.0) -> str | None:
    """GET ``path`` from 127.0.0.1:``port`` inside ``ns``; None if nothing answers with 200."""

    def get() -> str | None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
            return None
        return body.decode(errors="replace")

    return in_netns(ns, get)


# -- metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Parsed Prometheus samples of one scrape."""

    rows: tuple[tuple[str, Mapping[str, str], float], ...]

    def get(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            value
            for n, have, value in self.rows
            if n == name and all(have.get(k) == v for k, v in labels.items())
        )


def parse_metrics(text: str) -> Samples:
    rows = [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
    return Samples(tuple(rows))


# -- the client probe -------------------------------------------------------------------


@dataclass
class Probe:
    """A running ``keepvip_tools.lab.probe`` in the client namespace, talking to ``address``."""

    address: Address
    output: Path
    proc: subprocess.Popen[Any]

    def answers(self, since: float = 0.0) -> list[tuple[float, str]]:
        """``(monotonic time, node name or "-")`` of every attempt that started at ``since`` or later."""
        out = []
        for line in self.output.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and float(parts[0]) >= since:
                out.append((float(parts[0]), parts[1]))
        return out

    def wait_answer(self, node: str, timeout: float, since: float = 0.0) -> float:
        """Wait for an attempt started after ``since`` answered by ``node``; return its time."""
        end = time.monotonic() + timeout
        while True:
            for at, who in self.answers(since):
                if who == node:
                    return at
            if time.monotonic() >= end:
                tail = self.answers(since)[-5:]
                raise TimeoutError(
                    f"no answer from {node} via {self.address} in {timeout}s: {tail}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


# -- the agents ---------------------------------------------------------------------------


@dataclass
class Agents:
    """keepvip agents (and lab responders) in one lab's node namespaces."""

    lab: Lab
    procs: dict[int, subprocess.Popen[Any]] = field(default_factory=dict)
    responders: dict[int, subprocess.Popen[Any]] = field(default_factory=dict)
    _probes: int = 0

    @property
    def workdir(self) -> Path:
        assert self.lab.workdir is not None
        return self.lab.workdir

    def name(self, i: int) -> str:
        return self.lab.node_name(i)

    def ns(self, i: int) -> str:
        return self.lab.node_ns(i)

    # -- processes ------------------------------------------------------------------

    def write_config(self, i: int, docs: Iterable[dict[str, Any]]) -> Path:
        path = self.workdir / f"{self.name(i)}.yaml"
        path.write_text(dump(*docs))
        return path

    def start(
        self, i: int, *docs: dict[str, Any], args: Iterable[str] = ()
    ) -> subprocess.Popen[Any]:
        """Start node i's agent on these VirtualIP documents (it does not wait)."""
        config = self.write_config(i, docs)
        argv = [
            sys.executable,
            "-m",
            "keepvip_agent.cli",
            "--config",
            str(config),
            "--node",
            self.name(i),
            "--metrics-port",
            str(METRICS_PORT),
            *args,
        ]
        proc = self.lab.spawn(self.ns(i), argv, log=f"{self.name(i)}.log")
        self.procs[i] = proc
        return proc

    def start_all(self, *docs: dict[str, Any], nodes: Iterable[int] | None = None) -> None:
        """Start the same documents on several nodes at once and wait until each has joined."""
        chosen = list(nodes) if nodes is not None else list(range(1, self.lab.nodes + 1))
        for i in chosen:
            self.start(i, *docs)
        for i in chosen:
            self.wait_joined(i)

    def wait_joined(self, i: int, timeout: float = STARTUP) -> dict[str, Any]:
        """Wait until node i's agent answers /status and every instance left Initialize."""

        def joined() -> dict[str, Any] | None:
            self.assert_running(i)
            st = self.status(i)
            if st is None or not st["instances"]:
                return None
            if any(inst["state"] == "Initialize" for inst in st["instances"]):
                return None
            return st

        return self.lab.wait_for(joined, timeout)  # type: ignore[no-any-return]

    def assert_running(self, i: int) -> None:
        code = self.procs[i].poll()
        if code is not None:
            raise AssertionError(f"agent {self.name(i)} exited with {code}")

    def signal(self, i: int, sig: int) -> None:
        os.kill(self.procs[i].pid, sig)

    def kill(self, i: int) -> None:
        """SIGKILL: the agent gets no chance to hand over or clean up."""
        self.signal(i, signal.SIGKILL)
        self.procs[i].wait(timeout=10)

    def terminate(self, i: int, timeout: float = 10) -> int:
        """SIGTERM (graceful handover); return the exit status."""
        self.signal(i, signal.SIGTERM)
        return self.procs[i].wait(timeout=timeout)

    def start_responders(self, nodes: Iterable[int] | None = None) -> None:
        """The lab HTTP responder (answers its node name on port 80) on each node."""
        chosen = list(nodes) if nodes is not None else list(range(1, self.lab.nodes + 1))
        for i in chosen:
            argv = [sys.executable, "-m", "keepvip_tools.lab.responder", self.name(i)]
            self.responders[i] = self.lab.spawn(self.ns(i), argv, log=f"responder-{i}.log")
        for i in chosen:
            self.lab.wait_for(lambda i=i: self.port_open(i, 80), STARTUP)

    def port_open(self, i: int, port: int) -> bool:
        def probe() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                return False

        return in_netns(self.ns(i), probe)

    def probe(self, address: Address, every: float = 0.01) -> Probe:
        """Start the client probe against ``address`` in the background."""
        self._probes += 1
        out = self.workdir / f"probe-{self._probes}.out"
        out.touch()
        with out.open("ab") as sink:
            argv = [
                sys.executable,
                "-m",
                "keepvip_tools.lab.probe",
                str(address),
                "--every",
                str(every),
                "--timeout",
                "0.05",
            ]
            proc = self.lab.spawn(self.lab.client_ns, argv, stdout=sink)
        return Probe(address, out, proc)

    def probe_once(self, address: Address, duration: float = 0.3) -> list[str]:
        """Talk to ``address`` from the client for ``duration`` seconds; the answering names."""
        out = self.lab.exec(
            self.lab.client_ns,
            sys.executable,
            "-m",
            "keepvip_tools.lab.probe",
            str(address),
            "--every",
            "0.02",
            "--timeout",
            "0.1",
            "--duration",
            str(duration),
        )
        return [line.split()[1] for line in out.splitlines() if len(line.split()) == 2]

    def wire(self, ns: str, *args: str, timeout: float = 30) -> str:
        """Run the raw-socket helper (``vrrpwire.py``) inside ``ns``."""
        return self.lab.exec(ns, sys.executable, str(WIRE), *args, timeout=timeout)

    # -- observations ---------------------------------------------------------------

    def status(self, i: int) -> dict[str, Any] | None:
        body = http_get(self.ns(i), "/status")
        return None if body is None else json.loads(body)

    def instance(self, i: int, name: str = "web") -> dict[str, Any] | None:
        st = self.status(i)
        if st is None:
            return None
        for inst in st["instances"]:
            if inst["name"] == name:
                return inst  # type: ignore[no-any-return]
        return None

    def state(self, i: int, name: str = "web") -> str | None:
        inst = self.instance(i, name)
        return None if inst is None else inst["state"]

    def metrics(self, i: int) -> Samples:
        body = http_get(self.ns(i), "/metrics")
        if body is None:
            raise AssertionError(f"agent {self.name(i)} does not serve /metrics")
        return parse_metrics(body)

    def wait_state(self, i: int, state: str, timeout: float, name: str = "web") -> dict[str, Any]:
        """Wait until node i's instance ``name`` is in ``state``; return that instance."""

        def reached() -> dict[str, Any] | None:
            inst = self.instance(i, name)
            return inst if inst is not None and inst["state"] == state else None

        try:
            return self.lab.wait_for(reached, timeout, 0.02)  # type: ignore[no-any-return]
        except TimeoutError:
            raise AssertionError(
                f"{self.name(i)}/{name} not {state} within {timeout:.2f}s: {self.instance(i, name)}"
            ) from None

    def wait_holders(self, expected: list[int], timeout: float, address: Address) -> None:
        """Wait until exactly the nodes ``expected`` hold ``address`` in the kernel."""
        try:
            self.lab.wait_for(lambda: self.lab.holders(address) == expected, timeout, 0.01)
        except TimeoutError:
            raise AssertionError(
                f"{address} held by {self.lab.holders(address)}, not {expected}, "
                f"within {timeout:.2f}s"
            ) from None

    def settle(
        self,
        master: int,
        address: Address,
        backups: Iterable[int] | None = None,
        timeout: float = STARTUP,
        name: str = "web",
    ) -> None:
        """Wait for: ``master`` Master and sole holder of ``address``, every other node Backup
        and following it (it has heard ``master``'s adverts, not only a start-up competitor's)."""
        others = list(backups) if backups is not None else [i for i in self.procs if i != master]
        primary = self.wait_state(master, "Master", timeout, name)["master"]
        for i in others:
            self.wait_state(i, "Backup", timeout, name)
        self.wait_holders([master], timeout, address)
        for i in others:
            self.lab.wait_for(lambda i=i: self.instance(i, name)["master"] == primary, timeout)  # type: ignore[index]

    def address_line(self, i: int, address: Address) -> str | None:
        """The ``ip addr`` line of ``address`` on node i's eth0 (flags, lifetimes), if present."""
        family = "-6" if address.version == 6 else "-4"
        out = self.lab.ip(self.ns(i), family, "-o", "addr", "show", "dev", "eth0")
        for line in out.splitlines():
            fields = line.split()
            if any(f.split("/")[0] == str(address) for f in fields):
                return line
        return None

    def report(self) -> str:
        """Everything useful after a failure: logs, /status and addresses of every node."""
        parts = []
        for i in range(1, self.lab.nodes + 1):
            parts.append(f"===== {self.name(i)}: agent log =====")
            parts.append(self.lab.log_text(f"{self.name(i)}.log").rstrip() or "(empty)")
            try:
                st = self.status(i)
            except OSError as exc:
                st = {"error": str(exc)}
            parts.append(f"----- {self.name(i)}: /status -----")
            parts.append(json.dumps(st, indent=1) if st is not None else "(no answer)")
            try:
                addrs = self.lab.ip(self.ns(i), "-o", "addr", "show", "dev", "eth0")
            except Exception as exc:  # the namespace may be gone already
                addrs = str(exc)
            parts.append(f"----- {self.name(i)}: addresses -----")
            parts.append(addrs.rstrip())
        return "\n".join(parts)
