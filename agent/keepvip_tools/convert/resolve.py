"""One host's file as units to convert: its instances, with sync groups merged where they can be.

The per-instance rules (version, interval, priority, preemption,
authentication) are in :mod:`~.rules` and the check rules in :mod:`~.checks`;
this module puts them together per unit and adds what concerns the unit as
a whole: which addresses can move, the tracked scripts and interfaces, the
hooks, the announcements, and how a host's details (source addresses, the
initial state) differ from keepvip's.

A ``vrrp_sync_group`` whose members share interface, peers, version,
interval, authentication and priority becomes one unit (one VirtualIP with
all the addresses: the instances move together, which is what the group
is for); otherwise each member stays its own unit and the user is told that
keepvip has no sync groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keepvip_api.types import format_duration
from keepvip_tools.convert.checks import CheckPlan, from_interface, from_script
from keepvip_tools.convert.errors import Findings, Location
from keepvip_tools.convert.rules import (
    MAX_PRIORITY,
    OWNER,
    Election,
    HmacPlan,
    address_family,
    election,
    strict_mode,
)
from keepvip_tools.convert.source import At, Instance, IPAddress, IPInterface, NodeFile, SyncGroup

__all__ = ["NodeView", "resolve_node"]

STATES = ("master", "backup", "fault")


@dataclass
class NodeView:
    """One host's view of one VirtualIP-to-be: an instance, or a sync group merged into one."""

    node: str
    path: str
    name: str
    kind: str
    """``vrrp_instance`` or ``vrrp_sync_group``."""
    where: Location
    subjects: tuple[str, ...]
    """Instance and group names whose findings belong to this unit."""
    vrid: At[int]
    family: int
    interface: At[str] | None
    version: int
    version_why: str
    interval: float
    interval_why: str
    priority: int
    """Configured priority for keepvip: keepalived's base plus positive weights."""
    priority_why: str
    preempt: bool
    preempt_why: str
    preempt_delay: float
    password: str | None
    password_why: str | None
    hmac: HmacPlan | None
    hmac_why: str | None
    addresses: list[At[IPInterface]]
    unicast: list[At[IPAddress]]
    checks: list[CheckPlan]
    notify: dict[str, tuple[list[str], str, Location]] = field(default_factory=dict)
    announce: dict[str, Any] = field(default_factory=dict)
    sources: list[Location] = field(default_factory=list)
    excluded: bool = False
    """Whether some addresses came from virtual_ipaddress_excluded."""


# -- units -------------------------------------------------------------------------------


def _groups(node: NodeFile, f: Findings) -> list[tuple[SyncGroup, list[Instance]]]:
    taken: dict[str, str] = {}
    out: list[tuple[SyncGroup, list[Instance]]] = []
    for group in node.groups:
        members: list[Instance] = []
        for member in group.members:
            inst = node.instance(member.value)
            if inst is None:
                f.warn(
                    member.where,
                    f"vrrp_sync_group {group.name}: there is no vrrp_instance {member.value}; "
                    "keepalived ignores the name",
                    group.name,
                )
            elif member.value in taken:
                f.warn(
                    member.where,
                    f"{member.value} is already in vrrp_sync_group {taken[member.value]}; "
                    "keepalived ignores it here",
                    group.name,
                )
            else:
                taken[member.value] = group.name
                members.append(inst)
        if not members:
            f.warn(
                group.where,
                f"vrrp_sync_group {group.name} has no instances; keepalived removes it",
                group.name,
            )
            continue
        out.append((group, members))
    return out


def _mergeable(group: SyncGroup, members: list[Instance], node: NodeFile, f: Findings) -> bool:
    """Whether the members can be one VirtualIP (one election); says why not if they cannot."""
    if len(members) == 1:
        return True
    first = members[0]
    e0 = election(first, node, Findings())
    iface0 = first.interface.value if first.interface else None
    differences: list[str] = []
    for other in members[1:]:
        e = election(other, node, Findings())
        iface = other.interface.value if other.interface else None
        differ = [
            what
            for what, a, b in (
                ("interface", iface0, iface),
                ("unicast peers", set(e0.unicast), set(e.unicast)),
                ("VRRP version", e0.version, e.version),
                ("advert interval", e0.interval, e.interval),
                ("authentication", e0.password, e.password),
                ("auth_hmac", e0.hmac, e.hmac),
                ("priority", e0.base, e.base),
                ("preemption", (e0.preempt, e0.preempt_delay), (e.preempt, e.preempt_delay)),
            )
            if a != b
        ]
        if differ:
            differences.append(f"{other.name} ({', '.join(differ)})")
    if not differences:
        return True
    f.warn(
        group.where,
        f"vrrp_sync_group {group.name}: {', '.join(differences)} differ(s) from {first.name}, "
        "so the group cannot be one VirtualIP; keepvip has no sync groups, so its instances "
        "were converted to separate VirtualIPs that fail over independently (a link check on "
        "the other interface with onFailure fault makes a failure of one take the other out)",
        group.name,
    )
    return False


def resolve_node(node: NodeFile, name: str, f: Findings, standalone: bool = True) -> list[NodeView]:
    """Every unit of one host's file, in file order, with keepalived's rules applied.

    ``standalone``: hooks are part of the output (the Kubernetes form has none),
    so the notes on how they are called only make sense then.
    """
    views: list[NodeView] = []
    grouped: dict[str, tuple[SyncGroup, list[Instance], bool]] = {}
    for group, members in _groups(node, f):
        merge = _mergeable(group, members, node, f)
        for inst in members:
            grouped[inst.name] = (group, members, merge)
    done: set[str] = set()
    for inst in node.instances:
        if inst.name in done:
            continue
        entry = grouped.get(inst.name)
        if entry is not None and entry[2]:
            group, members, _ = entry
            done.update(m.name for m in members)
            views.append(_view(node, name, members, group, f, standalone))
        else:
            done.add(inst.name)
            views.append(_view(node, name, [inst], entry[0] if entry else None, f, standalone))
    return views


def _notes(node: NodeFile, members: list[Instance], f: Findings) -> At[str] | None:
    """Findings on per-host details keepvip handles differently; returns the interface used."""
    first = members[0]
    subject = first.name
    strict = strict_mode(first, node)
    if strict is not None and first.unicast_peers:
        f.warn(
            first.unicast_peers[0].where,
            f"unicast_peer in strict mode ({strict.where}): keepalived refuses to run this "
            "instance ('Unicast peers are not supported in strict mode'); converted as unicast",
            subject,
        )
    interface = first.interface
    if interface is None and node.default_interface is not None:
        interface = node.default_interface
        f.note(
            interface.where,
            f"{first.name} has no interface: keepalived uses default_interface {interface.value}",
            subject,
        )
    if first.state is not None and first.state.value == "MASTER":
        f.note(
            first.state.where,
            "state MASTER: keepvip has no initial state; the election (priority, then "
            "address) decides who is master",
            subject,
        )
    for inst in members:
        if inst.mcast_src is not None:
            f.note(
                inst.mcast_src.where,
                f"mcast_src_ip {inst.mcast_src.value}: keepvip sends from the interface's "
                "primary address; make sure that is this address",
                inst.name,
            )
        if inst.unicast_src is not None and not inst.unicast_peers:
            f.note(
                inst.unicast_src.where,
                "unicast_src_ip without unicast_peer only sets the multicast source address; "
                "keepvip sends from the interface's primary address",
                inst.name,
            )
    return interface


def _moved(
    members: list[Instance], interface: At[str] | None, version: int, f: Findings
) -> list[At[IPInterface]]:
    """The addresses keepvip can move for these instances (what it cannot is reported)."""
    first = members[0]
    addresses = _addresses(members, interface, f)
    if version == 2:
        for a in [a for a in addresses if a.value.version == 6]:
            f.unsupported(
                a.where,
                f"{a.value}: VRRPv2 carries IPv4 only and keepvip keeps a VirtualIP's addresses "
                "in one VRRP version; not converted (put IPv6 addresses in a VRRPv3 VirtualIP of "
                "their own)",
                first.name,
            )
        addresses = [a for a in addresses if a.value.version == 4]
    if not addresses:
        f.error(
            first.where,
            f"{first.name}: no address is left to move: each has a 'dev' other than the "
            "instance's interface, and keepvip binds a VirtualIP's addresses on its interface",
        )
    return addresses


def _priority(
    core: Election, checks: list[CheckPlan], first: Instance, f: Findings
) -> tuple[int, str]:
    """keepalived's base priority plus the positive weights (see :mod:`~.checks`)."""
    bonus = sum(c.bonus for c in checks)
    if core.base == OWNER or not bonus:
        return core.base, core.base_why
    parts = " + ".join(f"{c.bonus} ({c.name})" for c in checks if c.bonus)
    priority = core.base + bonus
    why = f"{core.base_why} + {parts}: positive weights, see checks"
    if priority > MAX_PRIORITY:
        f.warn(
            first.where,
            f"priority {core.base} plus positive weights is {priority}; keepalived caps the "
            f"sum at {MAX_PRIORITY}, keepvip cannot cap a sum, so this node is configured "
            f"with {MAX_PRIORITY} and advertises {MAX_PRIORITY - bonus} (keepalived: "
            f"{core.base}) when every weighted check fails",
            first.name,
        )
        priority = MAX_PRIORITY
    return priority, why


def _view(
    node: NodeFile,
    name: str,
    members: list[Instance],
    group: SyncGroup | None,
    f: Findings,
    standalone: bool,
) -> NodeView:
    first = members[0]
    merged = group is not None and len(members) > 1
    core = election(first, node, f)
    for other in members[1:]:
        election(other, node, f)  # its findings (rounding, auth, ...) belong to the merged unit
    interface = _notes(node, members, f)
    addresses = _moved(members, interface, core.version, f)
    checks = _checks(node, members, group, core.base, interface, f)
    priority, priority_why = _priority(core, checks, first, f)
    kind = "vrrp_sync_group" if merged else "vrrp_instance"
    assert first.vrid is not None  # the reader refuses instances without one
    view = NodeView(
        node=name,
        path=node.path,
        name=group.name if merged and group else first.name,
        kind=kind,
        where=group.where if merged and group else first.where,
        subjects=tuple(
            dict.fromkeys([*(m.name for m in members), *([group.name] if group else [])])
        ),
        vrid=first.vrid,
        family=address_family(first),
        interface=interface,
        version=core.version,
        version_why=core.version_why,
        interval=core.interval,
        interval_why=core.interval_why,
        priority=priority,
        priority_why=priority_why,
        preempt=core.preempt,
        preempt_why=core.preempt_why,
        preempt_delay=core.preempt_delay,
        password=core.password,
        password_why=core.password_why,
        hmac=core.hmac,
        hmac_why=core.hmac_why,
        addresses=addresses,
        unicast=[At(ip, first.where) for ip in core.unicast],
        checks=checks,
        sources=[m.where for m in members],
        excluded=any(vip.excluded for m in members for vip in m.vips),
    )
    if merged and group is not None:
        others = ", ".join(
            f"{m.name} (VRID {m.vrid.value if m.vrid else '?'})" for m in members[1:]
        )
        f.note(
            group.where,
            f"vrrp_sync_group {group.name}: its instances move together, so they became one "
            f"VirtualIP with all their addresses and the VRID of {first.name}; {others} "
            "no longer run their own election",
            group.name,
        )
    if group is not None and not merged:
        for kind, cmd in group.notify.items():
            f.unsupported(
                cmd.where,
                f"vrrp_sync_group {group.name}'s {'notify_' + kind if kind != 'notify' else 'notify'} "
                "is not converted: the group's instances became separate VirtualIPs",
                group.name,
            )
    view.notify = _notify(members, group if merged else None, f, standalone)
    view.announce = _announce(first, node, f)
    return view


def _addresses(
    members: list[Instance], interface: At[str] | None, f: Findings
) -> list[At[IPInterface]]:
    out: list[At[IPInterface]] = []
    seen: dict[str, Location] = {}
    family = address_family(members[0])
    for inst in members:
        for vip in inst.addresses:
            text = str(vip.address.ip)
            if text in seen:
                f.error(vip.where, f"{vip.address} is listed twice (also at {seen[text]})")
                continue
            if vip.dev is not None and interface is not None and vip.dev != interface.value:
                f.unsupported(
                    vip.where,
                    f"{vip.address} dev {vip.dev}: keepvip binds every address of a VirtualIP "
                    f"on its interface ({interface.value}); not converted (give {vip.dev}'s "
                    "addresses their own VirtualIP if they must move too)",
                    inst.name,
                )
                continue
            seen[text] = vip.where
            if vip.label is not None:
                f.note(
                    vip.where,
                    f"{vip.address} label {vip.label}: keepvip sets no address labels",
                    inst.name,
                )
            if vip.dropped_options:
                f.note(
                    vip.where,
                    f"{vip.address}: {' '.join(vip.dropped_options)} not set by keepvip "
                    "(it adds the address with its prefix only)",
                    inst.name,
                )
            if vip.excluded and vip.address.version == family:
                f.note(
                    vip.where,
                    f"{vip.address} is in virtual_ipaddress_excluded: keepvip carries every "
                    "address of the election's family in its advertisements",
                    inst.name,
                )
            out.append(At(vip.address, vip.where))
    return out


def _checks(
    node: NodeFile,
    members: list[Instance],
    group: SyncGroup | None,
    base: int,
    interface: At[str] | None,
    f: Findings,
) -> list[CheckPlan]:
    plans: dict[str, CheckPlan] = {}
    in_group = group is not None and group.tracking_weight is None
    own = interface.value if interface else None

    def add(plan: CheckPlan | None, subject: str) -> None:
        if plan is None:
            return
        old = plans.get(plan.name)
        if old is not None:
            if not old.same_as(plan):
                f.warn(
                    plan.where,
                    f"{plan.source} is tracked twice with different settings; the first ({old.where}) is kept",
                    subject,
                )
            return
        plans[plan.name] = plan

    tracked = [(inst.name, t, False) for inst in members for t in inst.track_scripts]
    tracked += [(group.name, t, True) for t in group.track_scripts] if group else []
    for subject, track, _ in tracked:
        script = node.scripts.get(track.name)
        if script is None:
            f.warn(
                track.where,
                f"track_script {track.name}: there is no vrrp_script {track.name}; keepalived ignores it",
                subject,
            )
            continue
        plan = from_script(script, track, subject, f)
        if plan is not None and plan.weight != 0 and (in_group or base == OWNER):
            why = (
                "the address owner (priority 255)"
                if base == OWNER
                else f"sync group {group.name if group else ''}"
            )
            f.warn(
                track.where,
                f"track_script {track.name} has weight {plan.weight}: keepalived ignores weighted "
                f"scripts on {why}; not converted",
                subject,
            )
            continue
        add(plan, subject)
    ifaces = [(inst.name, t) for inst in members for t in inst.track_interfaces]
    ifaces += [(group.name, t) for t in group.track_interfaces] if group else []
    for subject, track in ifaces:
        plan = from_interface(track, own, subject, f)
        if plan is not None and base == OWNER and plan.weight != 0:
            f.warn(
                track.where,
                f"track_interface {track.name} has a weight: keepalived ignores it on the "
                "address owner (priority 255); not converted",
                subject,
            )
            continue
        if plan is not None and plan.weight != 0 and in_group:
            f.note(
                track.where,
                f"track_interface {track.name} in sync group {group.name if group else ''}: "
                "keepalived 2.2.7 logs that it ignores the weight but applies it; converted "
                "with the weight",
                subject,
            )
        add(plan, subject)
    return list(plans.values())


def _notify(
    members: list[Instance], group: SyncGroup | None, f: Findings, standalone: bool
) -> dict[str, tuple[list[str], str, Location]]:
    owner_name = group.name if group else members[0].name
    table = group.notify if group else members[0].notify
    label = "GROUP" if group else "INSTANCE"
    out: dict[str, tuple[list[str], str, Location]] = {}
    for state in STATES:
        if state in table:
            cmd = table[state]
            out[state] = (list(cmd.value), f"notify_{state} ({cmd.where})", cmd.where)
    generic = table.get("notify")
    if generic is not None:
        for state in STATES:
            if state in out:
                f.unsupported(
                    generic.where,
                    f"notify for {state.upper()} is not converted: keepalived runs both notify_"
                    f"{state} and notify, keepvip runs one command per state (notify_{state} kept)",
                    owner_name,
                )
                continue
            argv = [*generic.value, label, owner_name, state.upper()]
            out[state] = (argv, f"notify ({generic.where}) with {label} NAME STATE", generic.where)
        if not standalone:
            return out
        f.note(
            generic.where,
            "notify: keepvip runs it on entering MASTER, BACKUP and FAULT with the arguments "
            f"{label} {owner_name} STATE; keepalived's 4th argument (the priority) is in "
            "$KEEPVIP_PRIORITY instead, and there is no STOP call",
            owner_name,
        )
    if group is not None:
        for inst in members:
            for kind, cmd in inst.notify.items():
                f.unsupported(
                    cmd.where,
                    f"{inst.name}'s notify_{kind if kind != 'notify' else ''} is not converted: the "
                    f"instance was merged into vrrp_sync_group {group.name}, whose hooks apply",
                    inst.name,
                )
    return out


def _announce(inst: Instance, node: NodeFile, f: Findings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    repeat = inst.garp_repeat or node.garp_repeat
    if repeat is not None:
        count = min(repeat.value, 100)
        if count != repeat.value:
            f.warn(
                repeat.where,
                f"garp_master_repeat {repeat.value}: keepvip sends at most 100; converted to 100",
                inst.name,
            )
        out["count"] = count
    refresh = inst.garp_refresh or node.garp_refresh
    if refresh is not None and refresh.value > 0:
        seconds = min(float(int(refresh.value)), 3600.0)
        out["refresh"] = format_duration(seconds)
    return out
