"""A standalone agent's authHMAC keys: a file, read at start and again whenever it changes.

Polled (its inode, mode and content, once a second) rather than watched with
inotify: an editor or ``mv`` that replaces the file, a bind-mounted file and
a file on a network file system all show up the same way, and reading a few
lines a second costs nothing. The content is compared, not the mtime: a key
replaced by one of the same length within one clock tick of the file
system's timestamps (a few milliseconds) left size and mtime unchanged. The keys go to a callback as a parsed
:class:`~keepvip_agent.vrrp.authstate.Keyring`, or ``None`` and the problem in
one line; what a broken file means (a fault before any key was loaded, the
last good keys after) is the instance's rule, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable

from keepvip_agent.vrrp.authstate import Keyring, KeyringError, parse_keyring

logger = logging.getLogger(__name__)
POLL = 1.0
KeysCallback = Callable[[Keyring | None, str | None], None]


def read_keyring(path: str) -> Keyring:
    """Parse the key file; :class:`KeyringError` names the file and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(
            f"cannot read key file {path}: {getattr(exc, 'strerror', exc)}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("key file %s is readable by group or others (chmod 600)", path)
    try:
        return parse_keyring(text)
    except KeyringError as exc:
        raise KeyringError(f"key file {path}: {exc}") from None


def _signature(path: str) -> tuple[int, int, bytes] | None:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return (st.st_ino, st.st_mode, f.read())
    except OSError:
        return None


class KeyFileWatch:
    """Deliver ``path``'s keys now and after every change, until :meth:`close`."""

    def __init__(self, path: str, deliver: KeysCallback) -> None:
        self.path = path
        self._deliver = deliver
        self._seen: tuple[int, int, bytes] | None = None
        self._read()
        self._task = asyncio.get_running_loop().create_task(self._poll())

    def _read(self) -> None:
        self._seen = _signature(self.path)
        try:
            ring = read_keyring(self.path)
        except KeyringError as exc:
            self._deliver(None, str(exc))
            return
        self._deliver(ring, None)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            if _signature(self.path) != self._seen:
                self._read()

    def close(self) -> None:
        self._task.cancel()
