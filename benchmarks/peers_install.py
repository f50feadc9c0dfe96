"""The three load balancers of benchmarks/peers.py, each installed from its own upstream recipe.

keepvip comes from its chart (``kindctl.up``); MetalLB from the
``metallb-native.yaml`` shipped in its Go module, changed only by adding
``--lb-class`` to the controller and the speaker; kube-vip from its own
``kube-vip manifest rbac`` and ``kube-vip manifest daemonset`` output, run
from the binary built here. The images are the ones ``hack/peers/build.sh``
builds (tagged with the names those manifests use) and ``kind load``s; nothing
is pulled. Each serves only its own ``loadBalancerClass`` and only worker
nodes hold addresses (keepvip: the control plane's NoSchedule taint;
MetalLB: an L2Advertisement nodeSelector; kube-vip: its DaemonSet has no
toleration), so every implementation chooses among the same three nodes.

Settings are data (:class:`Setting`): the benchmark switches between an
implementation's upstream defaults and its tuned settings by re-applying
what is named here, so the result file can say exactly what ran.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keepvip_harness import kindctl

REPO = Path(__file__).resolve().parents[1]
PEERS_HACK = REPO / "hack" / "peers"
NAMESPACE = "peers"
METALLB_NS = "metallb-system"
KUBE_VIP_NS = "kube-system"
APP_PORT = 8080
SERVICE_PORT = 80

KEEPVIP, METALLB, KUBE_VIP = "keepvip", "metallb", "kube-vip"
CLASSES = {
    KEEPVIP: "keepvip.io/vrrp",
    METALLB: "metallb.universe.tf/l2",
    KUBE_VIP: "kube-vip.io/kube-vip-class",
}


@dataclass(frozen=True)
class Setting:
    """One implementation in one configuration: what the table's row names."""

    impl: str
    name: str  # "default", "tuned", "lease 15/10/2"
    describe: str
    # keepvip: the pool's advertInterval; kube-vip: leaseDuration/renew/retry (s) and
    # per-Service election. MetalLB has no timer setting (see SETTINGS).
    advert: str = "1s"
    lease: tuple[int, int, int] = (5, 3, 1)
    service_election: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.impl} ({self.name})"


SETTINGS = [
    Setting(KEEPVIP, "default", "VirtualIPPool advertInterval 1s (the default)"),
    Setting(
        KEEPVIP, "tuned", "VirtualIPPool advertInterval 100ms (docs/install.md's fast setting)",
        advert="100ms",
    ),
    Setting(
        METALLB, "default",
        "metallb-native.yaml v0.15.2 + --lb-class; memberlist LAN defaults (no timer is "
        "configurable: --ml-wan-config only makes it slower), so no tuned row",
    ),
    Setting(
        KUBE_VIP, "default",
        "manifest daemonset --services --arp --leaderElection --lbClassOnly; lease 5/3/1 s "
        "(v0.9.2's defaults), one services leader",
    ),
    Setting(
        KUBE_VIP, "lease 15/10/2",
        "as default with --leaseDuration 15 --leaseRenewDuration 10 --leaseRetry 2 "
        "(later releases' defaults)",
        lease=(15, 10, 2),
    ),
    Setting(
        KUBE_VIP, "tuned",
        "as default with lease 3/2/1 s (the shortest whole-second timers client-go's "
        "leader election accepts: duration > renew > 1.2 x retry) and --servicesElection",
        lease=(3, 2, 1), service_election=True,
    ),
]  # fmt: skip


def script(*args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> str:
    proc = subprocess.run(
        [str(PEERS_HACK / "build.sh"), *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"hack/peers/build.sh {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip()


def load_images(cluster: kindctl.Cluster) -> list[str]:
    """Build (cached) and kind-load the peers' images; their tags."""
    import os

    env = {**os.environ, "DOCKER_HOST": cluster.docker.host or ""}
    tags = script("images", env=env).split()
    with kindctl.kind_env(cluster.docker.host or ""):
        for tag in tags:
            cluster.kind.load_docker_image(tag)
    return tags


# -- MetalLB ----------------------------------------------------------------------------------


def metallb_objects() -> list[dict[str, Any]]:
    """metallb-native.yaml from the module, with ``--lb-class`` on controller and speaker."""
    docs = [d for d in yaml.safe_load_all(Path(script("manifest")).read_text()) if d]
    for doc in docs:
        if (
            doc["kind"] in {"Deployment", "DaemonSet"}
            and doc["metadata"]["namespace"] == METALLB_NS
        ):
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["args"].append(f"--lb-class={CLASSES[METALLB]}")
            container["imagePullPolicy"] = "IfNotPresent"
    return docs


def metallb_config(address: str) -> list[dict[str, Any]]:
    meta = {"namespace": METALLB_NS, "name": "peers"}
    return [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": meta,
            "spec": {"addresses": [f"{address}/32"]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": meta,
            "spec": {
                "ipAddressPools": ["peers"],
                "nodeSelectors": [
                    {
                        "matchExpressions": [
                            {
                                "key": "node-role.kubernetes.io/control-plane",
                                "operator": "DoesNotExist",
                            }
                        ]
                    }
                ],
            },
        },
    ]


def install_metallb(cluster: kindctl.Cluster, address: str) -> None:
    cluster.apply(*metallb_objects())
    kindctl.wait_until(
        "MetalLB's controller Ready",
        lambda: _rolled(cluster, METALLB_NS, "deployment", "controller"),
        300,
    )
    kindctl.wait_until(
        "MetalLB's speakers Ready",
        lambda: _rolled(cluster, METALLB_NS, "daemonset", "speaker"),
        300,
    )

    # The pool goes through MetalLB's validating webhook: its certificate is made by the
    # controller at start, so the first tries may be refused.
    def accepted() -> bool:
        cluster.apply(*metallb_config(address))
        return True

    kindctl.wait_until(
        "MetalLB's pool accepted",
        accepted,
        120,
        every=2,
    )


# -- kube-vip ---------------------------------------------------------------------------------


def kube_vip_objects(setting: Setting) -> list[dict[str, Any]]:
    """What ``kube-vip manifest rbac`` and ``manifest daemonset`` write for ``setting``."""
    binary = str(Path(script("bin-dir")) / "kube-vip")
    duration, renew, retry = setting.lease
    flags = [
        "--interface", "eth0", "--services", "--inCluster", "--arp", "--leaderElection",
        "--lbClassOnly", "--leaseDuration", str(duration), "--leaseRenewDuration", str(renew),
        "--leaseRetry", str(retry),
    ]  # fmt: skip
    if setting.service_election:
        flags.append("--servicesElection")
    docs: list[dict[str, Any]] = []
    for what in ("rbac", "daemonset"):
        out = subprocess.run(
            [binary, "manifest", what, *flags],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        docs += [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        if doc["kind"] == "DaemonSet":
            doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
            doc["metadata"].pop("creationTimestamp", None)
    return docs


def install_kube_vip(cluster: kindctl.Cluster, setting: Setting) -> None:
    cluster.apply(*kube_vip_objects(setting))
    kindctl.wait_until(
        "kube-vip's pods Ready",
        lambda: _rolled(cluster, KUBE_VIP_NS, "daemonset", "kube-vip-ds"),
        300,
    )


# -- keepvip ----------------------------------------------------------------------------------


def keepvip_pool(address: str, setting: Setting) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIPPool",
        "metadata": {"name": "peers"},
        "spec": {
            "addresses": [address],
            "advertInterval": setting.advert,
            "namespaces": [NAMESPACE],
        },
    }


# -- the Services and the app -----------------------------------------------------------------


def service(impl: str, address: str, policy: str, name: str | None = None) -> dict[str, Any]:
    """The same LoadBalancer Service for each implementation, differing only in class (and,
    for kube-vip, the annotation that gives it its address: it has no IPAM of its own)."""
    meta: dict[str, Any] = {"name": name or f"lb-{impl}", "namespace": NAMESPACE}
    if impl == KUBE_VIP:
        meta["annotations"] = {"kube-vip.io/loadbalancerIPs": address}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": CLASSES[impl],
            "externalTrafficPolicy": policy,
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": APP_PORT}],
        },
    }


def app(image: str) -> dict[str, Any]:
    """One pod per worker on the pod network (no hostNetwork), Ready while /tmp/ready exists."""
    labels = {"app": "web"}
    serve = (
        f'touch /tmp/ready && exec python -m keepvip_tools.lab.responder "$NODE_NAME" {APP_PORT}'
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            # One pod per worker (required anti-affinity): a surge pod would never be
            # scheduled, so a new image (keepvip's, rebuilt by kindctl.up) rolls one by one.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "affinity": {
                        "podAntiAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "labelSelector": {"matchLabels": labels},
                                    "topologyKey": "kubernetes.io/hostname",
                                }
                            ]
                        }
                    },
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", serve],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "ports": [{"containerPort": APP_PORT}],
                            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}},
                            "readinessProbe": {
                                "exec": {"command": ["test", "-f", "/tmp/ready"]},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def _rolled(cluster: kindctl.Cluster, ns: str, kind: str, name: str) -> bool:
    obj = cluster.get(kind, name, "-n", ns)
    status = obj.get("status") or {}
    if kind == "daemonset":
        want = status.get("desiredNumberScheduled") or 0
        return (
            bool(want)
            and status.get("numberReady") == want
            and status.get("updatedNumberScheduled") == want
        )
    return (
        bool(status.get("readyReplicas")) and status.get("readyReplicas") == obj["spec"]["replicas"]
    )
