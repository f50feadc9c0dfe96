"""Timestamps as the Kubernetes API writes them, read and written the same way on every side.

The API has two forms: ``metav1.Time`` (whole seconds, ``2026-01-02T03:04:05Z``:
creation times, condition transitions, Events) and ``metav1.MicroTime``
(microseconds: Lease times, and the agents' ``heartbeatTime`` and
``lastTransitionTime``, where a second is too coarse to order transitions).
Both are UTC with a ``Z``. Reading accepts any RFC 3339 form (an offset, a
lower-case ``z``) and takes a time without a zone as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: Any) -> datetime | None:
    """RFC 3339 (the API's and the agents' timestamps) to an aware datetime; None if not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(at: datetime) -> str:
    """``metav1.Time``: whole seconds, UTC, Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(at: datetime | float) -> str:
    """``metav1.MicroTime``: UTC with microseconds; ``at`` is aware, or Unix seconds."""
    when = datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else at
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
