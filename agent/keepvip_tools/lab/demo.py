"""``keepvip lab``: watch a VIP fail over between real agents, on this machine, in seconds.

Builds the lab topology (see :mod:`.topology`), starts one agent and one HTTP
responder per node and a client probing the VIP every 5 ms, then cuts the
master off the network and brings it back, ``cycles`` times, narrating what
happens: agent transitions as they log them, who answers the client, and the
outage the client saw. Everything it created is removed on exit, on Ctrl-C
and on error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType

from keepvip_api.types import parse_duration
from keepvip_tools.lab.config import dump, virtualip
from keepvip_tools.lab.topology import VIP4, Lab

PRIORITIES = (150, 120, 100, 90, 80, 70, 60, 50)
SETTLE = 3.0


class Narrator:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.2f}s] {text}", flush=True)


class ProbeReader(threading.Thread):
    """Collects the client's probe lines: (monotonic time, answering node or None)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.samples: deque[tuple[float, str | None]] = deque(maxlen=200_000)

    def run(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            t, _, who = raw.decode().strip().partition(" ")
            self.samples.append((float(t), None if who == "-" else who))

    def answerer(self) -> str | None:
        return self.samples[-1][1] if self.samples else None

    def first_answer_after(self, t: float, not_from: str) -> tuple[float, str] | None:
        for ts, who in list(self.samples):
            if ts >= t and who is not None and who != not_from:
                return ts, who
        return None


class LogFollower(threading.Thread):
    """Prints each agent's state transitions as they appear in its log."""

    def __init__(self, path: Path, node: str, narrator: Narrator, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.path, self.node, self.narrator, self.stop = path, node, narrator, stop

    def run(self) -> None:
        pos = 0
        while not self.stop.is_set():
            if self.path.exists():
                with self.path.open() as f:
                    f.seek(pos)
                    for line in f:
                        if " -> " in line or "ERROR" in line:
                            self.narrator.say(f"  {self.node}: {line.split(' ', 2)[-1].strip()}")
                    pos = f.tell()
            time.sleep(0.05)


def _preflight() -> str | None:
    if os.geteuid() != 0:
        return "keepvip lab needs root (it creates network namespaces); try: sudo keepvip lab"
    if shutil.which("ip") is None:
        return "keepvip lab needs iproute2's `ip` command"
    return None


def run_lab(nodes: int = 3, interval: str = "100ms", cycles: int = 2) -> int:
    """Run the demo; cycles alternate a cable pull and a partition."""
    problem = _preflight()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if not 2 <= nodes <= len(PRIORITIES):
        print(f"error: --nodes must be 2..{len(PRIORITIES)}", file=sys.stderr)
        return 2
    parse_duration(interval)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    narrator = Narrator()
    stop = threading.Event()
    lab = Lab(nodes=nodes, keep_workdir=bool(os.environ.get("KEEPVIP_LAB_KEEP")))
    try:
        with lab:
            return _demo(lab, narrator, stop, interval, cycles)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        stop.set()
        print(f"removed namespaces {lab.prefix}-* and every process the lab started")


def _demo(lab: Lab, narrator: Narrator, stop: threading.Event, interval: str, cycles: int) -> int:
    assert lab.workdir is not None
    priorities = {lab.node_name(i): PRIORITIES[i - 1] for i in range(1, lab.nodes + 1)}
    doc = virtualip("web", interval=interval, priorities=priorities)
    config = lab.workdir / "virtualip.yaml"
    config.write_text(dump(doc))
    print(
        f"keepvip lab: {lab.nodes} nodes and a client on a private bridge (namespaces {lab.prefix}-*)"
    )
    print(
        f"VirtualIP {VIP4}/24, VRRPv3, advertInterval {interval}, preempt false; priorities ",
        end="",
    )
    print(", ".join(f"{n}={p}" for n, p in priorities.items()))
    probe = lab.spawn(
        lab.client_ns,
        [sys.executable, "-m", "keepvip_tools.lab.probe", str(VIP4)],
        stdout=subprocess.PIPE,
    )
    reader = ProbeReader(probe)
    reader.start()
    for i in range(1, lab.nodes + 1):
        node = lab.node_name(i)
        lab.spawn(lab.node_ns(i), [sys.executable, "-m", "keepvip_tools.lab.responder", node])
        lab.spawn(
            lab.node_ns(i),
            [sys.executable, "-m", "keepvip_agent.cli", "--config", str(config), "--node", node],
            log=f"{node}.log",
        )
        LogFollower(lab.workdir / f"{node}.log", node, narrator, stop).start()
        if i == 1:
            # With preempt: false the first master keeps the VIP, so start the
            # preferred node first, as an operator bringing up a pair would.
            narrator.say(f"started {node}; waiting for it to become master")
            lab.wait_for(lab.holders, 15)
    narrator.say("started the other agents as backups")
    holder = lab.wait_for(lab.holders, 15)[0]
    lab.wait_for(lambda: reader.answerer() is not None, 5)
    narrator.say(
        f"{lab.node_name(holder)} holds {VIP4}; the client is answered by {reader.answerer()}"
    )
    for cycle in range(cycles):
        time.sleep(SETTLE)
        holder = _fail_over(lab, reader, narrator, holder, partition=cycle % 2 == 1)
    narrator.say("done")
    return 0


def _fail_over(
    lab: Lab, reader: ProbeReader, narrator: Narrator, holder: int, partition: bool
) -> int:
    """Cut the master off, narrate the takeover, bring it back; return the new holder."""
    old = lab.node_name(holder)
    if partition:
        narrator.say(f"partitioning {old}: its bridge port stops forwarding, its link stays up")
        narrator.say(f"  ({old} cannot tell; it stays master on its side: a split brain)")
    else:
        narrator.say(f"pulling {old}'s cable: its link goes down")
    cut_at = time.monotonic()
    (lab.cut if partition else lab.link_down)(holder)
    answer = lab.wait_for(lambda: reader.first_answer_after(cut_at, old), 30, 0.01)
    narrator.say(
        f"client answered by {answer[1]}: outage {answer[0] - cut_at:.3f}s as the client saw it"
    )
    time.sleep(SETTLE)
    narrator.say(f"bringing {old} back")
    (lab.heal if partition else lab.link_up)(holder)
    time.sleep(1.5)
    holders = lab.holders()
    where = ", ".join(lab.node_name(h) for h in holders)
    if partition:
        why = "the two masters saw each other; the higher priority kept the VIP and re-announced it"
    else:
        why = "preempt: false keeps the VIP where it is"
    narrator.say(f"VIP on {where}; client answered by {reader.answerer()} ({why})")
    return holders[0]
