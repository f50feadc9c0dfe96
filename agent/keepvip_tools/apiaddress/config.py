"""The VirtualIP that keeps the Kubernetes API address, built from command-line options.

What ``keepvip static-pod`` and ``keepvip systemd-unit`` share: the options,
and the one VirtualIP document they describe. The document goes through the
same validated model as every other VirtualIP (``parse_virtualip`` in
standalone mode) before anything is printed, so a generated file always
loads in the agent; a bad option fails with the model's message, named by
the option that set the field (``--advert-interval (spec.advertInterval):
15ms must be 10ms..40.95s in 10ms steps for version 3``).

The check is the design choice: an https GET of the local API server's
``/readyz``, verified against the cluster CA (``/etc/kubernetes/pki/ca.crt``)
for the name ``kubernetes``, which every kubeadm serving certificate carries
(127.0.0.1 is not among kubeadm's default SANs). ``/readyz`` is readable
without credentials on a default kubeadm cluster (the
``system:public-info-viewer`` role), so the agent needs no credential and no
API access at all: it can hold the VIP before the cluster exists.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import yaml

from keepvip_api import SpecError, __version__, parse_virtualip
from keepvip_api.model import VirtualIP

__all__ = [
    "DEFAULT_CA",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_IMAGE",
    "Options",
    "add_config_arguments",
    "build",
    "options_from",
    "to_yaml",
]

DEFAULT_CONFIG_PATH = "/etc/keepvip/api-address.yaml"
DEFAULT_CA = "/etc/kubernetes/pki/ca.crt"
DEFAULT_IMAGE = f"ghcr.io/keepvip/keepvip:{__version__}"
DEFAULT_CHECK_URL = "https://127.0.0.1:6443/readyz"
DEFAULT_METRICS_PORT = 9650


@dataclass(frozen=True)
class Options:
    """Everything the generated VirtualIP is made from; strings are parsed by the model."""

    address: str
    interface: str | None = None
    virtual_router_id: int = 51
    advert_interval: str = "1s"
    priority: int = 100
    name: str = "kube-apiserver"
    check_url: str = DEFAULT_CHECK_URL
    ca_file: str | None = DEFAULT_CA
    server_name: str | None = "kubernetes"
    client_cert_file: str | None = None
    client_key_file: str | None = None
    check_interval: str = "1s"
    check_timeout: str = "1s"
    check_fall: int = 2
    check_rise: int = 1
    on_failure: str = "fault"
    demote_weight: int = 60
    metrics_port: int = DEFAULT_METRICS_PORT


# The spec field each option sets, to name the option in a problem the model reports.
_OPTION_OF = {
    "spec.addresses": "--address",
    "spec.interface": "--interface",
    "spec.virtualRouterID": "--virtual-router-id",
    "spec.advertInterval": "--advert-interval",
    "spec.priority": "--priority",
    "metadata.name": "--name",
    "spec.checks[0].httpGet.url": "--check-url",
    "spec.checks[0].httpGet.caFile": "--ca-file",
    "spec.checks[0].httpGet.serverName": "--server-name",
    "spec.checks[0].httpGet.clientCertFile": "--client-cert",
    "spec.checks[0].httpGet.clientKeyFile": "--client-key",
    "spec.checks[0].interval": "--check-interval",
    "spec.checks[0].timeout": "--check-timeout",
    "spec.checks[0].fall": "--check-fall",
    "spec.checks[0].rise": "--check-rise",
    "spec.checks[0].onFailure": "--on-failure",
}


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    d = Options(address="")
    p.add_argument(
        "--address",
        required=True,
        metavar="ADDR/PREFIX",
        help="the API address (the VIP), e.g. 192.0.2.10/24 or 2001:db8::10/64",
    )
    p.add_argument(
        "--interface",
        metavar="IF",
        help="interface to hold it on (default: the one whose route covers ADDR)",
    )
    p.add_argument(
        "--virtual-router-id",
        type=int,
        default=d.virtual_router_id,
        metavar="N",
        help=f"VRRP virtual router id, the same on every control-plane node "
        f"(default {d.virtual_router_id})",
    )
    p.add_argument(
        "--advert-interval",
        default=d.advert_interval,
        metavar="DURATION",
        help=f"VRRP advertisement interval (default {d.advert_interval}; "
        "a backup takes over after about 3 of them)",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=d.priority,
        help=f"this node's priority 1..254 (default {d.priority})",
    )
    p.add_argument("--name", default=d.name, help=f"the VirtualIP's name (default {d.name})")
    p.add_argument(
        "--check-url",
        default=d.check_url,
        help=f"the local API server's readiness URL (default {d.check_url})",
    )
    p.add_argument(
        "--ca-file",
        default=d.ca_file,
        metavar="FILE",
        help=f"CA that signs the API server's certificate (default {d.ca_file}); "
        "'' for the system trust store",
    )
    p.add_argument(
        "--server-name",
        default=d.server_name,
        metavar="NAME",
        help=f"name the serving certificate must carry (default {d.server_name}); "
        "'' for the URL's host",
    )
    p.add_argument(
        "--client-cert",
        dest="client_cert_file",
        metavar="FILE",
        help="client certificate for the check (clusters without anonymous /readyz)",
    )
    p.add_argument("--client-key", dest="client_key_file", metavar="FILE", help="its private key")
    p.add_argument(
        "--check-interval",
        default=d.check_interval,
        metavar="DURATION",
        help=f"how often the API server is checked (default {d.check_interval})",
    )
    p.add_argument(
        "--check-timeout",
        default=d.check_timeout,
        metavar="DURATION",
        help=f"a hung API server fails the check after this (default {d.check_timeout})",
    )
    p.add_argument(
        "--check-fall",
        type=int,
        default=d.check_fall,
        metavar="N",
        help=f"failures in a row that give up the VIP (default {d.check_fall})",
    )
    p.add_argument(
        "--check-rise",
        type=int,
        default=d.check_rise,
        metavar="N",
        help=f"successes in a row that rejoin (default {d.check_rise})",
    )
    p.add_argument(
        "--on-failure",
        choices=["fault", "demote"],
        default=d.on_failure,
        help="fault (default): leave the election while the API server is not "
        "ready; demote: lower the priority by --demote-weight instead, so some "
        "node keeps the VIP even when every API server fails",
    )
    p.add_argument(
        "--demote-weight",
        type=int,
        default=d.demote_weight,
        metavar="N",
        help=f"with --on-failure demote (default {d.demote_weight})",
    )
    p.add_argument("--metrics-port", type=int, default=d.metrics_port,
                   help=f"the agent's /metrics, /healthz and /status port (default "
                   f"{d.metrics_port})")  # fmt: skip
    p.add_argument(
        "--config-out", metavar="FILE", help="also write the VirtualIP file the agent reads to FILE"
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        address=args.address,
        interface=args.interface,
        virtual_router_id=args.virtual_router_id,
        advert_interval=args.advert_interval,
        priority=args.priority,
        name=args.name,
        check_url=args.check_url,
        ca_file=args.ca_file or None,
        server_name=args.server_name or None,
        client_cert_file=args.client_cert_file,
        client_key_file=args.client_key_file,
        check_interval=args.check_interval,
        check_timeout=args.check_timeout,
        check_fall=args.check_fall,
        check_rise=args.check_rise,
        on_failure=args.on_failure,
        demote_weight=args.demote_weight,
        metrics_port=args.metrics_port,
    )


def _document(o: Options) -> dict[str, Any]:
    http: dict[str, Any] = {"url": o.check_url}
    if o.check_url.startswith("https://"):
        tls = {
            "caFile": o.ca_file,
            "serverName": o.server_name,
            "clientCertFile": o.client_cert_file,
            "clientKeyFile": o.client_key_file,
        }
        http |= {k: v for k, v in tls.items() if v is not None}
    on_failure: dict[str, Any] = {"action": o.on_failure}
    if o.on_failure == "demote":
        on_failure["weight"] = o.demote_weight
    spec: dict[str, Any] = {
        "addresses": [o.address],
        "virtualRouterID": o.virtual_router_id,
        "advertInterval": o.advert_interval,
        "priority": o.priority,
        "checks": [
            {
                "name": "apiserver-ready",
                "httpGet": http,
                "interval": o.check_interval,
                "timeout": o.check_timeout,
                "fall": o.check_fall,
                "rise": o.check_rise,
                "onFailure": on_failure,
            }
        ],
    }
    if o.interface:
        spec["interface"] = o.interface
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": o.name},
        "spec": spec,
    }


def _name_option(problem: str) -> str:
    """``spec.priority: 0 is not in 1..254`` -> ``--priority (spec.priority): 0 is not ...``."""
    path, sep, message = problem.partition(": ")
    for field, option in sorted(_OPTION_OF.items(), key=lambda kv: -len(kv[0])):
        if sep and (path == field or path.startswith((f"{field}.", f"{field}["))):
            return f"{option} ({path}): {message}"
    return problem


def build(o: Options) -> VirtualIP:
    """The validated VirtualIP; raise :class:`SpecError` whose lines name the options."""
    try:
        return parse_virtualip(_document(o), standalone=True)
    except SpecError as exc:
        raise SpecError([_name_option(p) for p in exc.problems]) from None


def to_yaml(vip: VirtualIP) -> str:
    """The file ``keepvip-agent --config`` reads: the model's own dump of what the options set."""
    doc = vip.model_dump(mode="json", by_alias=True, exclude_unset=True)
    doc["metadata"] = {k: v for k, v in doc["metadata"].items() if v is not None}
    return yaml.safe_dump(doc, sort_keys=False)
