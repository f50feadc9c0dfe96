"""``keepvip drain NODE`` and ``keepvip undrain NODE``: move every VIP off a node, and back.

``drain`` labels the Node ``keepvip.io/maintenance=true`` and nothing else:
other workloads are neither cordoned nor evicted. The node agents treat the
label as a cordon (:func:`keepvip_api.placement.maintenance`), so every
VirtualIP with ``onCordon: yield`` that the node holds is handed over without
a gap, and the node stays a backup of last resort. The command then follows
the VirtualIPs, printing each move, until none names the node as master; one
that stays (``onCordon: ignore``, or no other node can take it) is reported
with the reason and makes the exit status 1 after ``--timeout``.
``undrain`` removes the label: with ``preempt: true`` the VIPs come back.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from keepvip_api.crd import GROUP, PLURAL, VERSION
from keepvip_api.placement import MAINTENANCE_LABEL
from keepvip_tools.status.sources import SourceError, connect

__all__ = ["add_arguments", "run"]
POLL = 0.5


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", help="the Node's name")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context to use")


def add_drain_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the VIPs to move"
    )


@dataclass(frozen=True)
class Held:
    """A VirtualIP whose master is the drained node."""

    key: str
    ignores_cordon: bool


def master_of(vip: Mapping[str, Any]) -> str | None:
    """The node holding the VIP, by the agents' own entries (written on every transition);
    the operator's ``status.master`` settles two entries saying Master, or stands in for none."""
    status = vip.get("status") or {}
    named = status.get("master")
    saying = [str(n.get("name")) for n in status.get("nodes") or () if n.get("state") == "Master"]
    if len(saying) == 1:
        return saying[0]
    if named in saying or (not saying and named):
        return str(named)
    return saying[0] if saying else None


def _key(vip: Mapping[str, Any]) -> str:
    meta = vip.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def held_by(items: Iterable[Mapping[str, Any]], node: str) -> dict[str, Held]:
    """The VirtualIPs that ``node`` holds (pure)."""
    return {
        _key(vip): Held(_key(vip), (vip.get("spec") or {}).get("onCordon") == "ignore")
        for vip in items
        if master_of(vip) == node
    }


def masters(items: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    return {_key(v): master_of(v) for v in items}


def follow(
    node: str,
    listing: Callable[[], list[dict[str, Any]]],
    out: TextIO,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Print each VIP leaving ``node`` until none is held (or ``timeout``); what stayed."""
    first = held_by(listing(), node)
    for held in first.values():
        if held.ignores_cordon:
            print(f"{held.key}: stays on {node} (onCordon: ignore)", file=out)
    waiting = {k for k, h in first.items() if not h.ignores_cordon}
    if not waiting:
        print(f"no VirtualIP to move off {node}", file=out)
    deadline = clock() + timeout
    while waiting and clock() < deadline:
        sleep(POLL)
        now = masters(listing())
        for key in sorted(waiting):
            if key not in now:
                print(f"{key}: deleted", file=out)
                waiting.discard(key)
            elif now[key] != node:
                print(f"{key}: {node} -> {now[key] or '(none yet)'}", file=out)
                waiting.discard(key)
    for key in sorted(waiting):
        print(
            f"{key}: still on {node} after {timeout:g}s: no other node can take it "
            "(see `keepvip status`)",
            file=out,
        )
    return sorted(waiting) + sorted(k for k, h in first.items() if h.ignores_cordon)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``drain`` or ``undrain`` (``args.command``)."""
    out, err = out or sys.stdout, err or sys.stderr
    from kubernetes import client

    try:
        api_client, _ns = connect(args.kubeconfig, args.context)
    except SourceError as exc:
        print(f"keepvip {args.command}: {exc}", file=err)
        return 1
    with api_client:
        core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
        value = "true" if args.command == "drain" else None
        try:
            core.patch_node(args.node, {"metadata": {"labels": {MAINTENANCE_LABEL: value}}})
        except client.ApiException as exc:
            print(f"keepvip {args.command}: node {args.node}: HTTP {exc.status} {exc.reason}",
                  file=err)  # fmt: skip
            return 1
        if args.command == "undrain":
            print(f"{args.node}: keepvip maintenance ended ({MAINTENANCE_LABEL} removed)", file=out)
            return 0
        print(f"{args.node}: labelled {MAINTENANCE_LABEL}=true; moving its VIPs", file=out)

        def listing() -> list[dict[str, Any]]:
            answer: Any = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            return [i for i in answer.get("items", []) if isinstance(i, dict)]

        stayed = follow(args.node, listing, out, timeout=args.timeout)
    return 1 if stayed else 0
