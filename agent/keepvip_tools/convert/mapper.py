"""Line up several hosts' views of the same VRRP instance and write one VirtualIP for each.

keepalived is configured one host at a time; a VirtualIP describes the whole
group. An instance on one host and an instance on another are the same
VRRP group when they share virtual_router_id and address family (preferring
the same interface when several would match: the same VRID may run on two
LANs). Their per-host settings (priority, source address) become
``nodes`` entries and ``unicastPeers``; the settings VRRP needs to agree on
(addresses, version, interval, password) must agree, or the conversion
stops with both places named, because keepalived would not form a working
group either. Softer disagreements (preemption, checks, hooks) keep the
first or the highest-priority host's value and say so.

Every value written gets a comment naming its source line, and each
document opens with the findings that concern it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keepvip_api.crd import GROUP, KIND, VERSION
from keepvip_api.types import format_duration
from keepvip_tools.convert.checks import CheckPlan
from keepvip_tools.convert.errors import Finding, Findings, Location
from keepvip_tools.convert.render import Entry, Item, Map, Seq, plain, write
from keepvip_tools.convert.resolve import NodeView
from keepvip_tools.convert.rules import HmacPlan
from keepvip_tools.convert.source import NodeFile

__all__ = ["Planned", "node_names", "plan_documents"]

NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass
class Planned:
    """One VirtualIP document: its name, the commented text and the plain data it must load to."""

    name: str
    text: str
    data: dict[str, Any]
    views: list[NodeView]

    @property
    def where(self) -> Location:
        return self.views[0].where


def node_names(
    files: Sequence[NodeFile], given: Sequence[str], f: Findings, standalone: bool = True
) -> list[str]:
    """Each file's node name: ``--node`` in file order, else router_id, else the file name.

    In the Kubernetes form the names must be node names, so names that cannot be one
    (``LVS_DEVEL``) are reported.
    """
    if given and len(given) != len(files):
        f.error(
            None,
            f"--node was given {len(given)} times for {len(files)} file(s): give it once per file, in order",
        )
        return []
    names: list[str] = []
    seen: dict[str, Location] = {}
    for i, node in enumerate(files):
        if given:
            name, where = given[i], Location(node.path, 1)
        elif node.router_id is not None:
            name, where = node.router_id.value, node.router_id.where
        else:
            name, where = Path(node.path).stem, Location(node.path, 1)
            f.note(
                where,
                f"no router_id in global_defs: this host is named '{name}' after its file (use --node to name it)",
            )
        if name in seen:
            what = "--node" if given else "router_id"
            f.error(
                where,
                f"{what} {name} is also the name of the host in {seen[name]}: keepvip names nodes "
                "after router_id, so every host needs its own (or pass --node NAME once per file)",
            )
        seen[name] = where
        names.append(name)
        if not standalone and not NODE_NAME.fullmatch(name):
            f.warn(
                where,
                f"'{name}' cannot be a Kubernetes node name, and nodes[].name must be the name of "
                "the node the agent runs on: pass --node NAME once per file (or edit the output)",
            )
    return names


def _match(groups: list[list[NodeView]], view: NodeView) -> list[NodeView] | None:
    same = [
        g
        for g in groups
        if g[0].vrid.value == view.vrid.value
        and g[0].family == view.family
        and all(v.node != view.node for v in g)
    ]
    if len(same) > 1:
        iface = view.interface.value if view.interface else None
        same = [
            g for g in same if (g[0].interface.value if g[0].interface else None) == iface
        ] or same
    return same[0] if same else None


def _group_views(per_file: list[list[NodeView]], f: Findings) -> list[list[NodeView]]:
    groups: list[list[NodeView]] = []
    for views in per_file:
        used: dict[tuple[int, int, str | None], NodeView] = {}
        for view in views:
            key = (view.vrid.value, view.family, view.interface.value if view.interface else None)
            if key in used:
                other = used[key]
                f.error(
                    view.vrid.where,
                    f"{view.name}: virtual_router_id {view.vrid.value} is already used by "
                    f"{other.name} ({other.vrid.where}) on the same interface and address family; "
                    "VRIDs must be unique there",
                )
                continue
            used[key] = view
            group = _match(groups, view)
            if group is None:
                groups.append([view])
            else:
                group.append(view)
    return groups


def _doc_name(view: NodeView, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", view.name.lower()).strip("-")[:200] or "vrid"
    candidates = [base, f"{base}-{view.vrid.value}", f"{base}-{view.vrid.value}-v{view.family}"]
    for name in candidates:
        if name not in taken:
            taken.add(name)
            return name
    i = 2
    while f"{candidates[-1]}-{i}" in taken:
        i += 1
    taken.add(f"{candidates[-1]}-{i}")
    return f"{candidates[-1]}-{i}"


def _agree(views: list[NodeView], f: Findings) -> None:
    """Settings VRRP needs equal on every node: stop with both places named if they differ."""
    first = views[0]
    checks = (
        ("addresses", lambda v: sorted(str(a.value) for a in v.addresses)),
        ("VRRP version", lambda v: v.version),
        ("advertisement interval", lambda v: format_duration(v.interval)),
        ("authentication password", lambda v: v.password),
        ("auth_hmac keys or settings", lambda v: v.hmac.fingerprint if v.hmac else None),
    )
    for what, key in checks:
        for other in views[1:]:
            if key(other) != key(first):
                f.error(
                    other.where,
                    f"{other.name} on {other.node} and {first.name} on {first.node} ({first.where}) "
                    f"are the same VRRP group (VRID {first.vrid.value}) but differ in {what}: "
                    f"{key(other)} here, {key(first)} there; every node must agree",
                )


def _auth_hmac(view: NodeView, plan: HmacPlan, standalone: bool, f: Findings) -> Map:
    """``spec.authHMAC`` naming where the keys go; the keys themselves stay out of the VirtualIP."""
    slug = re.sub(r"[^a-z0-9]+", "-", view.name.lower()).strip("-")[:200] or "vrid"
    out = Map()
    if standalone:
        where = f"/etc/keepvip/keys/{slug}.keys"
        out.add("keyFile", where)
        home = f"the file {where} (mode 0600) on every node"
    else:
        where = f"{slug}-vrrp-keys"
        out.add("secretName", where)
        home = f"the data entry 'keys' of Secret {where} in the agents' namespace"
    if plan.mode is not None:
        out.add("mode", plan.mode)
    if plan.anti_replay is not None:
        out.add("antiReplay", plan.anti_replay)
    if plan.time_window is not None:
        out.add("timeWindow", f"{plan.time_window}s")
    listed = "; ".join(
        f"key {i} ({'from file ' + d if src == 'file' else src + ', ' + d})"
        for i, src, d in plan.keys
    )
    f.note(
        view.where,
        f"auth_hmac keys are not copied into the VirtualIP: write the same lines ('key ID "
        f"hex:HEX', 'active_key {plan.active}') to {home}: {listed} (a file: key holds one "
        "hex: line or a raw key; write it as 'key ID hex:...')",
        view.subjects[0],
    )
    return out


def _preempt(views: list[NodeView], f: Findings) -> NodeView:
    """The node whose preemption settings count: the one with the highest priority."""
    ranked = sorted(views, key=lambda v: -v.priority)
    chosen = ranked[0]
    lowest = ranked[-1].priority
    for v in ranked[1:]:
        if v.priority > lowest and (v.preempt, v.preempt_delay) != (
            chosen.preempt,
            chosen.preempt_delay,
        ):
            f.warn(
                v.where,
                f"preemption differs between nodes ({v.node}: {v.preempt_why}; {chosen.node}: "
                f"{chosen.preempt_why}); keepvip has one setting for all nodes and takes the "
                f"highest-priority node's ({chosen.node})",
                v.subjects[0],
            )
    return chosen


def _checks(views: list[NodeView], f: Findings) -> list[CheckPlan]:
    merged: dict[str, CheckPlan] = {}
    owners: dict[str, set[str]] = {}
    for v in views:
        for c in v.checks:
            old = merged.get(c.name)
            if old is None:
                merged[c.name] = c
            elif not old.same_as(c):
                f.warn(
                    c.where,
                    f"check {c.name} on {v.node} differs from the one at {old.where}; keepvip "
                    "has one definition for all nodes and keeps the first",
                    v.subjects[0],
                )
            owners.setdefault(c.name, set()).add(v.node)
    everyone = {v.node for v in views}
    for name, nodes in owners.items():
        if nodes != everyone:
            missing = ", ".join(sorted(everyone - nodes))
            f.warn(
                merged[name].where,
                f"check {name} is not tracked on {missing}; keepvip runs a VirtualIP's checks on "
                "every node",
                views[0].subjects[0],
            )
    return list(merged.values())


def _header(views: list[NodeView], name: str, findings: list[Finding]) -> list[str]:
    first = views[0]
    lines = [
        f"VirtualIP {name}: converted by `keepvip convert` from keepalived {first.kind} {first.name}"
    ]
    lines += [f"  {v.where} (node {v.node})" for v in views]
    if findings:
        lines.append("Findings (also printed by keepvip convert):")
        lines += [f"  {x}" for x in findings]
    return lines


def _spec(views: list[NodeView], checks: list[CheckPlan], standalone: bool, f: Findings) -> Map:
    first = views[0]
    spec = Map()
    excluded = " and virtual_ipaddress_excluded" if first.excluded else ""
    spec.add(
        "addresses",
        Seq([Item(str(a.value)) for a in first.addresses]),
        f"virtual_ipaddress{excluded} of {first.name} ({first.addresses[0].where})",
    )
    ifaces = {v.interface.value if v.interface else None for v in views}
    if len(ifaces) == 1 and first.interface is not None:
        spec.add("interface", first.interface.value, inline=f"interface ({first.interface.where})")
    elif len(ifaces) > 1:
        per = ", ".join(f"{v.node}: {v.interface.value if v.interface else 'none'}" for v in views)
        f.note(
            first.where,
            f"the nodes name the interface differently ({per}); spec.interface is left out, so "
            "each agent uses the interface whose connected route covers the first address",
            first.subjects[0],
        )
    spec.add("virtualRouterID", first.vrid.value, inline=f"virtual_router_id ({first.vrid.where})")
    spec.add("version", first.version, inline=first.version_why)
    spec.add("advertInterval", format_duration(first.interval), inline=first.interval_why)
    if first.password is not None:
        spec.add(
            "authentication",
            Map([Entry("password", first.password)]),
            first.password_why or "",
        )
    if first.hmac is not None:
        spec.add("authHMAC", _auth_hmac(first, first.hmac, standalone, f), first.hmac_why or "")
    nodes = Seq()
    for v in views:
        entry = Map([Entry("name", v.node), Entry("priority", v.priority, inline=v.priority_why)])
        nodes.items.append(Item(entry, inline=f"{v.path}"))
    note = "one entry per host file; nodes not listed get priority 100"
    if not standalone:
        note += " (names must be the Kubernetes node names)"
    spec.add("nodes", nodes, note)
    chosen = _preempt(views, f)
    spec.add("preempt", chosen.preempt, inline=f"{chosen.preempt_why}; keepvip's default is false")
    if chosen.preempt and chosen.preempt_delay > 0:
        spec.add(
            "preemptDelay",
            format_duration(chosen.preempt_delay),
            inline=f"preempt_delay on {chosen.node}",
        )
    peers = list(dict.fromkeys(str(p.value) for v in views for p in v.unicast))
    if peers:
        if any(not v.unicast for v in views):
            multicast = ", ".join(v.node for v in views if not v.unicast)
            f.warn(
                first.where,
                f"{multicast} use(s) multicast while other nodes use unicast_peer; the VirtualIP uses unicast for all",
                first.subjects[0],
            )
        spec.add(
            "unicastPeers",
            Seq([Item(p) for p in peers]),
            "unicast_src_ip and unicast_peer of every node (an agent skips its own address)",
        )
    if checks:
        spec.add("checks", Seq([_check_item(c) for c in checks]))
    notify = _notify(views, standalone, f)
    if notify is not None:
        spec.add(
            "notify",
            notify,
            "standalone hooks; $KEEPVIP_STATE and friends are in their environment",
        )
    if first.announce:
        spec.add(
            "announce", _announce(first.announce), inline="garp_master_repeat / garp_master_refresh"
        )
    return spec


def _check_item(check: CheckPlan) -> Item:
    body = Map()
    for key, value in check.document().items():
        body.add(key, _tree(value, flow_lists=key == "exec"))
    return Item(body, [check.explain()])


def _tree(value: Any, flow_lists: bool = False) -> Any:
    if isinstance(value, dict):
        return Map([Entry(k, _tree(v, flow_lists)) for k, v in value.items()])
    if isinstance(value, list):
        return Seq([Item(x) for x in value], flow=flow_lists)
    return value


def _notify(views: list[NodeView], standalone: bool, f: Findings) -> Map | None:
    first = views[0]
    if not first.notify:
        return None
    if not standalone:
        for why, where in dict.fromkeys(
            (w.split(" (")[0], at) for _a, w, at in first.notify.values()
        ):
            f.unsupported(
                where,
                f"{why} is not in the Kubernetes form: agents there run no hooks; watch the "
                "VirtualIP's status instead, or convert with --standalone",
                first.subjects[0],
            )
        return None
    for v in views[1:]:
        if {k: a for k, (a, _, _) in v.notify.items()} != {
            k: a for k, (a, _, _) in first.notify.items()
        }:
            f.warn(
                v.where,
                f"notify hooks on {v.node} differ from {first.node}'s; the first node's are kept",
                v.subjects[0],
            )
    body = Map()
    for state, (argv, why, _) in first.notify.items():
        body.add(state, Seq([Item(a) for a in argv], flow=True), inline=why)
    return body


def _announce(values: dict[str, Any]) -> Map:
    return Map([Entry(k, v) for k, v in values.items()])


def plan_documents(per_file: list[list[NodeView]], standalone: bool, f: Findings) -> list[Planned]:
    """One commented VirtualIP document per VRRP group found in the hosts' files."""
    taken: set[str] = set()
    planned: list[Planned] = []
    for views in _group_views(per_file, f):
        first = views[0]
        names = {v.name for v in views}
        if len(names) > 1:
            f.note(
                first.where,
                f"the hosts call this instance {', '.join(sorted(names))}; named after {first.name}",
                first.subjects[0],
            )
        _agree(views, f)
        name = _doc_name(first, taken)
        checks = _checks(views, f)
        spec = _spec(views, checks, standalone, f)
        doc = Map()
        doc.add("apiVersion", f"{GROUP}/{VERSION}")
        doc.add("kind", KIND)
        doc.add("metadata", Map([Entry("name", name)]))
        doc.add("spec", spec)
        subjects = {s for v in views for s in v.subjects}
        text = write(doc, _header(views, name, f.about(subjects)))
        planned.append(Planned(name, text, plain(doc), views))
    return planned
