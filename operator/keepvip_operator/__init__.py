"""keepvip operator: reconciles VirtualIPs into agent DaemonSets and aggregates their status.

Pure modules (names, render, rbac, allocate, aggregate, conditions,
statusplan, settings) hold every decision and never import kopf or a
Kubernetes client; kube (the API adapter), reconcile, resync and handlers do
the I/O. The API package's model (``keepvip_api``) is the one reading of a
VirtualIP, shared with the agent.
"""

from keepvip_api import __version__

__all__ = ["__version__"]
