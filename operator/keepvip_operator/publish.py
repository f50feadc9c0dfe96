"""Publishing a VirtualIP's addresses on the Services it fronts (``spec.serviceRef``), pure.

Where the addresses go: ``status.loadBalancer.ingress`` (``{ip, ipMode: VIP}``)
for a Service of type LoadBalancer, ``spec.externalIPs`` otherwise. Both
lists may hold entries keepvip did not write (the user's own external IPs,
another controller's ingress), and both are atomic lists in the API, so
server-side apply cannot merge them: the operator reads the Service, edits
the list and writes it back with the resourceVersion it read (a JSON merge
patch; 409 means read again). Only what keepvip added is ever removed, so
the same rule serves both lists. keepvip is the load balancer of such a
LoadBalancer Service, but an ingress entry someone else wrote is still
left alone: removing what we cannot account for would be worse than a stale
entry the user can see and delete.

How it knows what it added: the annotation ``published.keepvip.io/<vip>``
lists the addresses this VirtualIP added (an address the user had listed
already is not claimed, and stays when the VirtualIP goes), and the label of
the same key makes the Services a VirtualIP published on findable with one
filtered list (a serviceRef that changed, or a VirtualIP deleted while the
operator was down). Ingress entries are claimed in the annotation *before*
they are written and unclaimed only *after* they are gone (two writes, spec
then status, or status then spec), so a crash in between never leaves an
entry nobody will remove. :func:`next_step` returns one write at a time and
is called again on the result until it returns None.

A user's ``kubectl apply`` of a manifest that lists ``externalIPs`` can drop
ours (client-side apply replaces a changed list; server-side apply needs
``--force-conflicts``, since the operator's write took the field over): the
Service's watch event brings the operator back, which adds them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keepvip_api.model import VirtualIP
from keepvip_operator.conditions import Cond

PREFIX = "published.keepvip.io/"
SERVICE_PUBLISHED = "ServicePublished"
IP_MODE = "VIP"
"""ipMode VIP: traffic arrives with the VIP as destination (kube-proxy may short-circuit it)."""


def claim_key(vip_name: str) -> str:
    """Annotation (addresses, comma-separated) and label (``"true"``) on a published Service."""
    return PREFIX + vip_name


def addresses_of(vip: VirtualIP) -> tuple[str, ...]:
    """The VirtualIP's addresses as the Service lists them: IPs without prefix length."""
    out: list[str] = []
    for a in vip.spec.addresses:
        ip = str(a).split("/", 1)[0]
        if ip not in out:
            out.append(ip)
    return tuple(out)


def addresses_for(vip: VirtualIP, service: str) -> tuple[str, ...]:
    """What Service ``service`` lists: all the addresses, or with ``addressPerService`` its own."""
    ref = vip.spec.service_ref
    if ref is None or not ref.address_per_service:
        return addresses_of(vip) if ref is not None and service in ref.services else ()
    return tuple(str(a.ip) for a in ref.addresses_for(service, vip.spec.addresses))


@dataclass(frozen=True)
class Step:
    """One write to a Service: a JSON merge patch, on the object or its status subresource."""

    subresource: str  # "" or "status"
    body: dict[str, Any]


def _claimed(service: Mapping[str, Any], key: str) -> list[str]:
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(key) or ""
    return [a for a in (x.strip() for x in raw.split(",")) if a]


def _ingress(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    lb = (service.get("status") or {}).get("loadBalancer") or {}
    return [dict(e) for e in lb.get("ingress") or [] if isinstance(e, Mapping)]


def is_load_balancer(service: Mapping[str, Any]) -> bool:
    return (service.get("spec") or {}).get("type") == "LoadBalancer"


def next_step(service: Mapping[str, Any], vip_name: str, addresses: Sequence[str]) -> Step | None:
    """The next write that brings ``service`` to showing ``addresses`` for ``vip_name``.

    ``addresses=()`` withdraws everything this VirtualIP added. None: nothing to do.
    """
    key = claim_key(vip_name)
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    mine = _claimed(service, key)
    lb = is_load_balancer(service)
    ext = [str(a) for a in spec.get("externalIPs") or []]
    ing = _ingress(service)
    ing_ips = [e.get("ip") for e in ing]
    to_ext = () if lb else tuple(addresses)
    to_ing = tuple(addresses) if lb else ()

    new_ext = [a for a in ext if a not in mine or a in to_ext]
    new_ext += [a for a in to_ext if a not in new_ext]
    new_ing = [e for e in ing if e.get("ip") not in mine or e.get("ip") in to_ing]
    new_ing += [{"ip": a, "ipMode": IP_MODE} for a in to_ing if a not in ing_ips]
    # Ours: what we add now, and what we added before and still want; never the user's.
    present = ing_ips if lb else ext
    final = [a for a in addresses if a in mine or a not in present]
    rv = meta.get("resourceVersion")

    if new_ing != ing:
        adding = [e["ip"] for e in new_ing if e.get("ip") not in ing_ips]
        if any(a not in mine for a in adding):  # claim first
            return _spec_step(rv, key, [*mine, *(a for a in adding if a not in mine)], None)
        return Step(
            "status",
            {"metadata": {"resourceVersion": rv}, "status": {"loadBalancer": {"ingress": new_ing}}},
        )
    if new_ext != ext or mine != final:
        return _spec_step(rv, key, final, new_ext if new_ext != ext else None)
    return None


def _spec_step(rv: Any, key: str, claimed: list[str], external_ips: list[str] | None) -> Step:
    body: dict[str, Any] = {
        "metadata": {
            "resourceVersion": rv,
            "annotations": {key: ",".join(claimed) if claimed else None},
            "labels": {key: "true" if claimed else None},
        }
    }
    if external_ips is not None:
        body["spec"] = {"externalIPs": external_ips or None}
    return Step("", body)


def where(service: Mapping[str, Any]) -> str:
    return "status.loadBalancer.ingress" if is_load_balancer(service) else "spec.externalIPs"


def condition(
    addresses: Sequence[str],
    published: Mapping[str, str],
    missing: Iterable[str],
    *,
    namespace: str,
    withheld: str | None = None,
) -> Cond:
    """ServicePublished: ``published`` maps a Service to where the addresses went."""
    missing = sorted(missing)
    if withheld is not None:
        return Cond(SERVICE_PUBLISHED, "False", "NotRolledOut", withheld)
    if missing:
        names = ", ".join(missing)
        return Cond(
            SERVICE_PUBLISHED,
            "False",
            "ServiceNotFound",
            f"Service {names} not found in namespace {namespace}: "
            f"{', '.join(addresses)} will be published when it exists",
        )
    text = "; ".join(f"{', '.join(addresses)} in {s} {w}" for s, w in sorted(published.items()))
    return Cond(SERVICE_PUBLISHED, "True", "Published", text)
