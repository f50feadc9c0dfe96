"""Where a piece of keepalived configuration came from, and the two ways a conversion speaks up.

A :class:`ConvertError` stops the conversion: the input is malformed or cannot
be expressed at all (unbalanced braces, an unknown keyword, two instances
claiming one VRID). It carries every problem found, each as ``file:line:
message``, and the command exits 2. A :class:`Finding` does not stop it: the
input was understood and converted, but something was translated, changed,
or left out, and the user must be told where. Nothing is dropped without a
finding; that rule is what makes the converter trustworthy, so both types
insist on a location.

These are the converter's only exceptions: whatever text is fed in, the
parser raises :class:`ConvertError` or nothing (a property test holds it to that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["ConvertError", "Finding", "Findings", "Location", "Problem", "Severity"]


@dataclass(frozen=True, order=True)
class Location:
    """A line of an input file, as the user named it (includes relative to their parent)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Problem:
    where: Location | None
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConvertError(Exception):
    """The configuration cannot be converted; ``problems`` says where and why, one line each."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=_problem_order)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, where: Location | None, message: str) -> ConvertError:
        return cls([Problem(where, message)])


def _problem_order(p: Problem) -> tuple[str, int, str]:
    return (p.where.path, p.where.line, p.message) if p.where else ("", 0, p.message)


class Severity(Enum):
    """How much a finding changes what the user gets, mildest first."""

    NOTE = "note"
    """Translated; worth knowing (a default made explicit, a value rounded the way keepalived does)."""
    WARNING = "warning"
    """The input has a mistake keepalived tolerates, or keepvip behaves differently here."""
    UNSUPPORTED = "unsupported"
    """An option keepvip does not have; it was left out of the output."""


@dataclass(frozen=True)
class Finding:
    where: Location
    severity: Severity
    message: str
    subject: str | None = None
    """The keepalived instance or group it concerns (its VirtualIP gets it as a comment), if any."""

    def __str__(self) -> str:
        return f"{self.where}: {self.severity.value}: {self.message}"


@dataclass
class Findings:
    """Collects findings and errors while reading and mapping; errors are raised together."""

    items: list[Finding] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)

    def add(
        self, where: Location, severity: Severity, message: str, subject: str | None = None
    ) -> None:
        finding = Finding(where, severity, message, subject)
        if finding not in self.items:
            self.items.append(finding)

    def note(self, where: Location, message: str, subject: str | None = None) -> None:
        self.add(where, Severity.NOTE, message, subject)

    def warn(self, where: Location, message: str, subject: str | None = None) -> None:
        self.add(where, Severity.WARNING, message, subject)

    def unsupported(self, where: Location, message: str, subject: str | None = None) -> None:
        self.add(where, Severity.UNSUPPORTED, message, subject)

    def error(self, where: Location | None, message: str) -> None:
        self.errors.append(Problem(where, message))

    def raise_errors(self) -> None:
        if self.errors:
            raise ConvertError(self.errors)

    def about(self, subjects: Iterable[str]) -> list[Finding]:
        wanted = set(subjects)
        return sorted(
            (f for f in self.items if f.subject in wanted), key=lambda f: (f.where, f.message)
        )
