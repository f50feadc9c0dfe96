"""asyncio adapters that wire the sans-IO core to the kernel.

Each adapter is thin and replaceable: the raw VRRP socket, the L2 announcer,
the netlink address manager, the health checks. :mod:`.instance` drives one
VirtualIP's router and carries out its actions; :mod:`.binding` makes the
kernel hold (or drop) its addresses; :mod:`.port` shares one interface's
socket between the instances on it, knowing them only as a small listener
protocol. :mod:`.agent` wires them.
"""
