"""Build and tear down the lab topology: node and client namespaces on a private bridge.

Layout (prefix ``kvXXXX`` unique per lab, so labs and tests never collide)::

    kvXXXX-br : bridge br0 with ports p1..pN, pc   (the "switch")
    kvXXXX-n1 : eth0 192.0.2.11/24 2001:db8::11/64  (node n1)
    ...
    kvXXXX-c  : eth0 192.0.2.100/24 2001:db8::100/64 (client)

Cutting a node off uses the bridge port state (``state 0``: no forwarding,
carrier stays up), a partition the node cannot see locally; ``link_down``
drops carrier instead. Teardown kills every process this lab started and
deletes its namespaces by name, and it runs on any exception too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

V4_NET = "192.0.2"
V6_NET = "2001:db8:"
CLIENT_HOST = 100
NODE_HOST_BASE = 10
VIP4 = IPv4Address("192.0.2.50")
VIP6 = IPv6Address("2001:db8::50")


def sh(argv: Sequence[str], *, check: bool = True, timeout: float = 30) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


@dataclass
class Lab:
    nodes: int = 3
    prefix: str = field(default_factory=lambda: "kv" + secrets.token_hex(2))
    workdir: Path | None = None
    keep_workdir: bool = False
    """Keep the logs and configs after teardown (otherwise removed with the rest)."""
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    _made: list[str] = field(default_factory=list)
    _own_workdir: bool = False

    # -- names ---------------------------------------------------------------------------

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-c"

    def node_ns(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def node_name(self, i: int) -> str:
        return f"n{i}"

    def node_v4(self, i: int) -> IPv4Address:
        return IPv4Address(f"{V4_NET}.{NODE_HOST_BASE + i}")

    def node_v6(self, i: int) -> IPv6Address:
        return IPv6Address(f"{V6_NET}:{NODE_HOST_BASE + i}")

    @property
    def client_v4(self) -> IPv4Address:
        return IPv4Address(f"{V4_NET}.{CLIENT_HOST}")

    # -- build / teardown -------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def build(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._add_ns(self.bridge_ns)
        self.ip(
            self.bridge_ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        )
        self.ip(self.bridge_ns, "link", "set", "br0", "up")
        # IGMP/MLD snooping would make multicast delivery depend on join timing.
        sh(
            [
                "ip",
                "netns",
                "exec",
                self.bridge_ns,
                "ip",
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ]
        )
        for i in range(1, self.nodes + 1):
            self._add_host(self.node_ns(i), f"p{i}", str(self.node_v4(i)), str(self.node_v6(i)))
        self._add_host(self.client_ns, "pc", str(self.client_v4), f"{V6_NET}:{CLIENT_HOST}")

    def _add_ns(self, ns: str) -> None:
        sh(["ip", "netns", "add", ns])
        self._made.append(ns)
        self.ip(ns, "link", "set", "lo", "up")
        for key in ("all", "default"):
            self.sysctl(ns, f"net.ipv6.conf.{key}.accept_dad", "0")
            self.sysctl(ns, f"net.ipv6.conf.{key}.dad_transmits", "0")

    def _add_host(self, ns: str, port: str, v4: str, v6: str) -> None:
        self._add_ns(ns)
        # Create the pair in the bridge namespace, then move one end: the host's
        # own namespace never sees either end.
        self.ip(self.bridge_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0")
        self.ip(self.bridge_ns, "link", "set", "eth0", "netns", ns)
        self.ip(self.bridge_ns, "link", "set", port, "master", "br0")
        self.ip(self.bridge_ns, "link", "set", port, "up")
        self.ip(ns, "addr", "add", f"{v4}/24", "dev", "eth0")
        self.ip(ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        self.ip(ns, "link", "set", "eth0", "up")

    def teardown(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self.procs.clear()
        for ns in reversed(self._made):
            sh(["ip", "netns", "del", ns], check=False)
        self._made.clear()
        if self.workdir is not None and self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- commands -------------------------------------------------------------------------

    def ip(self, ns: str, *args: str) -> str:
        return sh(["ip", "-n", ns, *args])

    def sysctl(self, ns: str, key: str, value: str) -> None:
        sh(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])

    def exec(self, ns: str, *argv: str, check: bool = True, timeout: float = 30) -> str:
        return sh(["ip", "netns", "exec", ns, *argv], check=check, timeout=timeout)

    def spawn(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        log: str | None = None,
        env: dict[str, str] | None = None,
        stdout: int | IO[Any] | None = None,
    ) -> subprocess.Popen[Any]:
        """Start a process inside ``ns`` in its own process group; killed at teardown."""
        assert self.workdir is not None
        out: Any = stdout
        if log is not None:
            out = open(self.workdir / log, "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log is not None else None,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def log_text(self, log: str) -> str:
        assert self.workdir is not None
        path = self.workdir / log
        return path.read_text(errors="replace") if path.exists() else ""

    # -- faults ---------------------------------------------------------------------------

    def cut(self, i: int) -> None:
        """Partition node i: its bridge port stops forwarding, its carrier stays up."""
        self.exec(self.bridge_ns, "bridge", "link", "set", "dev", f"p{i}", "state", "0")

    def heal(self, i: int) -> None:
        self.exec(self.bridge_ns, "bridge", "link", "set", "dev", f"p{i}", "state", "3")

    def link_down(self, i: int) -> None:
        """Drop node i's carrier (the agent sees its interface go down)."""
        self.ip(self.bridge_ns, "link", "set", f"p{i}", "down")

    def link_up(self, i: int) -> None:
        self.ip(self.bridge_ns, "link", "set", f"p{i}", "up")

    # -- observations -------------------------------------------------------------------

    def has_address(self, i: int, address: IPv4Address | IPv6Address) -> bool:
        out = self.ip(self.node_ns(i), "-o", "addr", "show", "dev", "eth0")
        return any(part.split("/")[0] == str(address) for part in out.split())

    def holders(self, address: IPv4Address | IPv6Address = VIP4) -> list[int]:
        return [i for i in range(1, self.nodes + 1) if self.has_address(i, address)]

    def mac(self, i: int) -> str:
        out = self.ip(self.node_ns(i), "-o", "link", "show", "dev", "eth0")
        return out.split("link/ether", 1)[1].split()[0]

    def client_neighbour(self, address: IPv4Address | IPv6Address = VIP4) -> str | None:
        out = self.ip(self.client_ns, "neigh", "show", str(address))
        parts = out.split()
        return parts[parts.index("lladdr") + 1] if "lladdr" in parts else None

    def wait_for(self, predicate: Any, timeout: float, interval: float = 0.05) -> Any:
        """Poll ``predicate`` until it returns a truthy value; raise TimeoutError otherwise."""
        end = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= end:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)


@contextlib.contextmanager
def lab(nodes: int = 3) -> Iterator[Lab]:
    with Lab(nodes=nodes) as built:
        yield built
