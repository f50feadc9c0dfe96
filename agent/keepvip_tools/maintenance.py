"""``keepvip drain NODE``, ``undrain NODE`` and ``move NS/NAME --to NODE``: VIPs off a node and back,
or one VIP to a chosen node.

``drain`` labels the Node ``keepvip.io/maintenance=true`` and nothing else:
other workloads are neither cordoned nor evicted. The node agents treat the
label as a cordon (:func:`keepvip_api.placement.maintenance`), so every
VirtualIP with ``onCordon: yield`` that the node holds is handed over without
a gap, and the node stays a backup of last resort. The command then follows
the VirtualIPs, printing each move, until none names the node as master; one
that stays (``onCordon: ignore``, or no other node can take it) is reported
with the reason and makes the exit status 1 after ``--timeout``.
``undrain`` removes the label: with ``preempt: true`` the VIPs come back.

``move`` sets the one-shot annotation ``keepvip.io/move-to: NODE`` (GitOps can
set it too): the agents hand the VIP over to that node without a gap and the
operator ends the request, removing the annotation and writing the outcome in
the condition ``Moved`` (and an Event), which the command prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from keepvip_api.crd import GROUP, PLURAL, VERSION
from keepvip_api.names import MOVE_ANNOTATION
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
        "-n",
        "--namespace",
        help="follow only the VirtualIPs of this namespace (default: every namespace)",
    )
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


def add_move_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("virtualip", metavar="NAMESPACE/NAME")
    p.add_argument("--to", required=True, metavar="NODE", help="the node to hand the VIP to")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context to use")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the outcome")


def moved(vip: Mapping[str, Any]) -> tuple[bool, str] | None:
    """The outcome of a move once the operator ended it (annotation gone): (done, message)."""
    if MOVE_ANNOTATION in ((vip.get("metadata") or {}).get("annotations") or {}):
        return None
    for c in (vip.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Moved":
            return c.get("status") == "True", str(c.get("message", ""))
    # The operator removes the annotation, then writes the condition with its next status
    # write: ended, the outcome not written yet (or someone else removed the request).
    return None


def run_move(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    from kubernetes import client

    namespace, sep, name = args.virtualip.partition("/")
    if not sep or not namespace or not name:
        print("keepvip move: give the VirtualIP as NAMESPACE/NAME", file=err)
        return 2
    try:
        api_client, _ns = connect(args.kubeconfig, args.context)
    except SourceError as exc:
        print(f"keepvip move: {exc}", file=err)
        return 1
    with api_client:
        custom = client.CustomObjectsApi(api_client)
        body = {"metadata": {"annotations": {MOVE_ANNOTATION: args.to}}}
        try:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)
        except client.ApiException as exc:
            print(f"keepvip move: {args.virtualip}: HTTP {exc.status} {exc.reason}", file=err)
            return 1
        print(f"{args.virtualip}: asked to move to {args.to}", file=out)
        deadline = time.monotonic() + args.timeout
        pending = True
        while time.monotonic() < deadline:
            time.sleep(POLL)
            vip: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            outcome = moved(vip)
            if outcome is not None:
                print(f"{args.virtualip}: {outcome[1]}", file=out if outcome[0] else err)
                return 0 if outcome[0] else 1
            pending = MOVE_ANNOTATION in ((vip.get("metadata") or {}).get("annotations") or {})
    if not pending:
        print(f"keepvip move: {args.virtualip}: the request was removed without an outcome",
              file=err)  # fmt: skip
        return 1
    print(f"keepvip move: no outcome after {args.timeout:g}s (is keepvip-operator running?); "
          f"the request stays in the annotation {MOVE_ANNOTATION}", file=err)  # fmt: skip
    return 1


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
            answer: Any = (
                custom.list_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL)
                if args.namespace
                else custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            )
            return [i for i in answer.get("items", []) if isinstance(i, dict)]

        stayed = follow(args.node, listing, out, timeout=args.timeout)
    return 1 if stayed else 0
