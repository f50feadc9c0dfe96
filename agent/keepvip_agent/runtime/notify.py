"""Notify hooks: run a command when an instance enters MASTER, BACKUP or FAULT.

Fire and forget, but never lost: each run is a tracked task with a timeout,
and a failure (cannot start, non-zero exit, timeout) is logged with the
command. Hooks of one instance run in order, so a slow "backup" hook cannot
overtake the "master" hook that came before it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from keepvip_agent.vrrp.router import State
from keepvip_api.model import Notify

logger = logging.getLogger(__name__)
HOOK_TIMEOUT = 60.0


class Notifier:
    def __init__(self, name: str, notify: Notify) -> None:
        self.name = name
        self.notify = notify
        self._queue: asyncio.Queue[tuple[tuple[str, ...], dict[str, str]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def state_changed(self, old: State, new: State, priority: int, reason: str) -> None:
        cmd = {
            State.MASTER: self.notify.master,
            State.BACKUP: self.notify.backup,
            State.FAULT: self.notify.fault,
        }.get(new, ())
        if not cmd:
            return
        env = {
            **os.environ,
            "KEEPVIP_NAME": self.name,
            "KEEPVIP_STATE": new.value.upper(),
            "KEEPVIP_OLD_STATE": old.value.upper(),
            "KEEPVIP_PRIORITY": str(priority),
            "KEEPVIP_REASON": reason,
        }
        self._queue.put_nowait((cmd, env))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while not self._queue.empty():
            cmd, env = self._queue.get_nowait()
            await run_hook(cmd, env)

    async def close(self) -> None:
        if self._task is not None:
            try:
                async with asyncio.timeout(HOOK_TIMEOUT):
                    await self._task
            except TimeoutError:
                self._task.cancel()


async def run_hook(cmd: tuple[str, ...], env: dict[str, str]) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        logger.error("notify hook %s cannot start: %s", cmd[0], exc.strerror or exc)
        return
    try:
        async with asyncio.timeout(HOOK_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        logger.error("notify hook %s killed after %.0fs", cmd[0], HOOK_TIMEOUT)
        return
    if proc.returncode:
        logger.error(
            "notify hook %s exited %s: %s",
            cmd[0],
            proc.returncode,
            out.decode(errors="replace")[-500:],
        )
