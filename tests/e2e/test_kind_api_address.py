"""The generated static pod on kind's control-plane node: the real kubelet starts it, and kubectl
through the address it holds works (the address is in the API server's certificate).

``keepvip static-pod`` output is copied into the node's
/etc/kubernetes/manifests/ and its VirtualIP file into /etc/keepvip/, as a
user would on a kubeadm node; the kubelet (not the API) starts it, its check
reads the node's /etc/kubernetes/pki/ca.crt. The address is in the kind
network's node subnet and in the serving certificate's SANs through
hack/kind/cluster.yaml's ``apiServer.certSANs``. The test removes the
manifest at the end and waits for the address to be released.

Time: about 30 s on a running cluster (86 s with the fixture building and loading the image).
"""

from __future__ import annotations

import tempfile
from ipaddress import ip_address, ip_network
from pathlib import Path

from keepvip_harness.kindctl import NODE_RANGE, wait_until
from keepvip_harness.kindsuite import E2E
from keepvip_tools.apiaddress.config import Options, build, to_yaml
from keepvip_tools.apiaddress.staticpod import render_pod_yaml

API_VIP = "198.51.100.107"
"""In hack/kind/cluster.yaml's apiServer.certSANs too; outside the nodes' range (/26)."""
CONFIG = "/etc/keepvip/api-address.yaml"
MANIFEST = "/etc/kubernetes/manifests/keepvip-api-address.yaml"


def sans(e2e: E2E) -> str:
    return e2e.docker(
        "exec", e2e.cluster.control_plane, "openssl", "x509", "-noout", "-ext", "subjectAltName",
        "-in", "/etc/kubernetes/pki/apiserver.crt",
    )  # fmt: skip


def add_san(e2e: E2E) -> None:
    """The address into the serving certificate of a cluster made before hack/kind/cluster.yaml
    named it (a reused `make kind-up` cluster), the way kubeadm's documentation adds a SAN to
    a running cluster: a new certificate from the same configuration plus the name, which the
    API server picks up without a restart. A cluster made from cluster.yaml (CI) has it."""
    script = (
        "set -e; conf=/tmp/kubeadm-api-address.conf; "
        f"sed '0,/^  - 127.0.0.1$/s//  - 127.0.0.1\\n  - {API_VIP}/' /kind/kubeadm.conf > $conf; "
        "mkdir -p /tmp/apiserver-before; "
        "mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /tmp/apiserver-before/; "
        "kubeadm init phase certs apiserver --config $conf"
    )
    e2e.docker("exec", e2e.cluster.control_plane, "sh", "-c", script)


def test_the_static_pod_holds_the_api_address_for_kubectl(e2e: E2E) -> None:
    cluster, docker, node = e2e.cluster, e2e.docker, e2e.cluster.control_plane
    if f"IP Address:{API_VIP}" not in sans(e2e):
        add_san(e2e)
    assert f"IP Address:{API_VIP}" in sans(e2e)
    assert ip_address(API_VIP) in cluster.subnet and ip_address(API_VIP) not in ip_network(
        NODE_RANGE
    )
    options = Options(
        address=f"{API_VIP}/{cluster.subnet.prefixlen}",
        interface="eth0",
        virtual_router_id=250,  # the operator allocates from 1 up for the suite's VirtualIPs
        advert_interval="200ms",
    )
    vip = build(options)
    with tempfile.TemporaryDirectory() as tmp:
        config, manifest = Path(tmp) / "config.yaml", Path(tmp) / "pod.yaml"
        config.write_text(to_yaml(vip))
        manifest.write_text(render_pod_yaml(vip, options, image=e2e.image, config_path=CONFIG))
        docker("exec", node, "mkdir", "-p", "/etc/keepvip")
        docker("cp", str(config), f"{node}:{CONFIG}")
        docker("cp", str(manifest), f"{node}:{MANIFEST}")
    mirror = f"keepvip-api-address-{node}"
    try:

        def ready() -> bool:
            try:
                pod = cluster.get("pod", mirror, "-n", "kube-system")
            except RuntimeError:  # no mirror pod yet
                return False
            return any(c.get("ready") for c in pod["status"].get("containerStatuses", []))

        wait_until("the kubelet to run the static pod, Ready", ready, 120)
        wait_until(
            "the address on the control-plane node", lambda: API_VIP in cluster.addresses(node), 60
        )
        through_vip = ("--server", f"https://{API_VIP}:6443")

        # kubectl verifies the serving certificate for the address (the kubeconfig's CA); the
        # API server reloads a new certificate within a minute.
        wait_until(
            "kubectl through the address",
            lambda: cluster.kubectl(*through_vip, "get", "--raw", "/readyz") == "ok",
            90,
        )
        nodes = cluster.kubectl(*through_vip, "get", "nodes", "-o", "name").split()
        assert f"node/{node}" in nodes
        pod = cluster.get("pod", mirror, "-n", "kube-system")
        assert pod["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
    finally:
        docker("exec", node, "rm", "-f", MANIFEST, check=False)
        wait_until("the address released", lambda: API_VIP not in cluster.addresses(node), 60)
        docker("exec", node, "rm", "-f", CONFIG, check=False)
