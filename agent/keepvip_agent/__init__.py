"""keepvip agent: VRRP election and virtual-IP ownership on one node.

``vrrp`` is the sans-IO protocol core, ``runtime`` the asyncio adapters that
wire it to the kernel, ``kube`` the Kubernetes mode. The VirtualIP model is
the API package's (``keepvip_api``), shared with the operator and the tools.
"""

from keepvip_api import __version__

__all__ = ["__version__"]
