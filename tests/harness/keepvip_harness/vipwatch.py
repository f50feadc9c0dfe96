"""The life of one new VirtualIP as the API shows it, event by event, for the apply-to-master trace.

Why: "POST to status.master" is one number made of several hops (the
operator allocates a VRID, the agents start an instance, one becomes master
and writes its entry, the operator sees the entry and writes status.master).
A watch on the one object, started before the POST, records each event's
arrival; the agents' entries carry their own wall-clock times (the master's
``lastTransitionTime``, and ``heartbeatTime``: when that entry was computed),
so each hop's share can be read off one machine's clock.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from keepvip_harness.rest import Rest


class VipTimeline:
    def __init__(self, rest: Rest, collection: str, name: str) -> None:
        self.rest, self.collection, self.name = rest, collection, name
        self.events: list[tuple[float, dict[str, Any]]] = []
        """(wall-clock arrival, the object) per event."""
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"trace-{name}")

    def start(self) -> None:
        self._thread.start()
        time.sleep(0.2)  # the watch is established before the caller's POST

    def stop(self) -> None:
        self.rest.close()
        self._thread.join(5)

    def _follow(self) -> None:
        for event in self.rest.watch(self.collection, fieldSelector=f"metadata.name={self.name}"):
            if event.get("type") in ("ADDED", "MODIFIED"):
                self.events.append((time.time(), event["object"]))

    def marks(self, posted: float) -> dict[str, float | None]:
        """Milliseconds after ``posted`` (wall clock) of each hop; None if it never came."""

        def first(pred: Any) -> tuple[float, dict[str, Any]] | None:
            return next(((t, o) for t, o in self.events if pred(o)), None)

        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - posted) * 1000, 1)

        vrid = first(lambda o: (o.get("status") or {}).get("virtualRouterID"))
        entry = first(_entries)
        master = first(lambda o: any(e.get("state") == "Master" for e in _entries(o)))
        published = first(lambda o: (o.get("status") or {}).get("master"))
        won = (
            next((e for e in _entries(master[1]) if e.get("state") == "Master"), {})
            if master
            else {}
        )
        return {
            "vrid_seen": ms(vrid[0] if vrid else None),
            "first_entry_seen": ms(entry[0] if entry else None),
            "master_transition": ms(_wall(won.get("lastTransitionTime"))),
            "master_entry_computed": ms(_wall(won.get("heartbeatTime"))),
            "master_entry_seen": ms(master[0] if master else None),
            "status_master_seen": ms(published[0] if published else None),
            "events": len(self.events),
        }

    def compact(self, posted: float) -> list[list[Any]]:
        """Each event as [ms, status.master, [[node, state], ...]] (the raw data of the trace)."""
        return [
            [
                round((t - posted) * 1000, 1),
                (o.get("status") or {}).get("master"),
                [[e.get("name"), e.get("state")] for e in _entries(o)],
            ]
            for t, o in self.events
        ]


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in (obj.get("status") or {}).get("nodes") or [] if isinstance(e, dict)]


def _wall(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    return datetime.fromisoformat(stamp).timestamp()
