"""The agent process: instances, ports, netlink events, the HTTP endpoint, signals.

Configuration comes in as a list of validated VirtualIPs through
:meth:`Agent.apply`, from a file in standalone mode or from the API in
Kubernetes mode; both modes share everything below that call.

SIGTERM and SIGINT are a graceful handover: every master sends a priority-0
advertisement and removes its VIP, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from keepvip_agent.runtime.addresses import AddressManager
from keepvip_agent.runtime.instance import InstanceRunner
from keepvip_agent.runtime.linkread import LinkReader
from keepvip_agent.runtime.metrics import Metrics
from keepvip_agent.runtime.netinfo import connected_networks, interface_for
from keepvip_agent.runtime.netlinklib import AsyncIPRoute
from keepvip_agent.runtime.port import Port
from keepvip_agent.runtime.rtnl import LinkEvents
from keepvip_api.model import VirtualIP
from keepvip_api.subnets import Network, reserved_role

logger = logging.getLogger(__name__)
RESOLVE_RETRY = 2.0
SAFETY_REFRESH = 5.0
NETWORKS_TTL = 5.0


def reserved_address(vip: VirtualIP, networks: Sequence[Network]) -> str | None:
    """Why ``vip`` may not run here: an address is a connected network's own, or None."""
    for x in vip.spec.addresses:
        role = reserved_role(x.ip, networks)
        if role is not None:
            what, net = role
            return (
                f"address {x.ip} is the {what} address of {net}, a connected network of this "
                "node; no host can be reached there: choose a host address of that network"
            )
    return None


class Agent:
    def __init__(self, node: str, metrics: Metrics | None = None) -> None:
        self.node = node
        self.metrics = metrics or Metrics()
        self.instances: dict[str, InstanceRunner] = {}
        self.pending: dict[str, str] = {}
        """VirtualIPs that cannot start yet (no interface found), with the reason."""
        self.ports: dict[tuple[str, int], Port] = {}
        self.stopping = asyncio.Event()
        self._ipr: Any = None
        self._events: Any = None
        self._reader: LinkReader | None = None
        self._networks: tuple[float, tuple[Network, ...]] | None = None
        self._addresses: AddressManager | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wanted: dict[str, VirtualIP] = {}
        self.readiness_problem: Callable[[], str | None] | None = None
        """Kubernetes mode: why the agent is not ready although its instances are (no VirtualIP yet)."""
        self.instance_hooks: list[Callable[[InstanceRunner], None]] = []
        """Called with each new instance before it joins the election (Kubernetes mode wires peers,
        readiness and status here)."""
        self.stopped_hooks: list[Callable[[InstanceRunner], None]] = []
        """Called with each instance once it stopped (removed, or replaced by a new spec)."""
        self.key_files = True
        """Standalone: an ``authHMAC.keyFile`` is read from this host. The node agent sets it
        False (a tenant's VirtualIP must not read the node's files) and supplies Secrets."""
        self.pending_blocks_ready = True
        """Standalone and per-VirtualIP mode: a VirtualIP that cannot start keeps /readyz failing.
        The node agent sets it False: such a VirtualIP faults alone, in its own status entry."""

    async def __aenter__(self) -> Agent:
        self._ipr = AsyncIPRoute()
        self._reader = LinkReader()
        self._addresses = AddressManager(self._ipr, self._reader)
        self._events = LinkEvents(
            asyncio.get_running_loop(), self._on_netlink, self._addresses.writer_portid
        )
        self._spawn(self._safety_refresh())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    @property
    def ready(self) -> bool:
        if self.readiness_problem is not None and self.readiness_problem() is not None:
            return False
        if self.pending and self.pending_blocks_ready:
            return False
        return all(i.started for i in self.instances.values())

    async def apply(self, vips: Sequence[VirtualIP]) -> None:
        """Make the running instances match ``vips`` (added, removed, changed)."""
        self._wanted = {v.key: v for v in vips}
        stop = []
        for key in list(self.instances):
            inst = self.instances[key]
            want = self._wanted.get(key)
            if want == inst.vip:
                continue
            if want is None or not self._reconfigure(inst, want):
                stop.append(key)
        # Together, as shutdown() does: a master's stop waits up to an advert interval for a
        # successor (make before break), and a deleted VirtualIP has none: one at a time, a
        # node that was master of 150 deleted VirtualIPs still held and renewed 62 of their
        # VIPs a minute later (the kind tier's scale test).
        await asyncio.gather(*(self._stop_instance(key) for key in stop))
        for key in list(self.pending):
            if key not in self._wanted:
                del self.pending[key]
        await asyncio.gather(
            *(self._start(v) for k, v in self._wanted.items() if k not in self.instances)
        )

    def _reconfigure(self, inst: InstanceRunner, want: VirtualIP) -> bool:
        """Apply a spec change in place; False (restart the instance) if it cannot be."""
        try:
            return inst.reconfigure(want)
        except Exception:
            logger.exception("%s: cannot reconfigure in place; restarting the instance", want.key)
            return False

    async def _start(self, vip: VirtualIP) -> None:
        """Start ``vip``'s instance; if it cannot start, say why in ``pending`` and retry later.

        An exception here is this VirtualIP's problem only: it never reaches the caller, so the
        other instances and the process go on.
        """
        try:
            await self._start_instance(vip)
        except Exception as exc:
            reason = f"cannot apply the VirtualIP: {exc or type(exc).__name__}"
            if self.pending.get(vip.key) != reason:
                logger.exception("%s: %s", vip.key, reason)
            self.pending[vip.key] = reason
            inst = self.instances.get(vip.key)
            if inst is not None and inst.vip == vip and not inst.started:
                await self._stop_instance(vip.key)

    async def _start_instance(self, vip: VirtualIP) -> None:
        assert self._addresses is not None
        ifname = vip.spec.interface or await interface_for(self._ipr, vip.spec.addresses[0].ip)
        if ifname is None:
            reason = (
                f"address {vip.spec.addresses[0].ip} is on no connected network; "
                "no interface of this node has a connected route covering it (set spec.interface)"
            )
            if self.pending.get(vip.key) != reason:
                logger.error("%s: %s (retrying every %gs)", vip.key, reason, RESOLVE_RETRY)
            self.pending[vip.key] = reason
            return
        reserved = reserved_address(vip, await self.connected_networks())
        if reserved is not None:
            if self.pending.get(vip.key) != reserved:
                logger.error("%s: %s", vip.key, reserved)
            self.pending[vip.key] = reserved
            return
        self.pending.pop(vip.key, None)
        family = vip.spec.addresses[0].version
        port = self.ports.get((ifname, family))
        if port is None:
            port = self.ports[(ifname, family)] = Port(ifname, family, self._reader, self.metrics)
            await port.refresh()
        inst = InstanceRunner(vip, self.node, port, self._addresses, self.metrics)
        self.instances[vip.key] = inst
        self._wire_keys(inst)
        for hook in self.instance_hooks:
            hook(inst)
        await inst.start()

    async def connected_networks(self) -> tuple[Network, ...]:
        """This node's connected networks (both families), read at most every NETWORKS_TTL s.

        Each instance's start judges its addresses against them: 250 starting together
        share one route dump.
        """
        now = asyncio.get_running_loop().time()
        if self._networks is None or now - self._networks[0] >= NETWORKS_TTL:
            self._networks = (now, await connected_networks(self._ipr))
        return self._networks[1]

    def _wire_keys(self, inst: InstanceRunner) -> None:
        hm = inst.spec.auth_hmac
        if hm is None:
            return
        if hm.key_file is not None and self.key_files:
            inst.watch_key_file(hm.key_file)
        elif hm.key_file is not None:
            inst.set_keys(
                None,
                "authHMAC.keyFile is for standalone agents; name a Secret in authHMAC.secretName",
            )
        elif self.key_files:
            inst.set_keys(
                None,
                "authHMAC.secretName needs Kubernetes mode; a standalone agent "
                "reads authHMAC.keyFile",
            )

    async def _stop_instance(self, key: str) -> None:
        inst = self.instances.pop(key)
        try:
            await inst.stop()
        except Exception:
            logger.exception("%s: error while stopping (dropped)", key)
        for hook in self.stopped_hooks:
            hook(inst)
        port = inst.port
        if not port.instances:
            port.close()
            self.ports.pop((port.ifname, port.family), None)

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._stop_instance(k) for k in list(self.instances)))
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for port in self.ports.values():
            port.close()
        self.ports.clear()
        for ipr in (self._events, self._ipr, self._reader):
            if ipr is not None:
                ipr.close()

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    # -- netlink events ----------------------------------------------------------------

    def _on_netlink(
        self, index: int | None, name: str | None, address: IPv4Address | IPv6Address | None
    ) -> None:
        """A link or address changed (all None: notifications were lost)."""
        if address is not None and any(p.carries(address) for p in self.ports.values()):
            # One of our own VIPs bound, renewed or released (on this port or on
            # the other family's port of the same interface): it is never a
            # source address and says nothing about the link. A master renews
            # every VIP's lifetime, so with many instances these events would
            # otherwise re-read the links all the time.
            return
        for port in self.ports.values():
            if (index is None and name is None) or (
                (name is not None and name == port.ifname)
                or (port.link is not None and index == port.link.index)
            ):
                port.refresh_soon()

    async def _safety_refresh(self) -> None:
        while True:
            await asyncio.sleep(SAFETY_REFRESH if not self.pending else RESOLVE_RETRY)
            for port in list(self.ports.values()):
                await port.refresh()
            for key in list(self.pending):
                if key in self._wanted and key not in self.instances:
                    await self._start(self._wanted[key])

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "ready": self.ready,
            "problem": self.readiness_problem() if self.readiness_problem else None,
            "instances": [i.snapshot() for i in self.instances.values()],
            "pending": [{"name": k, "problem": v} for k, v in self.pending.items()],
            "interfaces": [
                {"name": p.ifname, "family": p.family, "problem": p.problem}
                for p in self.ports.values()
            ],
        }
