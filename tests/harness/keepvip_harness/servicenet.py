"""A kube-proxy stand-in for the cluster tests: a Service's external addresses DNAT'ed to its endpoints.

kube-proxy itself is not running and cannot run here: there are no real
kubelets, no pod network, and it would program the host's own tables. This
module emulates the one part of it that a VIP in front of a Service needs,
in each lab node namespace, with iptables (``/usr/sbin/iptables``; nft may
be absent):

* **What is matched**: TCP/UDP to each of the Service's ``spec.externalIPs``
  and ``status.loadBalancer.ingress[].ip`` on each Service port, arriving in
  the node namespace (nat PREROUTING), as kube-proxy's
  ``KUBE-EXT-``/``KUBE-SVC-`` chains match them.
* **Where it goes**: DNAT to the Ready endpoints of the Service's
  EndpointSlices (``conditions.ready`` true; not the serving-terminating
  fallback), the endpoint port chosen by the Service port's name, spread
  with ``statistic --mode random`` as kube-proxy does.
  ``externalTrafficPolicy: Local``: only this node's endpoints (``nodeName``),
  and nothing (no rule: the packet goes to whatever listens locally, which
  in the tests is nothing on that port) when the node has none.
  ``Cluster``: every Ready endpoint, and traffic DNAT'ed to another node is
  masqueraded (kube-proxy's ``KUBE-MARK-MASQ``) with forwarding on in the
  node namespace.
* **Not emulated**: ClusterIPs and NodePorts, session affinity, health check
  node ports, topology hints, IPv6, ``ipMode: Proxy``.

Rules follow the API by polling (every ``interval``, default 0.1 s) rather
than by a watch: good enough for tests and deterministic to tear down.
Everything lives in chains named ``KVSN<token>`` (unique per instance)
hooked from PREROUTING and POSTROUTING by one rule each; leaving the
``with`` block removes them by name in every namespace, also on failure,
and puts ``net.ipv4.ip_forward`` of each namespace back as it found it.

Usage::

    with ServiceNet(cp.admin_rest(), ns, ["web"], {"kv-node-1": "kvab-n1", ...}):
        ...  # VIP:port reaches the Service's Ready endpoints as through kube-proxy
"""

from __future__ import annotations

import logging
import secrets
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rest import ApiError, Rest

logger = logging.getLogger(__name__)
IPTABLES = "/usr/sbin/iptables"
FORWARD = "net.ipv4.ip_forward"


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


@dataclass(frozen=True)
class Frontend:
    address: str
    port: int
    protocol: str  # "tcp" or "udp"


def external_addresses(service: Mapping[str, Any]) -> list[str]:
    """spec.externalIPs and status.loadBalancer.ingress IPs (IPv4 only), as kube-proxy reads them."""
    spec, status = service.get("spec") or {}, service.get("status") or {}
    out = list(spec.get("externalIPs") or [])
    out += [i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or [] if "ip" in i]
    return sorted({a for a in out if ":" not in a})


def plan(
    service: Mapping[str, Any], slices: Iterable[Mapping[str, Any]], node: str
) -> dict[Frontend, list[Backend]]:
    """The DNAT targets of each frontend on ``node`` (pure)."""
    spec = service.get("spec") or {}
    local = spec.get("externalTrafficPolicy") == "Local"
    out: dict[Frontend, list[Backend]] = {}
    slices = list(slices)
    for sport in spec.get("ports") or []:
        name, proto = sport.get("name") or "", (sport.get("protocol") or "TCP").lower()
        backends: set[Backend] = set()
        for sl in slices:
            port = next(
                (p.get("port") for p in sl.get("ports") or [] if (p.get("name") or "") == name),
                None,
            )
            if port is None:
                continue
            for ep in sl.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                if cond.get("ready") is False or cond.get("terminating"):
                    continue  # absent "ready" means ready (the API's rule)
                if local and ep.get("nodeName") != node:
                    continue
                backends |= {Backend(ip, int(port)) for ip in ep.get("addresses") or []}
        for address in external_addresses(service):
            out[Frontend(address, int(sport["port"]), proto)] = sorted(
                backends, key=lambda b: (b.ip, b.port)
            )
    return out


class ServiceNet:
    """Program and follow the DNAT rules of some Services in each node namespace."""

    def __init__(
        self,
        api: Rest,
        namespace: str,
        services: Sequence[str],
        node_netns: Mapping[str, str],
        *,
        interval: float = 0.1,
    ) -> None:
        self.api, self.namespace, self.services = api, namespace, list(services)
        self.node_netns = dict(node_netns)
        self.interval = interval
        self.chain = f"KVSN{secrets.token_hex(4)}"
        self.post_chain = f"{self.chain}P"
        self._programmed: dict[str, list[list[str]]] = {}
        self._forward: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="servicenet", daemon=True)
        self.syncs = 0

    # -- life cycle -------------------------------------------------------------------

    def __enter__(self) -> ServiceNet:
        try:
            for ns in self.node_netns.values():
                self._ipt(ns, "-N", self.chain)
                self._ipt(ns, "-N", self.post_chain)
                self._ipt(ns, "-A", "PREROUTING", "-j", self.chain)
                self._ipt(ns, "-A", "POSTROUTING", "-j", self.post_chain)
                self._forward[ns] = _sh(["ip", "netns", "exec", ns, "sysctl", "-n", FORWARD])
                _sh(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{FORWARD}=1"])
            self.sync()
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for ns in self.node_netns.values():
            self._ipt(ns, "-D", "PREROUTING", "-j", self.chain, check=False)
            self._ipt(ns, "-D", "POSTROUTING", "-j", self.post_chain, check=False)
            for chain in (self.chain, self.post_chain):
                self._ipt(ns, "-F", chain, check=False)
                self._ipt(ns, "-X", chain, check=False)
            if ns in self._forward:
                before = self._forward.pop(ns).strip()
                _sh(
                    ["ip", "netns", "exec", ns, "sysctl", "-qw", f"{FORWARD}={before}"], check=False
                )

    # -- following the API ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except (ApiError, OSError, RuntimeError) as exc:
                logger.warning("servicenet: %s", exc)

    def sync(self) -> None:
        """Read the Services and their EndpointSlices; reprogram the namespaces that changed."""
        wanted: dict[str, dict[Frontend, list[Backend]]] = {n: {} for n in self.node_netns}
        for name in self.services:
            try:
                svc = self.api.get(f"/api/v1/namespaces/{self.namespace}/services/{name}")
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise
            slices = self.api.get(
                f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices",
                labelSelector=f"kubernetes.io/service-name={name}",
            )["items"]
            for node in self.node_netns:
                wanted[node].update(plan(svc, slices, node))
        for node, ns in self.node_netns.items():
            rules = self._rules(wanted[node])
            if self._programmed.get(ns) != rules:
                self._program(ns, rules)
                self._programmed[ns] = rules
                self.syncs += 1

    def _rules(self, frontends: Mapping[Frontend, list[Backend]]) -> list[list[str]]:
        rules: list[list[str]] = []
        for fe in sorted(frontends, key=lambda f: (f.address, f.port, f.protocol)):
            backends = frontends[fe]
            match = ["-d", f"{fe.address}/32", "-p", fe.protocol, "--dport", str(fe.port)]
            for i, be in enumerate(backends):
                left = len(backends) - i
                pick = ["-m", "statistic", "--mode", "random", "--probability", f"{1 / left:.5f}"]
                dnat = ["-j", "DNAT", "--to-destination", f"{be.ip}:{be.port}"]
                rules.append([*match, *(pick if left > 1 else []), *dnat])
            rules.append(["POST", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdst",
                          fe.address, "-j", "MASQUERADE"])  # fmt: skip
        return rules

    def _program(self, ns: str, rules: list[list[str]]) -> None:
        self._ipt(ns, "-F", self.chain)
        self._ipt(ns, "-F", self.post_chain)
        for rule in rules:
            if rule[0] == "POST":
                self._ipt(ns, "-A", self.post_chain, *rule[1:])
            else:
                self._ipt(ns, "-A", self.chain, *rule)

    def rules(self, node: str) -> list[list[str]]:
        """What is programmed in ``node``'s namespace now (for assertions and messages)."""
        return list(self._programmed.get(self.node_netns[node], []))

    def _ipt(self, ns: str, *args: str, check: bool = True) -> None:
        _sh(["ip", "netns", "exec", ns, IPTABLES, "-w", "5", "-t", "nat", *args], check=check)


def _sh(argv: list[str], *, check: bool = True) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


__all__ = ["Backend", "Frontend", "ServiceNet", "external_addresses", "plan"]
