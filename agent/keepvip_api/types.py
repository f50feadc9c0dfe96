"""Field types of the VirtualIP model: durations, addresses, bounded integers.

Each type carries both its Python check and the JSON-schema fragment that the
CRD is generated from, so the two cannot drift apart. Messages are written to
be read after a field path: ``spec.virtualRouterID: 300 is not in 1..255``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv6Address,
    IPv6Interface,
    ip_address,
    ip_interface,
)
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, Field, PlainSerializer, PlainValidator, WithJsonSchema

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
T = TypeVar("T")


def parse_duration(value: Any) -> float:
    """'100ms', '1s', '1.5s', '1m30s' -> seconds, at millisecond resolution."""
    if not isinstance(value, str) or not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration like 100ms, 1s or 1m30s")
    total = Decimal(0)
    for number, unit in _PART.findall(value):
        try:
            total += Decimal(number) * _UNIT_MS[unit]
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only digits
            raise ValueError(f"{value!r} is not a duration") from exc
    if total != total.to_integral_value():
        raise ValueError(f"{value!r} is finer than a millisecond")
    return int(total) / 1000


def format_duration(seconds: float) -> str:
    """The shortest exact form: 1h, 5m, 1m30s, 2s, 1500ms."""
    ms = round(seconds * 1000)
    if ms == 0 or ms % 1000:
        return f"{ms}ms" if ms else "0s"
    s = ms // 1000
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec else "")
    return out


Duration = Annotated[
    float,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


def _ip(value: Any, parse: Callable[[str], T], what: str) -> T:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IP address string")
    try:
        return parse(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not {what}") from None


def _parse_interface(value: Any) -> IPv4Interface | IPv6Interface:
    return _ip(value, ip_interface, "an IP address with an optional /prefix")


def _parse_address(value: Any) -> IPv4Address | IPv6Address:
    return _ip(value, ip_address, "an IP address")


def _ip_schema(max_length: int, rule: str, message: str) -> WithJsonSchema:
    """A string field whose form the API server checks with a CEL rule."""
    validation = {"rule": rule, "message": message}
    return WithJsonSchema(
        {"type": "string", "maxLength": max_length, "x-kubernetes-validations": [validation]}
    )


InterfaceAddress = Annotated[
    IPv4Interface | IPv6Interface,
    PlainValidator(_parse_interface),
    PlainSerializer(str, return_type=str),
    _ip_schema(64, "isIP(self) || isCIDR(self)", "must be an IP address with an optional /prefix"),
]
"""A VIP with its prefix length; '192.0.2.50' alone means /32 (IPv6: /128)."""

Address = Annotated[
    IPv4Address | IPv6Address,
    PlainValidator(_parse_address),
    PlainSerializer(str, return_type=str),
    _ip_schema(45, "isIP(self)", "must be an IP address"),
]


def int_in(lo: int, hi: int) -> Any:
    """An integer field bounded to lo..hi with a message that names both bounds."""

    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise ValueError(f"{value} is not in {lo}..{hi}")
        return value

    return Annotated[
        int, AfterValidator(check), Field(json_schema_extra={"minimum": lo, "maximum": hi})
    ]


def duration_in(lo: float, hi: float) -> Any:
    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise ValueError(
                f"{format_duration(value)} is not in {format_duration(lo)}..{format_duration(hi)}"
            )
        return value

    lo_s, hi_s = format_duration(lo), format_duration(hi)
    cel = {
        "rule": f"duration(self) >= duration('{lo_s}') && duration(self) <= duration('{hi_s}')",
        "message": f"must be {lo_s}..{hi_s}",
    }
    schema = {"type": "string", "pattern": DURATION_PATTERN, "x-kubernetes-validations": [cel]}
    return Annotated[
        float,
        PlainValidator(parse_duration),
        AfterValidator(check),
        PlainSerializer(format_duration, return_type=str),
        WithJsonSchema(schema),
    ]
