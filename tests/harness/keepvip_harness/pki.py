"""Throwaway PKI for the test control plane, made with the openssl command.

Why openssl and not the ``cryptography`` package: openssl is on every Debian
machine this project runs on, while ``cryptography`` is not among the test
extras, and a handful of certificates per session does not justify a new
dependency. Every key is ECDSA P-256: generating one takes milliseconds, which
keeps a cold start of the control plane short, and kube-apiserver accepts an
EC key for signing service-account tokens (ES256).

Every certificate is signed by one CA created here and lives one day: the
whole directory is deleted when the session ends.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_VALID_DAYS = "1"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPKI:
    """Everything the servers and clients of one control plane need."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    # Signs service-account tokens (apiserver) and the token controller's tokens.
    service_account_key: Path
    service_account_pub: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _new_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )
    path.chmod(0o600)


def issue(
    directory: Path,
    name: str,
    ca: KeyPair,
    subject: str,
    *,
    usage: str,
    alt_names: list[str] | None = None,
) -> KeyPair:
    """A certificate for ``subject`` signed by ``ca``; ``usage`` is serverAuth or clientAuth,
    ``alt_names`` are subjectAltName entries such as ``DNS:kubernetes`` or ``IP:192.0.2.10``."""
    pair = KeyPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    _new_key(pair.key)
    ext = ["-addext", "basicConstraints=critical,CA:FALSE"]
    ext += ["-addext", "keyUsage=critical,digitalSignature,keyEncipherment"]
    ext += ["-addext", f"extendedKeyUsage={usage}"]
    if alt_names:
        ext += ["-addext", "subjectAltName=" + ",".join(alt_names)]
    # OpenSSL 3's `req -x509 -CA` issues a CA-signed certificate in one call.
    _openssl(
        "req", "-x509", "-new", "-key", str(pair.key), "-out", str(pair.cert),
        "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-days", _VALID_DAYS, "-subj", subject, *ext,
    )  # fmt: skip
    return pair


def new_ca(directory: Path, name: str, common_name: str) -> KeyPair:
    """A self-signed CA, valid one day."""
    ca = KeyPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert),
        "-days", _VALID_DAYS, "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return ca


def create_pki(directory: Path, *, apiserver_ips: list[str]) -> ClusterPKI:
    """Create a CA, server and client certificates and the SA signing key.

    ``apiserver_ips`` go into the serving certificate's subject alternative
    names: loopback, and the ``kubernetes`` Service's cluster IP, which
    in-cluster clients would dial.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = new_ca(directory, "ca", "keepvip-test-ca")
    # A CA of its own for the aggregation layer, as kubeadm does: a client
    # certificate from it is trusted to assert users in request headers,
    # which no ordinary client certificate must be able to do.
    front_proxy_ca = new_ca(directory, "front-proxy-ca", "keepvip-test-front-proxy-ca")
    front_proxy_client = issue(
        directory,
        "front-proxy-client",
        front_proxy_ca,
        "/CN=front-proxy-client",
        usage="clientAuth",
    )
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    alt = [f"DNS:{d}" for d in dns] + [f"IP:{ip}" for ip in apiserver_ips]
    apiserver = issue(
        directory, "apiserver", ca, "/CN=kube-apiserver", usage="serverAuth", alt_names=alt
    )
    # The organization system:masters is bound to cluster-admin by the
    # bootstrap RBAC policy; the two component names have their own roles.
    admin = issue(
        directory, "admin", ca, "/O=system:masters/CN=keepvip-test-admin", usage="clientAuth"
    )
    controller_manager = issue(
        directory,
        "controller-manager",
        ca,
        "/CN=system:kube-controller-manager",
        usage="clientAuth",
    )
    scheduler = issue(directory, "scheduler", ca, "/CN=system:kube-scheduler", usage="clientAuth")
    sa_key = directory / "sa.key"
    sa_pub = directory / "sa.pub"
    _new_key(sa_key)
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    return ClusterPKI(
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=controller_manager,
        scheduler=scheduler,
        front_proxy_ca=front_proxy_ca,
        front_proxy_client=front_proxy_client,
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
