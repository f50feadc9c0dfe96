"""keepalived's election rules for one instance: what it really runs, not what the file seems to say.

keepalived silently rewrites a good part of a configuration, and the
conversion must follow what keepalived *does*. Each rule here was checked
against keepalived 2.2.7 (its source and, where noted, by running it):

* the default VRRP version is 2 (``vrrp_version`` in global_defs changes it);
  IPv6 instances use version 3;
* ``advert_int`` is rounded to whole seconds in v2 and to 10 ms in v3;
* no ``priority`` means 100, or 255 (address owner) with ``state MASTER``
  (run: a MASTER without priority dumps "Priority = 255");
* ``nopreempt`` is cleared with ``state MASTER`` and with priority 255;
  ``preempt_delay`` is cleared with ``state MASTER``, with ``nopreempt`` and
  in strict mode;
* authentication is ignored in VRRPv3 and in strict mode; ``auth_pass`` keeps
  its first 8 characters (run: "VRRP version 3 does not support
  authentication. Ignoring.", "Truncating auth_pass to 8 characters").

Every such rewrite becomes a finding at the line that triggered it, and the
value keepalived really uses is what :class:`Election` carries.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepvip_api.types import format_duration
from keepvip_tools.convert.errors import Findings
from keepvip_tools.convert.source import At, Instance, IPAddress, NodeFile

__all__ = ["MAX_PRIORITY", "OWNER", "Election", "address_family", "election", "strict_mode"]

OWNER = 255
MAX_PRIORITY = 254


@dataclass(frozen=True)
class Election:
    """The election settings of one instance after keepalived's own rewrites."""

    version: int
    version_why: str
    interval: float
    interval_why: str
    base: int
    base_why: str
    preempt: bool
    preempt_why: str
    preempt_delay: float
    password: str | None
    password_why: str | None
    unicast: tuple[IPAddress, ...]
    hmac: HmacPlan | None = None
    hmac_why: str | None = None


@dataclass(frozen=True)
class HmacPlan:
    """What an ``auth_hmac`` block becomes: ``spec.authHMAC`` less the keys themselves."""

    keys: tuple[tuple[int, str, str], ...]
    """(id, hex/file/text, path or length), to tell the user what to put in the key file."""
    active: int
    fingerprint: tuple[str, ...]
    """The key values and settings as written: every node of a router must agree."""
    mode: str | None
    anti_replay: str | None
    time_window: int | None


def address_family(inst: Instance) -> int:
    return inst.addresses[0].address.version if inst.addresses else 4


def _version(inst: Instance, node: NodeFile, f: Findings) -> tuple[int, str]:
    family = address_family(inst)
    if inst.version is not None:
        if inst.version.value == 2 and family == 6:
            f.warn(
                inst.version.where,
                "version 2 with IPv6 addresses: VRRPv2 is IPv4-only (RFC 3768); converted to "
                "version 3",
                inst.name,
            )
            return 3, f"IPv6 needs VRRPv3 (version 2 at {inst.version.where})"
        return inst.version.value, f"version {inst.version.value} ({inst.version.where})"
    if family == 6:
        return 3, "keepalived runs IPv6 instances as VRRPv3"
    if node.vrrp_version is not None:
        v = node.vrrp_version
        return v.value, f"global_defs vrrp_version {v.value} ({v.where})"
    return 2, "keepalived's default VRRP version (no vrrp_version or version given)"


def _interval(inst: Instance, version: int, f: Findings) -> tuple[float, str]:
    given = inst.advert_int
    value = given.value if given else 1.0
    micros = int(value * 1_000_000)  # keepalived: (int)(atof(s) * TIMER_HZ), truncating
    if version == 2:
        step, lo, hi = 1_000_000, 1_000_000, 255_000_000
    else:
        step, lo, hi = 10_000, 10_000, 40_950_000
    rounded = min(hi, max(lo, (micros + step // 2) // step * step))
    seconds = rounded / 1_000_000
    text = format_duration(seconds)
    if given is None:
        return seconds, "keepalived's default advert_int 1"
    if rounded != micros:
        unit = "whole seconds" if version == 2 else "10 ms steps"
        f.note(
            given.where,
            f"advert_int {given.value:g}: VRRPv{version} counts in {unit}; keepalived uses "
            f"{text} and so does the conversion",
            inst.name,
        )
    return seconds, f"advert_int {given.value:g} ({given.where})"


def _base_priority(inst: Instance, f: Findings) -> tuple[int, str]:
    if inst.priority is not None:
        return inst.priority.value, f"priority {inst.priority.value} ({inst.priority.where})"
    if inst.state is not None and inst.state.value == "MASTER":
        f.warn(
            inst.state.where,
            "state MASTER without a priority: keepalived makes this node the address owner "
            "(priority 255), which takes the VIP at once and is never preempted",
            inst.name,
        )
        return OWNER, f"no priority with state MASTER ({inst.state.where}) means 255"
    return 100, "keepalived's default priority 100"


def strict_mode(inst: Instance, node: NodeFile) -> At[bool] | None:
    chosen = inst.strict if inst.strict is not None else node.strict
    return chosen if chosen is not None and chosen.value else None


def _preempt(inst: Instance, base: int, node: NodeFile, f: Findings) -> tuple[bool, str, float]:
    master = inst.state is not None and inst.state.value == "MASTER"
    preempt, why = True, "keepalived preempts unless nopreempt is set"
    if inst.nopreempt is not None:
        if master:
            f.warn(
                inst.nopreempt,
                "nopreempt with state MASTER: keepalived clears nopreempt ('nopreempt will not "
                "work with initial state MASTER') and this node preempts; use state BACKUP on "
                "every node for a sticky VIP",
                inst.name,
            )
            why = f"nopreempt ({inst.nopreempt}) is cleared by state MASTER"
        elif base == OWNER:
            f.warn(
                inst.nopreempt,
                "nopreempt with priority 255: keepalived resets nopreempt (an address owner "
                "always takes the VIP)",
                inst.name,
            )
            why = f"nopreempt ({inst.nopreempt}) is reset by priority 255"
        else:
            preempt, why = False, f"nopreempt ({inst.nopreempt})"
    delay = 0.0
    if inst.preempt_delay is not None and inst.preempt_delay.value > 0:
        d = inst.preempt_delay
        strict = strict_mode(inst, node)
        reason = (
            "state MASTER"
            if master
            else "nopreempt"
            if not preempt
            else f"strict mode ({strict.where})"
            if strict
            else None
        )
        if reason:
            f.warn(d.where, f"preempt_delay: keepalived clears it because of {reason}", inst.name)
        else:
            delay = d.value
    return preempt, why, delay


def _password(
    inst: Instance, version: int, node: NodeFile, f: Findings
) -> tuple[str | None, str | None]:
    kind, secret = inst.auth_type, inst.auth_pass
    if kind is None:
        if secret is not None:
            f.warn(
                secret.where,
                "auth_pass without auth_type: keepalived uses no authentication; dropped",
                inst.name,
            )
        return None, None
    strict = strict_mode(inst, node)
    if strict is not None:
        f.warn(
            kind.where,
            f"authentication in strict mode (vrrp_strict/strict_mode at {strict.where}): "
            "keepalived ignores it ('Strict mode does not support authentication'); dropped",
            inst.name,
        )
        return None, None
    if version == 3:
        f.warn(
            kind.where,
            f"auth_type {kind.value} with VRRP version 3: keepalived ignores it (VRRPv3 has no "
            "authentication, RFC 9568); dropped",
            inst.name,
        )
        return None, None
    if kind.value == "AH":
        f.unsupported(
            kind.where,
            "auth_type AH is not converted (keepvip speaks simple-text PASS only): the "
            "VirtualIP has no authentication, so keepalived peers with AH will not accept it",
            inst.name,
        )
        return None, None
    if secret is None or not secret.value:
        f.warn(kind.where, "auth_type PASS without auth_pass: keepalived ignores it", inst.name)
        return None, None
    if len(secret.value) > 8:
        f.note(
            secret.where,
            f"auth_pass has {len(secret.value)} characters; keepalived uses the first 8 and so "
            "does the conversion",
            inst.name,
        )
    return secret.value[:8], f"auth_type PASS ({kind.where}) and auth_pass ({secret.where})"


def _hmac(inst: Instance, f: Findings) -> tuple[HmacPlan | None, str | None]:
    block = inst.auth_hmac
    if block is None:
        return None, None
    ids = [k.ident for k in block.keys]
    active = block.active.value if block.active else None
    if active is None or active not in ids:
        f.warn(
            block.active.where if block.active else block.where,
            f"auth_hmac: active_key {active} is not one of the keys {ids}: keepalived disables "
            "the extension; dropped",
            inst.name,
        )
        return None, None
    modes = {"receive-only": "receiveOnly"}
    plan = HmacPlan(
        keys=tuple((k.ident, k.source, k.detail) for k in block.keys),
        active=active,
        fingerprint=(
            *(f"{k.ident} {k.fingerprint}" for k in block.keys),
            f"active {active}",
            *(f"{a.value}" for a in (block.mode, block.anti_replay, block.time_window) if a),
        ),
        mode=modes.get(block.mode.value, block.mode.value) if block.mode else None,
        anti_replay=block.anti_replay.value if block.anti_replay else None,
        time_window=block.time_window.value if block.time_window else None,
    )
    return plan, f"auth_hmac ({block.where})"


def _unicast(inst: Instance, f: Findings) -> tuple[IPAddress, ...]:
    """The unicast addresses of the election's family (keepalived skips the others)."""
    if not inst.unicast_peers:
        return ()
    family = address_family(inst)
    given = ([inst.unicast_src] if inst.unicast_src else []) + inst.unicast_peers
    kept: list[IPAddress] = []
    for peer in given:
        if peer.value.version != family:
            f.warn(
                peer.where,
                f"{peer.value} is IPv{peer.value.version} but {inst.name} elects over "
                f"IPv{family} (its first address): keepalived skips it, and so does the conversion",
                inst.name,
            )
        else:
            kept.append(peer.value)
    return tuple(dict.fromkeys(kept))


def election(inst: Instance, node: NodeFile, f: Findings) -> Election:
    version, version_why = _version(inst, node, f)
    interval, interval_why = _interval(inst, version, f)
    base, base_why = _base_priority(inst, f)
    preempt, preempt_why, delay = _preempt(inst, base, node, f)
    password, password_why = _password(inst, version, node, f)
    hmac, hmac_why = _hmac(inst, f)
    if hmac is not None and password is not None and inst.auth_type is not None:
        f.note(
            inst.auth_type.where,
            "authentication with auth_hmac: keepalived drops the legacy block, and so does the "
            "conversion",
            inst.name,
        )
        password, password_why = None, None
    unicast = _unicast(inst, f)
    return Election(
        version, version_why, interval, interval_why, base, base_why, preempt, preempt_why,
        delay, password, password_why, unicast, hmac, hmac_why,
    )  # fmt: skip
