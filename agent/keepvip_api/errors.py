"""Turn validation failures into one line per problem, each naming the field."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError


class SpecError(ValueError):
    """A VirtualIP document is invalid; ``problems`` holds one readable line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def field_problems(problems: Sequence[tuple[str, str]]) -> PydanticCustomError:
    """A model validator's finding about several fields, each reported on its own line.

    A field of "" means the object itself.
    """
    text = "; ".join(f"{f}: {m}" if f else m for f, m in problems)
    return PydanticCustomError("field_problems", text, {"problems": list(problems)})


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _join(path: str, field: str) -> str:
    if not field:
        return path
    if not path or field.startswith("["):
        return path + field
    return f"{path}.{field}"


def _message(err: Any) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(msg).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{value!r} is not allowed: {msg[0].lower()}{msg[1:]}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{value!r} is not an integer"
    if kind == "string_type":
        return f"{value!r} is not a string"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value!r} is not true or false"
    if kind in ("list_type", "tuple_type"):
        return f"{value!r} is not a list"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{value!r} is not a mapping"
    if kind == "string_pattern_mismatch":
        return f"{value!r} has the wrong form ({msg})"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return f"{msg[0].lower()}{msg[1:]}"
    return f"{msg[0].lower()}{msg[1:]} (got {value!r})"


def problems_of(exc: ValidationError, prefix: str = "") -> list[str]:
    lines: list[str] = []
    errors = exc.errors()
    item_paths = {
        _path(e["loc"][:-1])
        for e in errors
        if isinstance(e["loc"][-1], int) or (len(e["loc"]) > 1 and isinstance(e["loc"][-2], int))
    }
    for err in errors:
        path = _path(err["loc"])
        if err["type"] == "too_short" and path in item_paths:
            continue  # only a consequence of an invalid item, reported on its own line
        if err["type"] == "field_problems":
            for field, message in err["ctx"]["problems"]:
                where = _join(path, field)
                lines.append(f"{prefix}{where}: {message}" if where else f"{prefix}{message}")
            continue
        message = _message(err)
        lines.append(f"{prefix}{path}: {message}" if path else f"{prefix}{message}")
    return lines
