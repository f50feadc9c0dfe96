"""VirtualIP documents for the lab, the tests and the benchmarks."""

from __future__ import annotations

from typing import Any

import yaml

from keepvip_tools.lab.topology import VIP4


def virtualip(
    name: str = "web",
    *,
    addresses: tuple[str, ...] = (f"{VIP4}/24",),
    vrid: int = 51,
    interval: str = "100ms",
    priorities: dict[str, int] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "addresses": list(addresses),
        "interface": "eth0",
        "virtualRouterID": vrid,
        "advertInterval": interval,
        "priority": 100,
    }
    if priorities:
        body["nodes"] = [{"name": n, "priority": p} for n, p in priorities.items()]
    body.update(spec)
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": body,
    }


def dump(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)
