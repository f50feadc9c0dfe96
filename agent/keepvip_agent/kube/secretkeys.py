"""authHMAC keys from Secrets in the agents' namespace: one reader per Secret name, shared.

The agents may ``get`` only the Secrets that VirtualIPs name (the operator's
Role lists them in ``resourceNames``); a ``list`` or ``watch`` would need a
namespace-wide grant, so each named Secret is read by name every
:data:`POLL` seconds instead. That bounds how late a rotated key arrives
(the sender's switch delay and the receivers' grace cover it, see
:mod:`keepvip_agent.vrrp.authstate`) and costs one small GET per Secret,
not per VirtualIP. The Secret's data entry ``keys`` holds the same key
lines as a standalone key file.

Problems are delivered as one line naming the Secret (not found, not
readable, no ``keys`` entry, a bad line); the instance decides what they
mean (a fault before the first keys, the last good keys after).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any

from keepvip_agent.kube import paths
from keepvip_agent.kube.api import ApiError, Kube
from keepvip_agent.vrrp.authstate import Keyring, KeyringError, parse_keyring

logger = logging.getLogger(__name__)
POLL = 5.0
DATA_KEY = "keys"
KeysCallback = Callable[[Keyring | None, str | None], None]


def keyring_of(secret: dict[str, Any], where: str) -> Keyring:
    """The keys of a Secret as the API serves it (``data`` base64-encoded)."""
    encoded = (secret.get("data") or {}).get(DATA_KEY)
    if encoded is None:
        raise KeyringError(f"Secret {where} has no data entry {DATA_KEY!r}")
    try:
        text = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise KeyringError(f"Secret {where}: {DATA_KEY!r} is not UTF-8 text") from None
    try:
        return parse_keyring(text)
    except KeyringError as exc:
        raise KeyringError(f"Secret {where}, entry {DATA_KEY!r}: {exc}") from None


class SecretKeys:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._subscribers: dict[str, dict[int, KeysCallback]] = {}
        self._last: dict[str, tuple[Keyring | None, str | None]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def subscribe(self, name: str, token: int, deliver: KeysCallback) -> None:
        """Deliver Secret ``name``'s keys (now if known, and on every change) until unsubscribed."""
        self._subscribers.setdefault(name, {})[token] = deliver
        if name in self._last:
            deliver(*self._last[name])
        if name not in self._tasks:
            self._tasks[name] = asyncio.get_running_loop().create_task(self._poll(name))

    def unsubscribe(self, name: str, token: int) -> None:
        subs = self._subscribers.get(name, {})
        subs.pop(token, None)
        if not subs:
            self._subscribers.pop(name, None)
            self._last.pop(name, None)
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()

    async def _read(self, name: str) -> tuple[Keyring | None, str | None]:
        where = f"{self.namespace}/{name}"
        try:
            secret = await self.kube.call("GET", paths.secret(self.namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None, f"Secret {where} (authHMAC.secretName) does not exist"
            if exc.status == 403:
                return None, (
                    f"the agents may not read Secret {where}: the operator grants them only "
                    "Secrets that VirtualIPs name (is it running?)"
                )
            return None, f"cannot read Secret {where}: {exc.status} {exc.reason}"
        except Exception as exc:  # the API server is away: try again next round
            return None, f"cannot read Secret {where}: {exc}"
        try:
            return keyring_of(secret or {}, where), None
        except KeyringError as exc:
            return None, str(exc)

    async def _poll(self, name: str) -> None:
        while True:
            result = await self._read(name)
            if result != self._last.get(name):
                self._last[name] = result
                for deliver in list(self._subscribers.get(name, {}).values()):
                    deliver(*result)
            await asyncio.sleep(POLL)

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
