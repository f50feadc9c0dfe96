"""Pure readings of pod lists: the peers' addresses and whether a node's tracked pods are Ready."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address
from typing import Any

from keepvip_agent.vrrp.packet import IPAddress
from keepvip_api.cluster import LabelSelector
from keepvip_api.names import AGENT_LABEL, ROLE_LABEL

__all__ = ["AGENT_LABEL", "ROLE_LABEL", "is_ready", "node_addresses", "peer_addresses", "readiness"]


def peer_addresses(
    pods: Iterable[dict[str, Any]], own_node: str, family: int
) -> frozenset[IPAddress] | None:
    """Whom an election of ``family`` advertises to and hears from: None means anyone, by multicast.

    IPv4: the host IPs of the agent pods on other nodes, terminating ones included (unicast, so clouds
    that drop multicast work too). IPv6: multicast to ff02::12. A VRRPv3 IPv6
    advertisement comes from the sender's link-local address (RFC 9568
    5.1.2.1), which no pod status shows, so a list of host IPs would drop
    every advertisement as from a stranger; and single-stack IPv4 nodes have
    no IPv6 host IP at all, which would leave an empty list: every node master.
    """
    if family == 6:
        return None
    out: set[IPAddress] = set()
    for pod in pods:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        # A pod being deleted stays a peer until it is gone: its agent is handing its VIPs
        # over right then, and dropping its priority-0 advertisement as from a stranger
        # turned that handover into a master-down timeout.
        if spec.get("nodeName") in (None, own_node):
            continue
        candidates = [h.get("ip") for h in status.get("hostIPs") or []] or [status.get("hostIP")]
        for raw in candidates:
            if not raw:
                continue
            addr = ip_address(raw)
            if addr.version == family:
                out.add(addr)
    return frozenset(out)


def node_addresses(pods: Iterable[dict[str, Any]], family: int) -> dict[str, IPAddress]:
    """Node name -> host IP (of the election's family) of each agent pod."""
    out: dict[str, IPAddress] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        status = pod.get("status") or {}
        raws = [h.get("ip") for h in status.get("hostIPs") or []] or [status.get("hostIP")]
        for raw in raws:
            if node and raw and ip_address(raw).version == family:
                out[node] = ip_address(raw)
    return out


def is_ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def readiness(pods: Iterable[dict[str, Any]], node: str) -> tuple[bool, str]:
    """(healthy, detail) for the tracked pods on ``node``: healthy while one of them is Ready."""
    mine = [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]
    ready = [p["metadata"]["name"] for p in mine if is_ready(p)]
    if ready:
        return (
            True,
            f"{len(ready)}/{len(mine)} tracked pod(s) Ready on {node}: {', '.join(sorted(ready))}",
        )
    if not mine:
        return False, f"no tracked pod on {node}"
    return False, f"none of {len(mine)} tracked pod(s) on {node} is Ready"


def selector_string(selector: LabelSelector) -> str:
    """A label selector in the API's query syntax."""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        if req.operator == "In":
            parts.append(f"{req.key} in ({','.join(req.values)})")
        elif req.operator == "NotIn":
            parts.append(f"{req.key} notin ({','.join(req.values)})")
        elif req.operator == "Exists":
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return ",".join(parts)


def selector_matches(selector: LabelSelector, labels: dict[str, str]) -> bool:
    """Kubernetes' label-selector rule, client-side (the node agent's shared pod watch)."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and not (present and labels[req.key] in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True
