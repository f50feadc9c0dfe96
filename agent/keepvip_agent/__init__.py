"""keepvip agent: VRRP election and virtual-IP ownership on one node.

``vrrp`` is the sans-IO protocol core, ``spec`` the validated VirtualIP
model, ``runtime`` the asyncio adapters that wire both to the kernel.
"""

__version__ = "0.1.0"
