"""Where a running agent's memory is: tracemalloc from the first import, dumped on SIGUSR2.

``benchmarks/cluster_scale.py --tracemalloc DIR`` puts this directory on the
agents' ``PYTHONPATH`` with ``KEEPVIP_TRACEMALLOC_DIR=DIR``; Python imports
``sitecustomize`` before anything else, so imports are traced too and the
dump tells code (imports) from data. On SIGUSR2 the process writes its top
allocation sites to ``DIR/<pid>.txt``. Without the variable it does nothing.
tracemalloc's own bookkeeping roughly doubles the process's memory: RSS
figures come from separate runs without it.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

_DIR = os.environ.get("KEEPVIP_TRACEMALLOC_DIR")


def _dump(signum: int, frame: FrameType | None) -> None:
    assert _DIR is not None
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB", "", "by file:"]
    lines += [str(s) for s in snap.statistics("filename")[:40]]
    lines += ["", "by line:"]
    lines += [str(s) for s in snap.statistics("lineno")[:80]]
    out = Path(_DIR) / f"{os.getpid()}.txt"
    out.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
    out.with_suffix(".tmp").replace(out)


if _DIR:
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR2, _dump)
