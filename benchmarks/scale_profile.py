"""Looking inside the processes of ``cluster_scale.py``: py-spy stacks, smaps, allocation sites.

Apart from the measuring code because none of it is needed for the figures:
``--profile DIR`` samples every process of a steady window with py-spy and
keeps its smaps; ``--tracemalloc DIR`` starts the agents with
``benchmarks/memtrace``'s sitecustomize and has each dump its top allocation
sites after the 1 s steady window. Both cost the processes something: take
figures from runs without them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from keepvip_harness.kubeapi import wait_for


@contextlib.contextmanager
def profiled(
    directory: Path | None, pids: dict[str, int], seconds: float, label: str
) -> Iterator[None]:
    """With ``--profile DIR``: py-spy samples every process of a steady window (collapsed stacks).

    A sampling profiler costs the profiled process nothing but the sampler's own
    CPU, which the window's figures then include: profile in a separate run.
    """
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    tag = re.sub(r"\W+", "", label)
    procs = [
        subprocess.Popen(
            [
                shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--nonblocking",
                "-r",
                "50",
                "-d",
                str(int(seconds)),
                "-f",
                "raw",
                "-p",
                str(pid),
                "-o",
                str(directory / f"{tag}-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for name, pid in pids.items():
            (directory / f"{tag}-{name}.smaps").write_text(
                Path(f"/proc/{pid}/smaps_rollup").read_text()
                + Path(f"/proc/{pid}/status").read_text()
            )


def agent_env(trace_dir: Path | None) -> dict[str, str]:
    """``--tracemalloc``: the agents start with benchmarks/memtrace's sitecustomize."""
    if trace_dir is None:
        return {}
    trace_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    return {"PYTHONPATH": str(here / "memtrace"), "KEEPVIP_TRACEMALLOC_DIR": str(trace_dir)}


def dump_allocations(agents: dict[str, int], trace_dir: Path) -> None:
    """Each agent writes its top allocation sites (SIGUSR2); kept as DIR/<node>.txt."""
    for node, pid in agents.items():
        out = trace_dir / f"{pid}.txt"
        os.kill(pid, signal.SIGUSR2)
        wait_for(f"{node}: allocation dump", out.exists, 60, 0.5)
        out.replace(trace_dir / f"{node}.txt")
