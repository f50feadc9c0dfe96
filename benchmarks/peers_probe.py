"""The client of benchmarks/peers.py: one probe read live, and who holds an address.

The probe is keepvip's lab probe (a GET every 5 ms, one line per attempt with
CLOCK_MONOTONIC, which the client container shares with this process), run in
one client container on the kind network. It is read while it runs so that a
run ends as soon as the outcome is known (a peer's outage can be 20 s, a
keepvip one 0.3 s), and stopped by closing its stdin, so no probe outlives its
run inside the container.

Which node holds an address is read the same way for all three
implementations, from outside: the client's ARP entry for it after one
request, matched to the node containers' MAC addresses. With
``externalTrafficPolicy: Cluster`` the body names the pod's node, not the
node that took the packet, so the answer cannot say it. The entry is deleted
before that request (the client container runs as root with NET_ADMIN in its
own network namespace, nothing else), so it is the answer to a fresh ARP
request: a stale entry naming the node that held the address before a move
would be believed, since that node's kube-proxy still forwards.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from keepvip_harness import kindctl
from keepvip_harness.dockerctl import Docker
from keepvip_harness.labdaemons import unanswered

SCRIPT_PATH = "/tmp/peers-probe.py"
# keepvip's lab probe (a GET every EVERY s, TIMEOUT s each), with the client's ARP entry for
# the address after each attempt: the MAC of the node that took the request.
# With FRESH=1 the client's ARP entry for the address is deleted before each attempt: a new
# client, one that must resolve the address now (see LiveProbe).
PROBE_SCRIPT = """
import sys, time
from keepvip_tools.lab.probe import get
address, port, every, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
fresh = sys.argv[5] == "1"
if fresh:
    from pyroute2 import IPRoute
    ipr = IPRoute()
def forget():
    for n in ipr.get_neighbours(dst=address):
        ipr.neigh("del", dst=address, ifindex=n["ifindex"])
def mac():
    for line in open("/proc/net/arp").read().splitlines()[1:]:
        f = line.split()
        if f[0] == address:
            return f[3] if f[2] != "0x0" else "-"
    return "-"
end = time.monotonic() + 600
while (start := time.monotonic()) < end:
    if fresh:
        forget()
    who = get(address, port, timeout)
    sys.stdout.write(f"{start:.6f} {who or '-'} {mac()}\\n")
    sys.stdout.flush()
    pause = every - (time.monotonic() - start)
    if pause > 0:
        time.sleep(pause)
"""
EVERY = 0.005
TIMEOUT = 0.1


class LiveProbe:
    """The probe, already probing when the constructor returns; lines read by a thread.

    ``fresh``: delete the client's ARP entry before each attempt, so that each request
    needs a node that answers ARP for the address now. Without it (the default, and what a
    client or router that has been talking to the address does) the client keeps its entry
    while TCP confirms it, and reaches the node it names even after that node stopped
    claiming the address, since kube-proxy's rules match the destination address, not
    whether the node holds it. The ARP table is the container's: a fresh probe needs a
    client container of its own."""

    def __init__(
        self,
        docker: Docker,
        client: str,
        address: str,
        port: int,
        every: float = EVERY,
        fresh: bool = False,
    ) -> None:
        subprocess.run(
            docker.argv("exec", "-i", client, "sh", "-c", f"cat > {SCRIPT_PATH}"),
            input=PROBE_SCRIPT, text=True, check=True, timeout=60,
        )  # fmt: skip
        inner = (
            f"python {SCRIPT_PATH} {address} {port} {every} {TIMEOUT} {int(fresh)} & p=$!; "
            "cat >/dev/null; kill $p"
        )
        self.proc = subprocess.Popen(
            [*docker.argv("exec", "-i", client, "sh", "-c", inner)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.macs: list[str] = []  # the client's ARP entry for the address after each attempt
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.take_until(time.monotonic() + 60, lambda: bool(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def take_until(self, deadline: float, done: Any) -> bool:
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                return bool(done())
            parts = line.split()
            if len(parts) == 3:
                self.lines.append((float(parts[0]), parts[1]))
                self.macs.append(parts[2].lower())
            if done():
                return True
        return bool(done())

    def until_recovered(self, since: float, limit: float, settle: float = 2.0) -> None:
        """Read until an answer follows a failure after ``since``, plus ``settle`` s;
        or until ``limit`` s after ``since``."""

        def done() -> bool:
            r = recovery(self.lines, since)
            return r is not None and self.lines[-1][0] >= since + r[0] + settle

        self.take_until(since + limit, done)

    def until_taken_over(
        self, since: float, old_mac: str, limit: float, settle: float = 1.0
    ) -> None:
        """Read until another node's MAC answered after ``since`` (plus ``settle`` s), or
        ``limit`` s."""

        def done() -> bool:
            t = takeover(self.lines, self.macs, since, old_mac)
            return t is not None and self.lines[-1][0] >= since + t + settle

        self.take_until(since + limit, done)

    def until(self, at: float) -> None:
        self.take_until(at, lambda: bool(self.lines) and self.lines[-1][0] >= at)

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def takeover(
    lines: list[tuple[float, str]], macs: list[str], since: float, old_mac: str
) -> float | None:
    """s from ``since`` to the first answer through a MAC other than ``old_mac``."""
    for (at, who), mac in zip(lines, macs, strict=True):
        if at >= since and who != "-" and mac not in {old_mac, "-"}:
            return at - since
    return None


def recovery(lines: list[tuple[float, str]], since: float) -> tuple[float, float] | None:
    """(event to the first answer after the first failure after ``since``, that failure's
    length), both in s; (0, 0) when nothing failed is not known yet: None until answered."""
    failed_at = None
    for at, who in lines:
        if at < since:
            continue
        if who == "-":
            failed_at = at if failed_at is None else failed_at
        elif failed_at is not None:
            return at - since, at - failed_at
    return None


@dataclass(frozen=True)
class Outcome:
    """What one run's probe saw after the event."""

    outage_s: float | None  # event to the first answer after answers stopped; None: never back
    first_gap_s: float | None  # that stretch without an answer
    longest_gap_s: float  # the longest stretch without an answer in the window
    unanswered_s: float  # all stretches without an answer in the window, summed
    failed: int  # failed attempts in the window
    window_s: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def outcome(lines: list[tuple[float, str]], since: float, end: float | None = None) -> Outcome:
    end = end if end is not None else (lines[-1][0] if lines else since)
    window = [(at, who) for at, who in lines if since <= at <= end]
    gaps = unanswered(window)
    got = recovery(window, since)
    failed = sum(1 for _, who in window if who == "-")
    if got is None and failed:
        # Never answered again: the stretch ran to the end of the window.
        first_fail = next(at for at, who in window if who == "-")
        gaps.append(end - first_fail)
    return Outcome(
        outage_s=None if got is None and failed else (got[0] if got else 0.0),
        first_gap_s=None if got is None and failed else (got[1] if got else 0.0),
        longest_gap_s=max(gaps, default=0.0),
        unanswered_s=sum(gaps),
        failed=failed,
        window_s=end - since,
    )


def node_macs(cluster: kindctl.Cluster) -> dict[str, str]:
    macs = {}
    for node in cluster.node_containers():
        net = cluster.docker.inspect(node)["NetworkSettings"]["Networks"].get(cluster.network) or {}
        if net.get("MacAddress"):
            macs[net["MacAddress"].lower()] = node
    return macs


# The client's entry for the address deleted first (pyroute2 is in the keepvip image), so the
# entry read after the GET is the one a fresh ARP request made.
HOLDER_SCRIPT = """
import sys
from pyroute2 import IPRoute
from keepvip_tools.lab.probe import get
address, port = sys.argv[1], int(sys.argv[2])
with IPRoute() as ipr:
    for n in ipr.get_neighbours(dst=address):
        ipr.neigh("del", dst=address, ifindex=n["ifindex"])
who = get(address, port, 1.0)
mac = [l.split()[3] for l in open('/proc/net/arp').read().splitlines()[1:] if l.split()[0] == address]
print(who or '-', mac[0] if mac else '-')
"""


def mac_of(cluster: kindctl.Cluster, node: str) -> str:
    return next(m for m, n in node_macs(cluster).items() if n == node)


def holder(cluster: kindctl.Cluster, client: str, address: str, port: int) -> str | None:
    """The node whose MAC the client's fresh ARP entry for ``address`` has, after an
    answered GET (the entry is deleted before it)."""
    out = cluster.docker("exec", client, "python", "-c", HOLDER_SCRIPT, address, str(port)).split()
    if len(out) != 2 or out[0] == "-":
        return None
    return node_macs(cluster).get(out[1].lower())
