"""Starting and stopping the tier's host processes, by the pid we recorded.

Every process is started in a session of its own, so its pid is also its
process-group id: stopping it signals that group and nothing else (no
``pkill`` by name, which could hit another engineer's etcd or keepalived).
Before a pid read back from a state file is signalled, its executable is
checked against the one we started, so a pid reused by the kernel is never
hit.

Processes owned by a pytest session also get ``PR_SET_PDEATHSIG``: if pytest
is killed outright (CI timeout, ^C twice), the kernel kills them too and no
API server is left holding ports. ``make cluster-up`` starts its processes
without it, because they must outlive the command that started them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Recorded:
    """What we need to find a process again and to be sure it is still ours."""

    name: str
    pid: int
    exe: str


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with stdout and stderr appended to ``log``.

    ``die_with_parent`` ties the process to the calling *thread*: call it
    from a thread that lives at least as long as the process should.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    preexec: Callable[[], None] | None = _die_with_parent if die_with_parent else None
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - only prctl, async-signal-safe enough
        )


def exe_of(pid: int) -> str | None:
    """The executable of a live process, or None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def is_ours(rec: Recorded) -> bool:
    return exe_of(rec.pid) == rec.exe


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _gone(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is not None
    # Not our child (``make cluster-down``): a zombie of an exited parent
    # counts as gone; /proc/PID/exe is unreadable then.
    return exe_of(pid) is None


def stop(
    rec: Recorded,
    *,
    grace: float = 5.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
    if proc is None and not is_ours(rec):
        return
    if proc is not None and proc.poll() is not None:
        # Its group may still hold children (a shell's), so do not return yet.
        _signal_group(rec.pid, signal.SIGKILL)
        return
    _signal_group(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if _gone(rec.pid, proc):
            break
        time.sleep(0.05)
    _signal_group(rec.pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=10)
        return
    # Not our child: return only once it is really gone (reaped by init).
    deadline = time.monotonic() + 10
    while not _gone(rec.pid, None) and time.monotonic() < deadline:
        time.sleep(0.05)


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log file, for error messages that explain a failed start."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
