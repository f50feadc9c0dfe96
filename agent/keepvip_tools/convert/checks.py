"""keepalived's tracked scripts and interfaces as keepvip checks, with the weight rule made exact.

keepalived's rule, as 2.2.7 applies it (``tests/netns/test_convert_runs.py`` checks each
rule against a real keepalived):

* weight 0 (or none): while the script fails, the instance is in FAULT.
  keepvip: ``onFailure: {action: fault}``.
* weight -N: while the script fails, the priority is N lower.
  keepvip: ``onFailure: {action: demote, weight: N}``.
* weight +N: while the script *succeeds*, the priority is N higher.
  keepvip has no "raise while healthy", so the node's configured priority
  is N higher and a failing check takes the N away again:
  ``{action: demote, weight: N}`` plus N in ``nodes[].priority``. Both give
  base+N when healthy and base when failing, as long as base+N stays within
  254 (keepalived caps the sum at 254; the mapper reports where that bites).

Two cases where keepalived ignores a weighted script, verified on 2.2.7
("ignoring tracked script ... with weights due to address_owner / SYNC
group"): on a node with priority 255 and in a sync group without
``sync_group_tracking_weight``. Those scripts are not converted, and say so.

A script that keepalived would have to run through a shell is reported:
keepalived 2.2.7 executes scripts without a shell (``/bin/false || /bin/true``
fails), so the converted check runs the same argv and fails the same way.
The bash idiom ``</dev/tcp/HOST/PORT`` is the one exception: keepalived hands
a command whose first word is not a program to ``/bin/sh``, and what the
author meant is a TCP connect, so it becomes a ``tcpSocket`` check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keepvip_api.types import format_duration
from keepvip_tools.convert.errors import Findings, Location
from keepvip_tools.convert.source import Script, Track

__all__ = ["CheckPlan", "check_name", "from_interface", "from_script"]

_DEV_TCP = re.compile(r"^<\s*/dev/tcp/([^/\s]+)/(\d{1,5})$")
_SHELL_WORDS = frozenset({"[[", "]]", "!", "{", "}"})
MAX_RISE_FALL = 100
DEFAULT_INTERVAL = 1.0
"""keepalived's default vrrp_script interval."""
MIN_INTERVAL = 0.1
"""keepvip's shortest check interval."""


@dataclass(frozen=True)
class CheckPlan:
    """A keepvip check derived from one tracked script or interface, and why it looks as it does."""

    name: str
    probe: dict[str, Any]
    interval: float
    timeout: float
    rise: int
    fall: int
    weight: int
    """keepalived's effective weight: 0 = fault, negative = demote, positive = bonus while healthy."""
    source: str
    """What it came from, for comments: ``vrrp_script chk_nginx (a.conf:3)``."""
    where: Location

    @property
    def bonus(self) -> int:
        """How much the node's configured priority rises for this check (positive weights)."""
        return max(self.weight, 0)

    @property
    def on_failure(self) -> dict[str, Any]:
        if self.weight == 0:
            return {"action": "fault"}
        return {"action": "demote", "weight": abs(self.weight)}

    def explain(self) -> str:
        """One sentence on the weight translation, for the YAML comment above the check."""
        if self.weight == 0:
            return (
                f"{self.source}: weight 0, so keepalived puts the instance in FAULT while it "
                "fails -> onFailure fault"
            )
        if self.weight < 0:
            return (
                f"{self.source}: weight {self.weight}, so keepalived lowers the priority by "
                f"{-self.weight} while it fails -> demote by {-self.weight}"
            )
        return (
            f"{self.source}: weight +{self.weight}, so keepalived raises the priority by "
            f"{self.weight} while it succeeds -> each node's priority includes the +"
            f"{self.weight} and a failing check takes it away (demote by {self.weight})"
        )

    def same_as(self, other: CheckPlan) -> bool:
        keys = ("probe", "interval", "timeout", "rise", "fall", "weight")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.probe,
            "interval": format_duration(self.interval),
            "timeout": format_duration(self.timeout),
            "rise": self.rise,
            "fall": self.fall,
            "onFailure": self.on_failure,
        }


def check_name(text: str, prefix: str = "") -> str:
    """A Kubernetes-style name (``chk_nginx`` -> ``chk-nginx``), at most 63 characters."""
    name = re.sub(r"[^a-z0-9]+", "-", (prefix + text).lower()).strip("-")
    name = name[:63].rstrip("-")
    return name or "check"


def _seconds(value: float) -> float:
    """A check duration in keepvip's millisecond resolution, never below its minimum."""
    return max(MIN_INTERVAL, round(value, 3))


def from_script(script: Script, track: Track, subject: str, findings: Findings) -> CheckPlan | None:
    """The check for ``track`` of ``script`` (weight override applied), or None if dropped."""
    assert script.command is not None  # the reader refuses a vrrp_script without one
    weight = (
        track.weight if track.weight is not None else (script.weight.value if script.weight else 0)
    )
    reverse = track.reverse if track.weight is not None else script.reverse
    source = f"vrrp_script {script.name} ({script.where})"
    if reverse:
        findings.unsupported(
            track.where,
            f"track_script {script.name}: 'weight {weight} reverse' is not converted (keepvip "
            "has no reversed weights); the check is left out",
            subject,
        )
        return None
    argv = script.command.value
    probe = _probe(argv, script.command.where, script.name, subject, findings)
    interval = script.interval.value if script.interval else DEFAULT_INTERVAL
    timeout = script.timeout.value if script.timeout else interval
    if interval < MIN_INTERVAL:
        findings.warn(
            script.interval.where if script.interval else script.where,
            f"interval {interval:g}s of {script.name} is below keepvip's minimum; "
            f"converted to {format_duration(MIN_INTERVAL)}",
            subject,
        )
    return CheckPlan(
        name=check_name(script.name),
        probe=probe,
        interval=_seconds(interval),
        timeout=_seconds(timeout),
        rise=_count(script.rise.value, "rise", script.rise.where, script.name, subject, findings)
        if script.rise
        else 1,
        fall=_count(script.fall.value, "fall", script.fall.where, script.name, subject, findings)
        if script.fall
        else 1,
        weight=weight,
        source=source,
        where=track.where,
    )


def _probe(
    argv: tuple[str, ...], where: Location, name: str, subject: str, findings: Findings
) -> dict[str, Any]:
    text = " ".join(argv)
    m = _DEV_TCP.match(text.strip())
    if m and 1 <= int(m.group(2)) <= 65535:
        host, port = m.group(1), int(m.group(2))
        findings.note(
            where,
            f"vrrp_script {name}: the bash idiom '{text}' (a TCP connect, which keepalived runs "
            f"through /bin/sh) became a tcpSocket check on {host}:{port}; with dash as "
            "/bin/sh the original always failed",
            subject,
        )
        return {"tcpSocket": {"host": host, "port": port}}
    shell = [w for w in argv[1:] if _is_shell(w)] or ([argv[0]] if _is_shell(argv[0]) else [])
    if shell:
        findings.warn(
            where,
            f"vrrp_script {name}: {' '.join(shell)!r} is shell syntax, but keepalived runs "
            "scripts without a shell, so these are plain arguments to "
            f"{argv[0]}; the exec check does the same. For shell semantics write the "
            "command as [/bin/sh, -c, '...']",
            subject,
        )
    return {"exec": {"command": list(argv)}}


def _is_shell(word: str) -> bool:
    """Whether a word only means something to a shell (operators, redirections, substitutions)."""
    return (
        word in _SHELL_WORDS
        or any(c in word for c in "|;&`")
        or "$(" in word
        or word.startswith((">", "<", "2>"))
    )


def _count(
    value: int, what: str, where: Location, name: str, subject: str, findings: Findings
) -> int:
    if value > MAX_RISE_FALL:
        findings.warn(
            where,
            f"{what} {value} of {name} is above keepvip's maximum; converted to {MAX_RISE_FALL}",
            subject,
        )
        return MAX_RISE_FALL
    return max(1, value)


def from_interface(
    track: Track, own_interface: str | None, subject: str, findings: Findings
) -> CheckPlan | None:
    """A ``link`` check for one ``track_interface`` line, or None when keepvip covers it already."""
    if own_interface is not None and track.name == own_interface:
        findings.note(
            track.where,
            f"track_interface {track.name}: the instance's own interface; keepalived ignores "
            "tracking it and keepvip always tracks it (down means Fault)",
            subject,
        )
        return None
    if track.reverse:
        findings.unsupported(
            track.where,
            f"track_interface {track.name}: 'reverse' is not converted (keepvip has no "
            "reversed weights); the check is left out",
            subject,
        )
        return None
    return CheckPlan(
        name=check_name(track.name, "link-"),
        probe={"link": {"interface": track.name}},
        interval=DEFAULT_INTERVAL,
        timeout=DEFAULT_INTERVAL,
        rise=1,
        fall=1,
        weight=track.weight or 0,
        source=f"track_interface {track.name} ({track.where})",
        where=track.where,
    )
