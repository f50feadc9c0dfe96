"""Read one host's parsed keepalived configuration into a :class:`~.source.NodeFile`.

This is the vocabulary layer: it knows which keyword belongs in which block,
checks each value's form (``priority 300`` and ``virtual_router_id abc`` are
errors with file and line), and records a finding for every keyword it
knows but does not translate (see :mod:`~.keywords`). Unknown keywords are
errors with a "did you mean" hint. Meaning (defaults, keepalived's own
rules for weights, preemption and authentication) is applied later, by the
mapper, so a value read here is exactly what the file says.
"""

from __future__ import annotations

import difflib
import math
import shlex
from collections.abc import Callable
from ipaddress import ip_address, ip_interface

from keepvip_tools.convert import keywords
from keepvip_tools.convert.errors import Findings, Location, Severity
from keepvip_tools.convert.parser import Statement
from keepvip_tools.convert.source import (
    At,
    HmacBlock,
    HmacKey,
    Instance,
    IPAddress,
    NodeFile,
    Script,
    SyncGroup,
    Track,
    VipEntry,
)

__all__ = ["read_node"]

NOTIFY_KINDS = {
    "notify_master": "master",
    "notify_backup": "backup",
    "notify_fault": "fault",
    "notify": "notify",
}
TRUE_WORDS = frozenset({"on", "true", "yes"})
STRICT = (
    "strict mode: keepalived then ignores authentication, refuses unicast peers and, unless "
    "'accept' is set, drops traffic addressed to the VIP with firewall rules; keepvip has no "
    "strict mode and always accepts traffic to the VIP"
)
FALSE_WORDS = frozenset({"off", "false", "no"})


class _Bad(Exception):
    """A value of the wrong form; the caller records it as an error and moves on."""

    def __init__(self, where: Location, message: str) -> None:
        super().__init__(message)
        self.where = where


# -- value helpers -------------------------------------------------------------------------


def _one(stmt: Statement, what: str) -> str:
    if len(stmt.words) != 2:
        raise _Bad(stmt.where, f"{stmt.keyword}: exactly one {what} expected, got {len(stmt.args)}")
    return stmt.args[0]


def _int(stmt: Statement, lo: int, hi: int) -> At[int]:
    text = _one(stmt, "number")
    try:
        value = int(text, 10)
    except ValueError:
        raise _Bad(stmt.where, f"{stmt.keyword}: {text!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise _Bad(stmt.where, f"{stmt.keyword}: {value} is not in {lo}..{hi}")
    return At(value, stmt.where)


def _choice(stmt: Statement, allowed: tuple[str, ...]) -> At[str]:
    word = _one(stmt, "word")
    if word not in allowed:
        raise _Bad(stmt.where, f"{stmt.keyword}: {word!r} is not one of {', '.join(allowed)}")
    return At(word, stmt.where)


def _hmac_key(stmt: Statement) -> HmacKey:
    """``key ID hex:HEX``, ``key ID file:PATH`` or ``key ID TEXT``."""
    if len(stmt.args) != 2:
        raise _Bad(stmt.where, "key: 'key ID VALUE' expected")
    ident, value = stmt.args
    if not ident.isdigit() or not 1 <= int(ident) <= 255:
        raise _Bad(stmt.where, f"key: id {ident!r} is not in 1..255")
    if value.startswith("file:"):
        source, detail = "file", value[5:]
    elif value.startswith("hex:"):
        source, detail = "hex", f"{len(value[4:]) // 2} bytes"
    else:
        source, detail = "text", f"{len(value)} characters"
    return HmacKey(int(ident), source, detail, value, stmt.where)


def _seconds(stmt: Statement, lo: float, hi: float, *, low_open: bool = False) -> At[float]:
    text = _one(stmt, "number of seconds")
    try:
        value = float(text)
    except ValueError:
        raise _Bad(stmt.where, f"{stmt.keyword}: {text!r} is not a number of seconds") from None
    if math.isnan(value) or (value <= lo if low_open else value < lo) or value > hi:
        bound = f"more than {lo:g}" if low_open else f"{lo:g}"
        raise _Bad(stmt.where, f"{stmt.keyword}: {text} is not in {bound}..{hi:g} seconds")
    return At(value, stmt.where)


def _bool(stmt: Statement) -> At[bool]:
    if len(stmt.words) == 1:
        return At(True, stmt.where)
    word = _one(stmt, "of on/off/true/false/yes/no").lower()
    if word in TRUE_WORDS:
        return At(True, stmt.where)
    if word in FALSE_WORDS:
        return At(False, stmt.where)
    raise _Bad(stmt.where, f"{stmt.keyword}: {word!r} is not one of on/off/true/false/yes/no")


def _ip(text: str, where: Location, what: str) -> IPAddress:
    try:
        return ip_address(text)
    except ValueError:
        raise _Bad(where, f"{what}: {text!r} is not an IP address") from None


def _argv(text: str, where: Location, what: str) -> tuple[str, ...]:
    """Split a command the way keepalived does: spaces separate words, quotes group them."""
    try:
        argv = tuple(shlex.split(text, posix=True))
    except ValueError as exc:
        raise _Bad(where, f"{what}: cannot split {text!r} into words: {exc}") from None
    if not argv:
        raise _Bad(where, f"{what}: the command is empty")
    return argv


def _weight(words: list[str], where: Location, what: str) -> tuple[int | None, bool]:
    """``weight N [reverse]`` after a tracked name; returns (weight, reverse)."""
    if not words:
        return None, False
    if words[0] != "weight" or len(words) < 2:
        raise _Bad(where, f"{what}: expected 'weight N' after the name, got {' '.join(words)!r}")
    try:
        value = int(words[1], 10)
    except ValueError:
        raise _Bad(where, f"{what}: weight {words[1]!r} is not a whole number") from None
    if not -253 <= value <= 253:
        raise _Bad(where, f"{what}: weight {value} is not in -253..253")
    rest = words[2:]
    if rest not in ([], ["reverse"]):
        raise _Bad(where, f"{what}: unexpected {' '.join(rest)!r} after the weight")
    return value, bool(rest)


# -- the reader --------------------------------------------------------------------------


class _Reader:
    def __init__(self, path: str, findings: Findings) -> None:
        self.node = NodeFile(path)
        self.f = findings

    def run(self, statements: list[Statement]) -> NodeFile:
        for stmt in statements:
            self._guard(self._top, stmt)
        return self.node

    def _guard(self, fn: Callable[[Statement], None], stmt: Statement) -> None:
        try:
            fn(stmt)
        except _Bad as bad:
            self.f.error(bad.where, str(bad))

    def _unknown(self, stmt: Statement, context: str, known: set[str]) -> None:
        close = difflib.get_close_matches(stmt.keyword, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        place = context if context.startswith("at ") else f"in {context}"
        self.f.error(stmt.where, f"unknown keyword '{stmt.keyword}' {place}{hint}")

    def _ignored(
        self, stmt: Statement, reason: keywords.Reason, subject: str | None = None
    ) -> None:
        severity, why = reason
        verb = "not converted" if severity is Severity.UNSUPPORTED else "ignored"
        self.f.add(stmt.where, severity, f"{stmt.keyword}: {verb}: {why}", subject)

    def _block(self, stmt: Statement) -> list[Statement]:
        if stmt.block is None:
            raise _Bad(stmt.where, f"{stmt.keyword}: a '{{ ... }}' block is expected")
        return stmt.block

    def _no_block(self, stmt: Statement) -> None:
        if stmt.block is not None:
            raise _Bad(stmt.where, f"{stmt.keyword}: takes no '{{ ... }}' block")

    def _named_block(self, stmt: Statement) -> tuple[str, list[Statement]]:
        if len(stmt.words) != 2:
            raise _Bad(stmt.where, f"{stmt.keyword}: exactly one name is expected")
        return stmt.args[0], self._block(stmt)

    # -- top level ------------------------------------------------------------------------

    def _top(self, stmt: Statement) -> None:
        key = stmt.keyword
        if key == "global_defs":
            if len(stmt.words) != 1:
                raise _Bad(stmt.where, "global_defs takes no name")
            for child in self._block(stmt):
                self._guard(self._global, child)
        elif key == "vrrp_instance":
            self._instance(stmt)
        elif key == "vrrp_script":
            self._script(stmt)
        elif key == "vrrp_sync_group":
            self._sync_group(stmt)
        elif key in keywords.TOP_LEVEL:
            self._ignored(stmt, keywords.TOP_LEVEL[key])
        else:
            known = {"global_defs", "vrrp_instance", "vrrp_script", "vrrp_sync_group"}
            self._unknown(stmt, "at the top level", known | set(keywords.TOP_LEVEL))

    def _global(self, stmt: Statement) -> None:
        key, node = stmt.keyword, self.node
        if key == "router_id":
            self._no_block(stmt)
            node.router_id = At(_one(stmt, "name"), stmt.where)
        elif key == "vrrp_version":
            node.vrrp_version = _int(stmt, 2, 3)
        elif key == "vrrp_strict":
            node.strict = _bool(stmt)
            if node.strict.value:
                self.f.warn(stmt.where, STRICT)
        elif key == "default_interface":
            node.default_interface = At(_one(stmt, "interface name"), stmt.where)
        elif key == "vrrp_garp_master_repeat":
            node.garp_repeat = _int(stmt, 1, 1_000_000)
        elif key == "vrrp_garp_master_refresh":
            node.garp_refresh = _seconds(stmt, 0, 1_000_000)
        elif key in keywords.GLOBAL_DEFS:
            self._ignored(stmt, keywords.GLOBAL_DEFS[key])
        else:
            known = {"router_id", "vrrp_version", "vrrp_strict", "default_interface"}
            known |= {"vrrp_garp_master_repeat", "vrrp_garp_master_refresh"}
            self._unknown(stmt, "global_defs", known | set(keywords.GLOBAL_DEFS))

    # -- vrrp_script ----------------------------------------------------------------------

    def _script(self, stmt: Statement) -> None:
        name, block = self._named_block(stmt)
        if name in self.node.scripts:
            first = self.node.scripts[name].where
            raise _Bad(stmt.where, f"vrrp_script {name} is already defined at {first}")
        script = Script(name, stmt.where)
        self.node.scripts[name] = script
        for child in block:
            self._guard(lambda c: self._script_line(c, script), child)
        if script.command is None:
            self.f.error(stmt.where, f"vrrp_script {name}: no 'script' line (keepalived drops it)")

    def _script_line(self, stmt: Statement, script: Script) -> None:
        key = stmt.keyword
        self._no_block(stmt)
        if key == "script":
            if len(stmt.words) < 2:
                raise _Bad(stmt.where, "script: a command is expected")
            # keepalived joins the words and splits the result again: a quoted
            # "killall -0 haproxy" and the same three bare words are one command.
            text = " ".join(stmt.args)
            script.command = At(_argv(text, stmt.where, "script"), stmt.where)
        elif key == "interval":
            script.interval = _seconds(stmt, 0, 3600, low_open=True)
        elif key == "timeout":
            script.timeout = _seconds(stmt, 0, 3600, low_open=True)
        elif key == "weight":
            if len(stmt.words) < 2:
                raise _Bad(stmt.where, "weight: a number is expected")
            value, reverse = _weight(["weight", *stmt.args], stmt.where, "weight")
            script.weight = At(value or 0, stmt.where)
            script.reverse = reverse
        elif key == "rise":
            script.rise = _int(stmt, 0, 1_000_000)
        elif key == "fall":
            script.fall = _int(stmt, 0, 1_000_000)
        elif key in keywords.SCRIPT:
            self._ignored(stmt, keywords.SCRIPT[key])
        else:
            known = {"script", "interval", "timeout", "weight", "rise", "fall"}
            self._unknown(stmt, f"vrrp_script {script.name}", known | set(keywords.SCRIPT))

    # -- vrrp_sync_group ------------------------------------------------------------------

    def _sync_group(self, stmt: Statement) -> None:
        name, block = self._named_block(stmt)
        if any(g.name == name for g in self.node.groups):
            raise _Bad(stmt.where, f"vrrp_sync_group {name} is defined twice")
        group = SyncGroup(name, stmt.where)
        self.node.groups.append(group)
        for child in block:
            self._guard(lambda c: self._group_line(c, group), child)

    def _group_line(self, stmt: Statement, group: SyncGroup) -> None:
        key = stmt.keyword
        if key == "group":
            for member in self._block(stmt):
                if len(member.words) != 1 or member.block is not None:
                    raise _Bad(member.where, "group: one instance name per line is expected")
                group.members.append(At(member.keyword, member.where))
        elif key in NOTIFY_KINDS:
            self._no_block(stmt)
            group.notify[NOTIFY_KINDS[key]] = self._notify(stmt, group.name)
        elif key == "track_interface":
            group.track_interfaces += self._tracks(stmt)
        elif key == "track_script":
            group.track_scripts += self._tracks(stmt)
        elif key in ("sync_group_tracking_weight", "global_tracking"):
            group.tracking_weight = stmt.where
        elif key in keywords.SYNC_GROUP:
            self._ignored(stmt, keywords.SYNC_GROUP[key], group.name)
        else:
            known = {"group", "track_interface", "track_script", "sync_group_tracking_weight"}
            known |= set(NOTIFY_KINDS) | {"global_tracking"}
            self._unknown(stmt, f"vrrp_sync_group {group.name}", known | set(keywords.SYNC_GROUP))

    # -- vrrp_instance --------------------------------------------------------------------

    def _instance(self, stmt: Statement) -> None:
        name, block = self._named_block(stmt)
        if (other := self.node.instance(name)) is not None:
            raise _Bad(stmt.where, f"vrrp_instance {name} is already defined at {other.where}")
        inst = Instance(name, stmt.where)
        self.node.instances.append(inst)
        for child in block:
            self._guard(lambda c: self._instance_line(c, inst), child)
        if inst.vrid is None and "virtual_router_id" not in inst.seen:
            self.f.error(stmt.where, f"vrrp_instance {name}: virtual_router_id is missing")
        if not inst.vips and not inst.seen & {"virtual_ipaddress", "virtual_ipaddress_excluded"}:
            self.f.error(
                stmt.where,
                f"vrrp_instance {name}: no virtual_ipaddress; keepvip needs at least one "
                "address to move (keepalived allows none for notify-only setups, such as "
                "cloud floating IPs moved by a notify_master script)",
            )

    def _instance_line(self, stmt: Statement, inst: Instance) -> None:
        key = stmt.keyword
        inst.seen.add(key)
        handler = _INSTANCE_HANDLERS.get(key)
        if handler is not None:
            handler(self, stmt, inst)
        elif key in keywords.INSTANCE:
            self._ignored(stmt, keywords.INSTANCE[key], inst.name)
        else:
            known = set(_INSTANCE_HANDLERS) | set(keywords.INSTANCE)
            self._unknown(stmt, f"vrrp_instance {inst.name}", known)

    def _set_once(self, stmt: Statement, inst: Instance, attr: str, value: object) -> None:
        old = getattr(inst, attr)
        if old is not None:
            where = old if isinstance(old, Location) else old.where
            self.f.warn(
                stmt.where,
                f"{stmt.keyword} is set twice in {inst.name} (also at {where}); "
                "keepalived uses the last one and so does the conversion",
                inst.name,
            )
        setattr(inst, attr, value)

    def _state(self, stmt: Statement, inst: Instance) -> None:
        self._no_block(stmt)
        word = _one(stmt, "state")
        if word not in ("MASTER", "BACKUP"):
            self.f.warn(
                stmt.where,
                f"state {word}: keepalived knows only MASTER and BACKUP and treats this as BACKUP",
                inst.name,
            )
            word = "BACKUP"
        self._set_once(stmt, inst, "state", At(word, stmt.where))

    def _nopreempt(self, stmt: Statement, inst: Instance) -> None:
        self._no_block(stmt)
        if len(stmt.words) != 1:
            raise _Bad(stmt.where, f"{stmt.keyword} takes no value")
        if stmt.keyword == "nopreempt":
            inst.nopreempt = stmt.where
        else:  # "preempt": keepalived's old spelling of the default
            inst.nopreempt = None
            self.f.note(stmt.where, "preempt: keepalived's default, made explicit", inst.name)

    def _strict_mode(self, stmt: Statement, inst: Instance) -> None:
        self._no_block(stmt)
        self._set_once(stmt, inst, "strict", _bool(stmt))
        if inst.strict is not None and inst.strict.value:
            self.f.warn(stmt.where, STRICT, inst.name)

    def _auth(self, stmt: Statement, inst: Instance) -> None:
        for child in self._block(stmt):
            self._no_block(child)
            if child.keyword == "auth_type":
                word = _one(child, "type")
                if word not in ("PASS", "AH"):
                    self.f.warn(
                        child.where,
                        f"auth_type {word}: keepalived knows only PASS and AH and ignores this",
                        inst.name,
                    )
                    continue
                inst.auth_type = At(word, child.where)
            elif child.keyword == "auth_pass":
                inst.auth_pass = At(_one(child, "password"), child.where)
            else:
                self._unknown(child, "authentication", {"auth_type", "auth_pass"})

    def _auth_hmac(self, stmt: Statement, inst: Instance) -> None:
        """keepalived 2.4's ``auth_hmac`` block (its article and keepalived.conf(5))."""
        block = HmacBlock(stmt.where)
        for child in self._block(stmt):
            self._no_block(child)
            if child.keyword == "key":
                block.keys.append(_hmac_key(child))
            elif child.keyword == "active_key":
                block.active = _int(child, 1, 255)
            elif child.keyword == "anti_replay":
                block.anti_replay = _choice(child, ("time", "monotonic"))
            elif child.keyword == "time_window":
                block.time_window = _int(child, 1, 300)
            elif child.keyword == "mode":
                block.mode = _choice(child, ("enforce", "permissive", "receive-only"))
            else:
                self._unknown(
                    child, "auth_hmac", {"key", "active_key", "anti_replay", "time_window", "mode"}
                )
        inst.auth_hmac = block

    def _vips(self, stmt: Statement, inst: Instance) -> None:
        excluded = stmt.keyword == "virtual_ipaddress_excluded"
        if not self._block(stmt) and not excluded:
            raise _Bad(stmt.where, f"{stmt.keyword}: the block is empty")
        for line in self._block(stmt):
            self._guard(lambda s: self._vip(s, inst, excluded), line)

    def _vip(self, stmt: Statement, inst: Instance, excluded: bool) -> None:
        self._no_block(stmt)
        try:
            address = ip_interface(stmt.keyword)
        except ValueError:
            raise _Bad(
                stmt.where, f"{stmt.keyword!r} is not an IP address with an optional /prefix"
            ) from None
        dev = label = None
        dropped: list[str] = []
        words = stmt.args
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("dev", "label") or word in keywords.ADDRESS_OPTIONS_WITH_VALUE:
                if i + 1 >= len(words):
                    raise _Bad(stmt.where, f"{stmt.keyword}: '{word}' needs a value")
                value = words[i + 1]
                if word == "dev":
                    dev = value
                elif word == "label":
                    label = value
                else:
                    dropped.append(f"{word} {value}")
                i += 2
            elif word in keywords.ADDRESS_FLAGS:
                dropped.append(word)
                i += 1
            else:
                raise _Bad(stmt.where, f"{stmt.keyword}: unknown address option {word!r}")
        inst.vips.append(VipEntry(address, stmt.where, excluded, dev, label, tuple(dropped)))

    def _unicast_peers(self, stmt: Statement, inst: Instance) -> None:
        for line in self._block(stmt):
            self._no_block(line)
            extra = line.args
            if extra and (
                len(extra) % 2 or any(w not in ("min_ttl", "max_ttl") for w in extra[::2])
            ):
                raise _Bad(
                    line.where, f"unicast_peer {line.keyword}: unexpected {' '.join(extra)!r}"
                )
            if extra:
                self.f.unsupported(
                    line.where,
                    f"unicast_peer {line.keyword}: {' '.join(extra)} not converted: keepvip "
                    "accepts adverts with TTL 255 only",
                    inst.name,
                )
            inst.unicast_peers.append(At(_ip(line.keyword, line.where, "unicast_peer"), line.where))

    def _tracks(self, stmt: Statement) -> list[Track]:
        tracks: list[Track] = []
        for line in self._block(stmt):
            self._no_block(line)
            weight, reverse = _weight(line.args, line.where, f"{stmt.keyword} {line.keyword}")
            tracks.append(Track(line.keyword, line.where, weight, reverse))
        return tracks

    def _track_lines(self, stmt: Statement, inst: Instance) -> None:
        if stmt.keyword == "track_interface":
            inst.track_interfaces += self._tracks(stmt)
        else:
            inst.track_scripts += self._tracks(stmt)

    def _notify(self, stmt: Statement, subject: str) -> At[tuple[str, ...]]:
        """A notify command: quoted (may carry arguments) or one word, then an optional user."""
        if len(stmt.words) < 2:
            raise _Bad(stmt.where, f"{stmt.keyword}: a command is expected")
        first = stmt.words[1]
        argv = _argv(first.text, stmt.where, stmt.keyword) if first.quoted else (first.text,)
        rest = stmt.args[1:]
        if rest:
            self.f.warn(
                stmt.where,
                f"{stmt.keyword}: keepalived reads {' '.join(rest)!r} after the command as the "
                "user (and group) to run it as, not as arguments; quote the whole command to "
                "pass arguments. Converted without them: keepvip runs hooks as the agent's user",
                subject,
            )
        return At(argv, stmt.where)

    def _notify_line(self, stmt: Statement, inst: Instance) -> None:
        self._no_block(stmt)
        kind = NOTIFY_KINDS[stmt.keyword]
        if kind in inst.notify:
            self.f.warn(
                stmt.where,
                f"{stmt.keyword} is set twice in {inst.name}; keepalived keeps the first "
                f"({inst.notify[kind].where}) and so does the conversion",
                inst.name,
            )
            return
        inst.notify[kind] = self._notify(stmt, inst.name)


_Handler = Callable[[_Reader, Statement, Instance], None]


def _simple(attr: str, read: Callable[[Statement], object]) -> _Handler:
    """A handler for a one-value keyword stored on the instance as ``attr``."""

    def handle(reader: _Reader, stmt: Statement, inst: Instance) -> None:
        reader._no_block(stmt)
        reader._set_once(stmt, inst, attr, read(stmt))

    return handle


def _ip_of(keyword: str) -> Callable[[Statement], At[IPAddress]]:
    return lambda stmt: At(_ip(_one(stmt, "address"), stmt.where, keyword), stmt.where)


_INSTANCE_HANDLERS: dict[str, _Handler] = {
    "state": _Reader._state,
    "interface": _simple("interface", lambda s: At(_one(s, "interface name"), s.where)),
    "virtual_router_id": _simple("vrid", lambda s: _int(s, 1, 255)),
    "priority": _simple("priority", lambda s: _int(s, 1, 255)),
    "advert_int": _simple("advert_int", lambda s: _seconds(s, 0, 255, low_open=True)),
    "preempt_delay": _simple("preempt_delay", lambda s: _seconds(s, 0, 1000)),
    "version": _simple("version", lambda s: _int(s, 2, 3)),
    "unicast_src_ip": _simple("unicast_src", _ip_of("unicast_src_ip")),
    "mcast_src_ip": _simple("mcast_src", _ip_of("mcast_src_ip")),
    "garp_master_repeat": _simple("garp_repeat", lambda s: _int(s, 1, 1_000_000)),
    "garp_master_refresh": _simple("garp_refresh", lambda s: _seconds(s, 0, 1_000_000)),
    "strict_mode": _Reader._strict_mode,
    "nopreempt": _Reader._nopreempt,
    "preempt": _Reader._nopreempt,
    "authentication": _Reader._auth,
    "auth_hmac": _Reader._auth_hmac,
    "virtual_ipaddress": _Reader._vips,
    "virtual_ipaddress_excluded": _Reader._vips,
    "unicast_peer": _Reader._unicast_peers,
    "track_interface": _Reader._track_lines,
    "track_script": _Reader._track_lines,
    **dict.fromkeys(NOTIFY_KINDS, _Reader._notify_line),
}


def read_node(statements: list[Statement], path: str, findings: Findings) -> NodeFile:
    """What one host's configuration says; problems go to ``findings`` (errors included)."""
    return _Reader(path, findings).run(statements)
