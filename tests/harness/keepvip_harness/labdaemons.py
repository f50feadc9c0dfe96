"""keepalived and keepvip in a lab: what the benchmarks and the keepalived interoperability tests share.

Both need the same things in a :class:`~keepvip_tools.lab.topology.Lab`: a
keepalived or a keepvip agent started in a node namespace, a keepalived.conf
rendered from the same few numbers as a VirtualIP document, the agent's
metrics, and the lab probe's output turned into an outage. They live in the
harness (not in ``tests/netns/conftest.py``, which belongs to the netns
suite, nor in ``benchmarks/``, which tests do not import) so a benchmark run
and a test run measure with one and the same code.

Every process started here is a child of the lab (``Lab.spawn``) and is
killed with it; keepalived's VRRP child process is found through the pid file
we give it and killed by pid too, never by name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keepvip_tools.lab.config import dump, virtualip
from keepvip_tools.lab.topology import VIP4, Lab

KEEPALIVED = shutil.which("keepalived")
METRICS_PORT = 9650
IMPLEMENTATIONS = ("keepvip", "keepalived")

# What keepalived 2.2.7 logs when it rejects or doubts a VRRP packet (taken
# from the strings in its binary): checksum, TTL, version, length, type,
# address count, interval and authentication complaints.
KEEPALIVED_PROTOCOL_ERRORS = re.compile(
    r"checksum|invalid|\bbad\b|\bttl\b|TTL/HL|wrong version|mismatch|too short|too long"
    r"|unexpected|not present in MASTER advert|icast packet|passwd|auth",
    re.IGNORECASE,
)


def keepalived_version() -> str:
    if KEEPALIVED is None:
        return "not installed"
    out = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine() -> dict[str, Any]:
    """What a result depends on: cores, kernel, Python, keepalived."""
    return {
        "nproc": os.cpu_count(),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "keepalived": keepalived_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One VRRP instance, rendered as a keepalived ``vrrp_instance`` or a VirtualIP."""

    vrid: int = 51
    priority: int = 100
    interval: float = 0.1
    """Seconds; version 2 needs whole seconds."""
    version: int = 3
    addresses: tuple[str, ...] = (f"{VIP4}/24",)
    interface: str = "eth0"
    password: str | None = None
    """Version 2 simple-text authentication (keepalived ``auth_type PASS``)."""
    preempt: bool = True
    """keepalived preempts by default; keepvip does not, so the VirtualIP says it."""
    key_file: str | None = None
    """keepvip only: authenticated adverts (``authHMAC.keyFile``). keepalived 2.2.7, the one
    these machines run, has no ``auth_hmac`` (2.4 added it), so its side stays unsigned."""

    @property
    def name(self) -> str:
        family = "-6" if ":" in self.addresses[0] else ""
        return f"vip{self.vrid}{family}" + (
            "" if self.interface == "eth0" else f"-{self.interface}"
        )


def keepalived_conf(router_id: str, instances: Iterable[Instance]) -> str:
    """A keepalived.conf for these instances: no scripts, no strict mode, no GARP delay.

    ``enable_script_security`` is left at its default (off): there are no
    scripts. ``garp_master_delay 0`` turns off keepalived's second burst of
    gratuitous ARPs five seconds after becoming master, which keepvip does
    not do either.
    """
    parts = [f"global_defs {{\n    router_id {router_id}\n}}\n"]
    for inst in instances:
        vips = "\n".join(f"        {a} dev {inst.interface}" for a in inst.addresses)
        auth = ""
        if inst.password is not None:
            auth = (
                "    authentication {\n        auth_type PASS\n"
                f"        auth_pass {inst.password}\n    }}\n"
            )
        parts.append(
            f"vrrp_instance {inst.name} {{\n"
            "    state BACKUP\n"
            f"    interface {inst.interface}\n"
            f"    version {inst.version}\n"
            f"    virtual_router_id {inst.vrid}\n"
            f"    priority {inst.priority}\n"
            f"    advert_int {inst.interval:g}\n"
            "    garp_master_delay 0\n"
            + ("" if inst.preempt else "    nopreempt\n")
            + auth
            + f"    virtual_ipaddress {{\n{vips}\n    }}\n}}\n"
        )
    return "".join(parts)


def virtualip_yaml(instances: Iterable[Instance]) -> str:
    """The same instances as VirtualIP documents for ``keepvip-agent --config``."""
    docs = []
    for inst in instances:
        ms = round(inst.interval * 1000)
        extra: dict[str, Any] = {"version": inst.version, "preempt": inst.preempt}
        if inst.password is not None:
            extra["authentication"] = {"password": inst.password}
        if inst.key_file is not None:
            extra["authHMAC"] = {"keyFile": inst.key_file}
        docs.append(
            virtualip(
                inst.name,
                addresses=inst.addresses,
                vrid=inst.vrid,
                interval=f"{ms}ms",
                interface=inst.interface,
                **extra,
                priority=inst.priority,
            )
        )
    return dump(*docs)


# -- daemons -----------------------------------------------------------------------


@dataclass
class Daemon:
    """A keepvip agent or a keepalived running in one node namespace of a lab."""

    impl: str
    node: int
    proc: subprocess.Popen[Any]
    log: str
    lab: Lab
    vrrp_pidfile: Path | None = None
    _extra_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The main process (``ip netns exec`` execs the daemon, so it is the daemon)."""
        return self.proc.pid

    def pids(self) -> list[int]:
        """Every process of the daemon: keepalived's VRRP child as well as its parent."""
        pids = [self.pid]
        if self.vrrp_pidfile is not None:
            with contextlib.suppress(OSError, ValueError):
                child = int(self.vrrp_pidfile.read_text().split()[0])
                if child not in self._extra_pids:
                    self._extra_pids.append(child)
        pids += [p for p in self._extra_pids if p != self.pid]
        return pids

    def wait_ready(self, timeout: float = 10.0) -> None:
        """keepvip: /readyz answers; keepalived: its VRRP child wrote its pid file."""
        if self.impl == "keepalived":
            assert self.vrrp_pidfile is not None
            pidfile = self.vrrp_pidfile
            self.lab.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout)
            self.pids()
            return
        self.lab.wait_for(lambda: self.http("/readyz", check=False) == "ready", timeout, 0.1)

    def terminate(self) -> None:
        """A graceful stop: SIGTERM to the main process (keepalived forwards it to its child)."""
        self.pids()  # remember keepalived's child before it removes its pid file
        os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL every process of this daemon, by pid (and its own process group)."""
        pids = self.pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.lab.log_text(self.log)

    # -- keepvip only ------------------------------------------------------------

    def http(self, path: str, *, check: bool = True) -> str:
        code = (
            "import sys,urllib.request\n"
            "try:\n"
            f"    print(urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}{path}', timeout=5)"
            ".read().decode().strip())\n"
            "except Exception as e:\n"
            "    print('error', e); sys.exit(1)\n"
        )
        return self.lab.exec(
            self.lab.node_ns(self.node), sys.executable, "-c", code, check=check
        ).strip()

    def metrics(self) -> dict[str, float]:
        """The agent's Prometheus samples, keyed by their text name with labels."""
        out: dict[str, float] = {}
        for line in self.http("/metrics").splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.http("/status"))
        return result


def start_keepalived(lab: Lab, node: int, conf: str, tag: str = "") -> Daemon:
    """``keepalived -n -l -D -G -P`` with its own config and pid files in the lab's workdir."""
    if KEEPALIVED is None:
        raise RuntimeError("keepalived is not installed")
    assert lab.workdir is not None
    base = lab.workdir / f"ka-n{node}{tag}"
    path = base.with_suffix(".conf")
    path.write_text(conf)
    vrrp_pid = base.with_suffix(".vrrp.pid")
    for stale in (vrrp_pid, base.with_suffix(".pid")):
        stale.unlink(missing_ok=True)
    argv = [
        KEEPALIVED,
        "-n",  # foreground
        "-l",  # log to the console (our log file)
        "-D",  # detailed log
        "-G",  # no syslog
        "-P",  # VRRP only
        "-f",
        str(path),
        "-p",
        str(base.with_suffix(".pid")),
        "-r",
        str(vrrp_pid),
    ]
    log = f"{base.name}.log"
    proc = lab.spawn(lab.node_ns(node), argv, log=log)
    return Daemon("keepalived", node, proc, log, lab, vrrp_pidfile=vrrp_pid)


def start_keepvip(
    lab: Lab, node: int, config_yaml: str, tag: str = "", extra: Sequence[str] = ()
) -> Daemon:
    """``keepvip-agent --config FILE --node nN --metrics-port 9650`` in node N's namespace."""
    assert lab.workdir is not None
    path = lab.workdir / f"kv-n{node}{tag}.yaml"
    path.write_text(config_yaml)
    argv = [
        sys.executable,
        "-m",
        "keepvip_agent.cli",
        "--config",
        str(path),
        "--node",
        lab.node_name(node),
        "--metrics-port",
        str(METRICS_PORT),
        *extra,
    ]
    log = f"kv-n{node}{tag}.log"
    proc = lab.spawn(lab.node_ns(node), argv, log=log)
    return Daemon("keepvip", node, proc, log, lab)


def start(lab: Lab, impl: str, node: int, instances: Sequence[Instance], tag: str = "") -> Daemon:
    if impl == "keepalived":
        return start_keepalived(lab, node, keepalived_conf(f"n{node}", instances), tag)
    return start_keepvip(lab, node, virtualip_yaml(instances), tag)


def start_responders(lab: Lab) -> None:
    """The HTTP responder (answers its node's name) in every node namespace."""
    for i in range(1, lab.nodes + 1):
        lab.spawn(
            lab.node_ns(i),
            [sys.executable, "-m", "keepvip_tools.lab.responder", lab.node_name(i)],
            log=f"responder-n{i}.log",
        )


def keepalived_protocol_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if KEEPALIVED_PROTOCOL_ERRORS.search(line)]


def keepvip_drops(metrics: dict[str, float]) -> dict[str, float]:
    """Non-zero ``keepvip_vrrp_packets_dropped_total`` samples, by reason."""
    drops = {}
    for key, value in metrics.items():
        if key.startswith("keepvip_vrrp_packets_dropped_total{") and value:
            drops[key.split('reason="', 1)[1].split('"', 1)[0]] = value
    return drops


def clear_vip(lab: Lab, addresses: Sequence[str] = (f"{VIP4}/24",)) -> None:
    """Remove VIPs a killed daemon left behind, and the client's cached neighbour entry."""
    for i in range(1, lab.nodes + 1):
        for a in addresses:
            lab.exec(lab.node_ns(i), "ip", "addr", "del", a, "dev", "eth0", check=False)
    for a in addresses:
        lab.exec(lab.client_ns, "ip", "neigh", "flush", "to", a.split("/")[0], check=False)


# -- the master's advert phase ------------------------------------------------------

# Run in the bridge namespace: print the monotonic time of every VRRP packet
# that node N's port receives from N (only VRID V's, when given). CLOCK_MONOTONIC is shared by all
# namespaces, so the benchmark can time a cut against the master's adverts.
_SNIFFER = """
import socket, sys, time
port, src = sys.argv[1], socket.inet_aton(sys.argv[2])
vrid = int(sys.argv[3]) if len(sys.argv) > 3 else None  # None: every virtual router's
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: before the bridge
s.bind((port, 0))
while True:
    f = s.recv(64)
    if len(f) > 34 and f[12:14] == b"\\x08\\x00" and f[23] == 112 and f[26:30] == src and (
        vrid is None or f[14 + 4 * (f[14] & 15) + 1] == vrid
    ):
        sys.stdout.write(f"{time.monotonic():.6f}\\n")
        sys.stdout.flush()
"""


class AdvertWatch:
    """Times of the IPv4 advertisements node ``i`` sends, seen on its bridge port.

    ``vrid``: only that virtual router's (a node carrying many VirtualIPs sends many).
    """

    def __init__(self, lab: Lab, i: int, vrid: int | None = None) -> None:
        only = [] if vrid is None else [str(vrid)]
        self._proc = lab.spawn(
            lab.bridge_ns,
            [sys.executable, "-c", _SNIFFER, f"p{i}", str(lab.node_v4(i)), *only],
            stdout=subprocess.PIPE,
        )
        self._times: queue.Queue[float] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                self._times.put(float(line))

    def next_advert(self, timeout: float) -> float:
        """The time of the first advert seen from now on."""
        now = time.monotonic()
        end = now + timeout
        while True:
            t = self._times.get(timeout=max(0.0, end - time.monotonic()))
            if t >= now:
                return t

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(5)


class Cutter:
    """A shell kept open in the bridge namespace: a cut costs one ``bridge`` exec (~1 ms),
    not a fresh ``ip netns exec`` (3 to 20 ms on a busy machine), so the cut lands
    where the benchmark aimed it. Same command as ``Lab.cut``/``Lab.heal``."""

    def __init__(self, lab: Lab) -> None:
        # Not Lab.spawn: that gives the child /dev/null as stdin. Registered in
        # lab.procs all the same, so the lab's teardown kills it.
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.bridge_ns, "sh"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        lab.procs.append(self._proc)

    def _run(self, command: str) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{command}; echo done $?\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().split()
        if answer != ["done", "0"]:
            raise RuntimeError(f"{command}: {answer}")

    def cut(self, i: int) -> None:
        self._run(f"bridge link set dev p{i} state 0")

    def heal(self, i: int) -> None:
        self._run(f"bridge link set dev p{i} state 3")


# -- the client's view -------------------------------------------------------------


def read_probe(path: Path) -> list[tuple[float, str]]:
    return parse_probe(path.read_text())


def parse_probe(text: str) -> list[tuple[float, str]]:
    """The probe's lines as (monotonic time, who answered or "-"); partial lines skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out.append((float(parts[0]), parts[1]))
    return out


def unanswered(
    seen: Iterable[tuple[float, str]], start: float = -math.inf, end: float = math.inf
) -> list[float]:
    """Each stretch without an answer in [start, end] that an answer ended, in seconds."""
    gaps, since = [], None
    for at, who in seen:
        if not start <= at <= end:
            continue
        if who == "-":
            since = at if since is None else since
        elif since is not None:
            gaps.append(at - since)
            since = None
    return gaps


def answerers(
    seen: Iterable[tuple[float, str]], start: float = -math.inf, end: float = math.inf
) -> list[str]:
    """The nodes that answered in [start, end], in order, each run of one node once."""
    out: list[str] = []
    for at, who in seen:
        if start <= at <= end and who != "-" and (not out or out[-1] != who):
            out.append(who)
    return out


@dataclass(frozen=True)
class Outage:
    event: float
    """Monotonic time of the cut or the signal."""
    first_new: float | None
    """Start of the first request the new master answered."""
    last_old: float | None
    """Start of the last request the old master answered before that."""
    new_node: str | None

    @property
    def to_new_master(self) -> float | None:
        """Event to the first answer from another node."""
        return None if self.first_new is None else self.first_new - self.event

    @property
    def gap(self) -> float | None:
        """What the client saw: no answer from the later of the event and the old master's
        last answer until the new master's first (the cut and ``to_new_master`` coincide)."""
        if self.first_new is None:
            return None
        start = self.event if self.last_old is None else max(self.event, self.last_old)
        return self.first_new - start


def outage(lines: Iterable[tuple[float, str]], event: float, old: str) -> Outage:
    """Merge probe lines (any number of probes) and find the handover around ``event``."""
    merged = sorted(lines)
    first_new = new_node = None
    for t, who in merged:
        if who not in ("-", old):
            first_new, new_node = t, who
            break
    last_old = None
    for t, who in merged:
        if first_new is not None and t >= first_new:
            break
        if who == old:
            last_old = t
    return Outage(event, first_new, last_old, new_node)


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc/<pid>/stat, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
