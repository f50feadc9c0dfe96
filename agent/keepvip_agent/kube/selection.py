"""Which VirtualIPs the node agent runs: a pure reading of the VirtualIP list and its own Node.

A VirtualIP runs here when it parses, has a VRID (its own or the operator's),
the operator has not blocked it (condition ``Conflict`` True) nor left it to
the per-VirtualIP agents of an earlier keepvip (``Upgrading`` True), and its
placement (``nodeSelector``, ``tolerations``) selects this Node, judged by
:func:`keepvip_api.placement.judge` as the operator judges it. Anything else
runs nothing and writes nothing: an unparsable spec is the operator's to
report, and a VirtualIP for another node is none of this node's business.

In a shared cluster (:class:`Gate`) two more rules, so that a tenant's
VirtualIP never makes this node bind or run anything the admin did not allow:

* with address grants on, only a generation the operator accepted runs
  (:func:`keepvip_api.acceptance.acceptance`). While a newer generation is
  not judged yet, the last accepted spec keeps running (an edit of a serving
  VirtualIP must not drop its VIP for the operator's round trip); a refused
  generation stops it. After a restart nothing is remembered: an unjudged
  generation waits.
* commands and checks aimed at this node run only for trusted namespaces,
  whatever the operator said (defence in depth: the same rule,
  :func:`keepvip_api.acceptance.trust_problems`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keepvip_api import SpecError, from_api_object
from keepvip_api.acceptance import Trust, acceptance, node_addresses, refusal, trust_problems
from keepvip_api.model import VirtualIP
from keepvip_api.placement import NodeView, judge

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gate:
    """What a node agent in a shared cluster obeys besides placement."""

    trust: Trust
    labels: Mapping[str, Mapping[str, str]] | None = None
    """Namespace labels by name (read only when the trust names a label)."""
    accepted: Mapping[str, VirtualIP] = field(default_factory=dict)
    """The VirtualIPs run in the last round, by key: the last accepted spec of each."""


@dataclass
class Selection:
    run: dict[str, VirtualIP] = field(default_factory=dict)
    """key (namespace/name) -> the VirtualIP to run here."""
    skipped: dict[str, str] = field(default_factory=dict)
    """key -> why not (logged on change; never written to the API)."""


def _condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def blocked(obj: Mapping[str, Any]) -> bool:
    """The operator set ``Conflict`` True: the VirtualIP must not be advertised."""
    return _condition_true(obj, "Conflict")


def upgrading(obj: Mapping[str, Any]) -> bool:
    """The operator set ``Upgrading`` True: per-VirtualIP agents of an earlier keepvip still
    serve it, and two agents of one node must never advertise one VRID."""
    return _condition_true(obj, "Upgrading")


UPGRADING = "the per-VirtualIP agents of an earlier keepvip still serve it"
HOLD_MARGIN = 1.0
"""Seconds, on top of a master-down interval: the old master's node agent sees the change too."""


def handover_hold(obj: Mapping[str, Any], vip: VirtualIP, node: str) -> float:
    """Seconds this node waits before starting a VirtualIP that just left ``Upgrading``.

    Every node agent sees the condition go at the same moment. Started
    together, the first master-down timer to expire wins, which is not
    always the preferred node's (startup jitter beats the priority skew of a
    few milliseconds), and preemption then moves the VIP a second time. So
    the node the old agents had as master (``status.master``) starts at once
    and the others a master-down interval (at most 4 adverts) and a second
    later, as backups that hear it: the VIP comes back where it was.
    """
    master = (obj.get("status") or {}).get("master")
    if not master or master == node:
        return 0.0
    return 4 * vip.spec.advert_interval + HOLD_MARGIN


def _gated(
    obj: Mapping[str, Any], vip: VirtualIP, gate: Gate, own: set[Any]
) -> tuple[VirtualIP | None, str | None]:
    """The VirtualIP to run (the object's, or its last accepted one), or why none."""
    if gate.trust.address_grants:
        verdict = acceptance(obj)
        if verdict == "refused":
            return None, "refused by the operator: " + refusal(obj)
        if verdict == "pending":
            last = gate.accepted.get(vip.key)
            if last is None:
                return None, "waiting for the operator to accept this generation"
            vip = last
    ns = vip.metadata.namespace or ""
    labels = gate.labels.get(ns) if gate.labels is not None else None
    problem = trust_problems(vip.spec, ns, gate.trust, labels, own)
    if problem is not None:
        return None, f"refused on this node: {problem[0]}: {problem[1]}"
    return vip, None


class ParseCache:
    """VirtualIPs parsed once per spec: what :func:`select` reads is keyed by uid, generation
    and the allocated VRID (the only parts of an object :func:`from_api_object` takes that
    can change under one uid; name and namespace cannot).

    Every status write of every VirtualIP is a watch event and each event a new
    selection: at 100 ms adverts with 250 VirtualIPs that was dozens of full
    parses of all 250 a second on every node. A parse failure is remembered too.
    """

    def __init__(self) -> None:
        self._parsed: dict[str, tuple[tuple[Any, ...], VirtualIP | SpecError]] = {}
        self.parses = 0

    def parse(self, obj: Mapping[str, Any]) -> VirtualIP:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        version = (
            meta.get("generation"),
            (obj.get("status") or {}).get("virtualRouterID"),
            meta.get("name"),
            meta.get("namespace"),
        )
        cached = self._parsed.get(uid)
        if cached is None or cached[0] != version or version[0] is None:
            self.parses += 1
            try:
                result: VirtualIP | SpecError = from_api_object(dict(obj), allocated_vrid=True)
            except SpecError as exc:
                result = exc
            cached = self._parsed[uid] = (version, result)
        if isinstance(cached[1], SpecError):
            raise cached[1]
        return cached[1]

    def keep_only(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Forget the VirtualIPs that are gone."""
        live = {
            (o.get("metadata") or {}).get("uid")
            or f"{(o.get('metadata') or {}).get('namespace')}/{(o.get('metadata') or {}).get('name')}"
            for o in objects
        }
        for uid in set(self._parsed) - live:
            del self._parsed[uid]


def select(
    objects: Iterable[Mapping[str, Any]],
    node: Mapping[str, Any] | None,
    gate: Gate | None = None,
    *,
    cache: ParseCache | None = None,
) -> Selection:
    out = Selection()
    objects = list(objects)
    if cache is None:
        cache = ParseCache()
    else:
        cache.keep_only(objects)
    view = NodeView.from_api_object(node) if node is not None else None
    own = node_addresses(node) if node is not None else set()
    for obj in objects:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if meta.get("deletionTimestamp"):
            out.skipped[key] = "being deleted"
            continue
        try:
            vip = cache.parse(obj)
        except SpecError as exc:
            out.skipped[key] = "invalid: " + "; ".join(exc.problems)
            continue
        if vip.spec.virtual_router_id is None:
            out.skipped[key] = "no virtualRouterID yet"
        elif blocked(obj):
            out.skipped[key] = "blocked by the operator (Conflict)"
        elif upgrading(obj):
            out.skipped[key] = UPGRADING
        elif view is None:
            out.skipped[key] = "this Node is not known yet"
        else:
            chosen, why = _gated(obj, vip, gate, own) if gate is not None else (vip, None)
            placed = judge(view, chosen.spec.node_selector, chosen.spec.tolerations) if (
                chosen is not None
            ) else None  # fmt: skip
            if chosen is not None and placed is not None and placed.selected:
                out.run[chosen.key] = chosen
            else:
                out.skipped[key] = why or (placed.reason if placed is not None else "refused")
    return out
