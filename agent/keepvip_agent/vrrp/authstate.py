"""Authenticated adverts of one virtual router: its keys, its send sequence, its senders' replay marks.

Sans-IO like the router: the caller passes the wall-clock time in (the
draft's sequence numbers are UTC timestamps, so this is ``time.time()``, not
the loop's monotonic clock) and gets a trailer, nothing, or a
:class:`~.packet.PacketError` naming the drop reason back.

Rules, after keepalived 2.4's ``auth_hmac`` (draft-cassen-vrrp-auth-hmac):

* time mode refuses a trailer whose seconds are more than the window away
  from ours *before* computing the HMAC, so a flood of captured adverts costs
  no digest; monotonic mode skips that and needs no shared clock;
* a sender's replay mark moves only after its HMAC verified, so forged
  packets can never push it; it is kept per source address (a bounded
  least-recently-used table: legitimate senders per VRID are few);
* rotation: a receiver accepts every key id of its keyring. A key that
  leaves the keyring (or whose bytes change) stays accepted for
  ``grace`` seconds, and a sender keeps signing with its previous key for
  :func:`switch_delay` after a new active key arrives: agents that pick the
  new keyring up a few seconds apart (a Secret update reaches each node's
  watch at its own time) never refuse each other, even when the old key was
  replaced in one step. Past the grace the old key is refused.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from keepvip_agent.vrrp import hmacauth
from keepvip_agent.vrrp.packet import DropReason, PacketError

SWITCH_DELAY = 10.0
"""Seconds a sender keeps signing with its previous key after the active key changed (at
most half the grace): longer than agents take to read the same update (a key file is
polled every second, a Secret every five)."""
MAX_SENDERS = 16
"""Replay marks kept per virtual router (only verified senders get one)."""


class Mode(enum.StrEnum):
    """Roll-out modes (keepalived's ``mode``): verify before anyone signs, then sign, then require."""

    ENFORCE = "enforce"
    PERMISSIVE = "permissive"
    """Sign, verify a trailer when there is one, accept adverts without one."""
    RECEIVE_ONLY = "receiveOnly"
    """Send no trailer, verify a trailer when there is one, accept adverts without one."""


class KeyringError(ValueError):
    """A key file or Secret that cannot be used; the message names the line."""


@dataclass(frozen=True, slots=True)
class Keyring:
    keys: Mapping[int, bytes]
    active: int
    """The key id used to sign."""


_LINE = re.compile(r"^(key)\s+(\d+)\s+(\S+)$|^(active_key)\s+(\d+)$")


def parse_keyring(text: str) -> Keyring:
    """Read keepalived's ``auth_hmac`` key lines: ``key ID hex:HEX`` or ``key ID ASCII``, ``active_key ID``.

    Blank lines and ``#`` comments are skipped. Keys are 32 to 64 bytes.
    """
    keys: dict[int, bytes] = {}
    active: int | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _LINE.match(line)
        if m is None:
            raise KeyringError(f"line {n}: expected 'key ID VALUE' or 'active_key ID'")
        ident = int(m.group(2) or m.group(5))
        if not hmacauth.KEY_ID_MIN <= ident <= hmacauth.KEY_ID_MAX:
            raise KeyringError(f"line {n}: key id {ident} is not in 1..255")
        if m.group(4):
            active = ident
            continue
        if ident in keys:
            raise KeyringError(f"line {n}: key id {ident} is defined twice")
        keys[ident] = _key_bytes(m.group(3), n)
    if not keys:
        raise KeyringError("no 'key ID VALUE' line")
    if active is None:
        if len(keys) > 1:
            raise KeyringError("several keys but no 'active_key ID' line")
        active = next(iter(keys))
    if active not in keys:
        raise KeyringError(f"active_key {active} is not defined")
    return Keyring(keys, active)


def _key_bytes(value: str, n: int) -> bytes:
    if value.startswith("hex:"):
        try:
            key = bytes.fromhex(value[4:])
        except ValueError:
            raise KeyringError(f"line {n}: the hex: value is not hexadecimal") from None
    else:
        key = value.encode()
    if not hmacauth.KEY_MIN <= len(key) <= hmacauth.KEY_MAX:
        raise KeyringError(
            f"line {n}: a key is {hmacauth.KEY_MIN} to {hmacauth.KEY_MAX} bytes, not {len(key)}"
        )
    return key


@dataclass(frozen=True, slots=True)
class AuthSettings:
    mode: Mode = Mode.ENFORCE
    time_mode: bool = True
    """``antiReplay: time``: refuse trailers outside the window; else monotonic sequences only."""
    window: float = hmacauth.WINDOW_FLOOR
    grace: float = 60.0
    """Seconds a key that left the keyring is still accepted."""


@dataclass(slots=True)
class _Retired:
    key: bytes
    until: float


@dataclass(slots=True)
class AdvertAuth:
    """The authentication state of one virtual router (``version``, ``vrid``)."""

    version: int
    vrid: int
    settings: AuthSettings
    keyring: Keyring
    send_sequence: int = 0
    _previous: tuple[int, bytes, float] | None = None
    """(key id, key, until): what signs while peers pick up a new active key."""
    _retired: dict[int, list[_Retired]] = field(default_factory=dict)
    _marks: OrderedDict[IPv4Address | IPv6Address, int] = field(default_factory=OrderedDict)
    _pseudo: dict[IPv4Address | IPv6Address, bytes] = field(default_factory=dict)
    _keyed: dict[bytes, hmac.HMAC] = field(default_factory=dict)
    """Each key's HMAC state with the key absorbed (see :func:`hmacauth.keyed`)."""

    def _state(self, key: bytes) -> hmac.HMAC:
        state = self._keyed.get(key)
        if state is None:
            if len(self._keyed) >= 16:
                self._keyed.clear()
            state = self._keyed[key] = hmacauth.keyed(key)
        return state

    @property
    def signs(self) -> bool:
        return self.settings.mode is not Mode.RECEIVE_ONLY

    @property
    def requires(self) -> bool:
        return self.settings.mode is Mode.ENFORCE

    def rekey(self, keyring: Keyring, now: float) -> None:
        """Take a new keyring; keys that left it (or changed) stay valid for ``grace`` seconds."""
        until = now + self.settings.grace
        for ident, key in self.keyring.keys.items():
            if keyring.keys.get(ident) != key:
                self._retired.setdefault(ident, []).append(_Retired(key, until))
        old_id, old_key = self.keyring.active, self.keyring.keys[self.keyring.active]
        if (keyring.active, keyring.keys[keyring.active]) != (old_id, old_key):
            self._previous = (old_id, old_key, now + switch_delay(self.settings.grace))
        self.keyring = keyring

    def _candidates(self, key_id: int, now: float) -> list[bytes]:
        keys = [self.keyring.keys[key_id]] if key_id in self.keyring.keys else []
        retired = self._retired.get(key_id)
        if retired:
            live = [r for r in retired if r.until > now]
            if live:
                self._retired[key_id] = live
                keys += [r.key for r in live]
            else:
                del self._retired[key_id]
        return keys

    def _pseudo_of(self, source: IPv4Address | IPv6Address) -> bytes:
        pseudo = self._pseudo.get(source)
        if pseudo is None:
            if len(self._pseudo) >= 64:
                self._pseudo.clear()
            pseudo = self._pseudo[source] = hmacauth.pseudo_header(self.version, self.vrid, source)
        return pseudo

    # -- send ---------------------------------------------------------------------------

    def next_sequence(self, now: float) -> int:
        """The larger of the clock and the last sequence plus one (keepalived's rule).

        In time mode a sequence stranded more than the window ahead of the clock
        (the clock was stepped back) restarts from the clock, since receivers
        would refuse it anyway.
        """
        clock = hmacauth.clock_sequence(now)
        if hmacauth.serial_after(clock, self.send_sequence):
            self.send_sequence = clock
            return clock
        ahead = -hmacauth.seconds_apart(now, self.send_sequence >> 32)
        if self.settings.time_mode and ahead > self.settings.window:
            self.send_sequence = clock
        else:
            self.send_sequence = (self.send_sequence + 1) & 0xFFFFFFFFFFFFFFFF
        return self.send_sequence

    def seal(self, pdu: bytes, source: IPv4Address | IPv6Address, now: float) -> bytes:
        """The trailer for one logical advert (every destination's copy carries the same)."""
        if not self.signs:
            return b""
        key_id, key = self.signing_key(now)
        pseudo = self._pseudo_of(source)
        return hmacauth.sign(pdu, pseudo, key_id, self._state(key), self.next_sequence(now))

    def signing_key(self, now: float) -> tuple[int, bytes]:
        """The active key, or the previous one for :func:`switch_delay` after a change."""
        previous = self._previous
        if previous is not None:
            if now < previous[2]:
                return previous[0], previous[1]
            self._previous = None
        return self.keyring.active, self.keyring.keys[self.keyring.active]

    # -- receive ------------------------------------------------------------------------

    def check(
        self, pdu: bytes, trailer: bytes, source: IPv4Address | IPv6Address, now: float
    ) -> None:
        """Accept an advert or raise :class:`PacketError` with the reason to count."""
        if not trailer:
            if self.requires:
                raise PacketError(DropReason.AUTH_MISSING, "no authentication trailer")
            return
        t = hmacauth.parse_trailer(trailer)
        if t.ext_type != hmacauth.EXT_TYPE_HMAC_SHA256 or t.reserved:
            raise PacketError(
                DropReason.AUTH_MALFORMED,
                f"trailer type {t.ext_type}, reserved {t.reserved} (want 1 and 0)",
            )
        if self.settings.time_mode:
            skew = hmacauth.seconds_apart(now, t.seconds)
            if abs(skew) > self.settings.window:
                raise PacketError(
                    DropReason.AUTH_STALE,
                    f"timestamp {skew:+d} s from our clock, window {self.settings.window:g} s",
                )
        keys = self._candidates(t.key_id, now)
        if not keys:
            raise PacketError(DropReason.AUTH_UNKNOWN_KEY, f"unknown key id {t.key_id}")
        pseudo = self._pseudo_of(source)
        if not any(hmacauth.mac_matches(self._state(k), pseudo, pdu, trailer) for k in keys):
            raise PacketError(DropReason.AUTH_BAD_HMAC, f"HMAC does not verify (key id {t.key_id})")
        self._advance(source, t, now)

    def _advance(self, source: IPv4Address | IPv6Address, t: hmacauth.Trailer, now: float) -> None:
        mark = self._marks.get(source)
        # A mark outside the window orders only packets the window already
        # refuses: forgetting it lets a sender whose clock was reset recover.
        if (
            mark is not None
            and self.settings.time_mode
            and abs(hmacauth.seconds_apart(now, mark >> 32)) > self.settings.window
        ):
            mark = None
        if mark is not None and not hmacauth.serial_after(t.sequence, mark):
            raise PacketError(
                DropReason.AUTH_REPLAY, f"sequence {t.sequence:#x} is not after {mark:#x}"
            )
        self._marks[source] = t.sequence
        self._marks.move_to_end(source)
        while len(self._marks) > MAX_SENDERS:
            self._marks.popitem(last=False)


def switch_delay(grace: float) -> float:
    """How long the previous key keeps signing after a change: :data:`SWITCH_DELAY`, or half
    the grace when that is shorter (receivers must still accept it)."""
    return min(SWITCH_DELAY, grace / 2)


def default_window(interval_s: float) -> float:
    """keepalived's default freshness window: max(3 x advert interval, 5 s), at most 300 s."""
    return min(max(3 * interval_s, hmacauth.WINDOW_FLOOR), float(hmacauth.WINDOW_MAX))
