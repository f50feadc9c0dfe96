"""The per-VirtualIP layout of keepvip before 0.2, run from its own source for the upgrade test.

The upgrade has to be proven against the previous release really running:
its operator rendering one DaemonSet, ServiceAccount and Role per VirtualIP,
and its agents (``keepvip-agent --virtualip NS/NAME``) electing among
themselves. Both come from git (:data:`PREVIOUS`, the last commit whose
operator rendered that layout), extracted with ``git archive`` and run with
this venv's interpreter and libraries, the old packages first on
``PYTHONPATH`` (the editable install's finder comes after it). The pod
launcher runs the old agents for pods of :data:`IMAGE`
(``PodLauncher(image_paths=...)``), so old and new agents run side by side in
the lab's node namespaces. Needs the full history (a shallow clone lacks the
commit and fails with the command to fix it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from .paths import REPO

PREVIOUS = "ad160083e995d968c87723fb78a7e22b14eaa526"
"""keepvip before the node agent: the operator renders one DaemonSet per VirtualIP."""
IMAGE = "keepvip/agent:previous"
"""The image name the old operator is told to render; the launcher maps it to :func:`extract`'s bin."""
VIRTUALIP_LABEL = "keepvip.io/virtualip"
"""The label on every old per-VirtualIP object: its VirtualIP's name."""
COMMANDS = {"keepvip-agent": "keepvip_agent.cli", "keepvip-operator": "keepvip_operator.main"}


def old_name(virtualip: str) -> str:
    """The old DaemonSet, ServiceAccount, Role and RoleBinding of a VirtualIP."""
    return f"keepvip-{virtualip}"


def extract(dest: Path) -> Path:
    """The previous release's packages under ``dest``; returns the bin directory of its commands."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
        check=False,
        capture_output=True,
    )
    if found.returncode != 0:
        raise RuntimeError(
            f"commit {PREVIOUS[:12]} (the previous layout) is not in {REPO}: "
            "a shallow clone? run `git fetch --unshallow`"
        )
    src = dest / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "agent", "operator"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    path = f"{src / 'agent'}:{src / 'operator'}"
    bin_dir = dest / "bin"
    bin_dir.mkdir()
    for command, module in COMMANDS.items():
        script = bin_dir / command
        script.write_text(
            "#!/bin/sh\n"
            f"PYTHONPATH={path} exec {sys.executable} -c "
            f"'import sys; from {module} import main; sys.exit(main())' \"$@\"\n"
        )
        script.chmod(0o755)
    return bin_dir


@contextlib.contextmanager
def operator_process(
    bin_dir: Path, settings: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The previous keepvip-operator as a process (settings as its KEEPVIP_* variables)."""
    env = {**os.environ, **{f"KEEPVIP_{k.upper()}": v for k, v in settings.items()}}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "keepvip-operator")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s (idempotent)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
