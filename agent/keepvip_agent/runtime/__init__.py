"""asyncio adapters that wire the sans-IO core to the kernel.

Each adapter is thin and replaceable: the raw VRRP socket, the L2 announcer,
the netlink address manager, the health checks. :mod:`.agent` wires them.
"""
