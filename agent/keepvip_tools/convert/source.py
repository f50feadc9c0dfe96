"""What one keepalived file says, as typed data: the reader's output and the mapper's input.

One file describes one host (keepalived has no notion of a cluster), so
everything here is per node: the mapper later lines up the instances of
several hosts' files. Values keep their location (:class:`At`) because
almost every later finding points back at the line a value came from.
Nothing here applies keepalived's defaults or rules yet; that is the
mapper's job, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Generic, TypeVar

from keepvip_tools.convert.errors import Location

__all__ = [
    "At",
    "Instance",
    "NodeFile",
    "Script",
    "SyncGroup",
    "Track",
    "VipEntry",
]

T = TypeVar("T")
IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class At(Generic[T]):
    """A value and the line it was set on."""

    value: T
    where: Location


@dataclass
class Script:
    """A ``vrrp_script`` block."""

    name: str
    where: Location
    command: At[tuple[str, ...]] | None = None
    interval: At[float] | None = None
    timeout: At[float] | None = None
    weight: At[int] | None = None
    reverse: bool = False
    rise: At[int] | None = None
    fall: At[int] | None = None


@dataclass(frozen=True)
class Track:
    """One line of ``track_script`` or ``track_interface``: a name and an optional weight."""

    name: str
    where: Location
    weight: int | None = None
    reverse: bool = False


@dataclass(frozen=True)
class VipEntry:
    """One line of ``virtual_ipaddress`` or ``virtual_ipaddress_excluded``."""

    address: IPInterface
    where: Location
    excluded: bool = False
    dev: str | None = None
    label: str | None = None
    dropped_options: tuple[str, ...] = ()
    """Options keepvip does not set (brd, scope, ...), reported once per line."""


@dataclass
class HmacKey:
    """One ``key ID VALUE`` line of an ``auth_hmac`` block (keepalived 2.4)."""

    ident: int
    source: str
    """``hex``, ``file`` or ``text``: the key itself is never copied into a VirtualIP."""
    detail: str
    """What to tell the user: the file path, or the key's length."""
    fingerprint: str
    """The value as written, to compare nodes (they must agree)."""
    where: Location


@dataclass
class HmacBlock:
    """An ``auth_hmac`` block: keepalived 2.4's HMAC-SHA256 advert authentication."""

    where: Location
    keys: list[HmacKey] = field(default_factory=list)
    active: At[int] | None = None
    anti_replay: At[str] | None = None
    time_window: At[int] | None = None
    mode: At[str] | None = None


@dataclass
class Instance:
    """A ``vrrp_instance`` block of one host."""

    name: str
    where: Location
    state: At[str] | None = None
    interface: At[str] | None = None
    vrid: At[int] | None = None
    priority: At[int] | None = None
    advert_int: At[float] | None = None
    nopreempt: Location | None = None
    preempt_delay: At[float] | None = None
    version: At[int] | None = None
    auth_type: At[str] | None = None
    auth_pass: At[str] | None = None
    auth_hmac: HmacBlock | None = None
    vips: list[VipEntry] = field(default_factory=list)
    unicast_src: At[IPAddress] | None = None
    unicast_peers: list[At[IPAddress]] = field(default_factory=list)
    mcast_src: At[IPAddress] | None = None
    track_interfaces: list[Track] = field(default_factory=list)
    track_scripts: list[Track] = field(default_factory=list)
    notify: dict[str, At[tuple[str, ...]]] = field(default_factory=dict)
    """Keyed by master, backup, fault, stop and notify (the any-state script)."""
    garp_repeat: At[int] | None = None
    garp_refresh: At[float] | None = None
    strict: At[bool] | None = None
    seen: set[str] = field(default_factory=set)
    """Keywords present, valid or not (a bad value is one error, not also a missing one)."""

    @property
    def addresses(self) -> list[VipEntry]:
        """``virtual_ipaddress`` first, then ``virtual_ipaddress_excluded``."""
        return [v for v in self.vips if not v.excluded] + [v for v in self.vips if v.excluded]


@dataclass
class SyncGroup:
    """A ``vrrp_sync_group`` block: instances that change state together."""

    name: str
    where: Location
    members: list[At[str]] = field(default_factory=list)
    notify: dict[str, At[tuple[str, ...]]] = field(default_factory=dict)
    track_interfaces: list[Track] = field(default_factory=list)
    track_scripts: list[Track] = field(default_factory=list)
    tracking_weight: Location | None = None
    """``sync_group_tracking_weight`` (or the deprecated ``global_tracking``)."""


@dataclass
class NodeFile:
    """Everything one host's configuration (its file and its includes) says."""

    path: str
    router_id: At[str] | None = None
    vrrp_version: At[int] | None = None
    strict: At[bool] | None = None
    default_interface: At[str] | None = None
    garp_repeat: At[int] | None = None
    garp_refresh: At[float] | None = None
    scripts: dict[str, Script] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    groups: list[SyncGroup] = field(default_factory=list)

    def instance(self, name: str) -> Instance | None:
        for inst in self.instances:
            if inst.name == name:
                return inst
        return None
