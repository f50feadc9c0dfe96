"""Where the Kubernetes API is and who the node agent is to it: in-cluster or from a kubeconfig.

Why not the ``kubernetes`` package's ``config`` module: importing the client
costs the agent about 10 MiB of its 100 MiB per node (issue 12), and the agent
needs only two of its cases: the pod's service account (production) and a
kubeconfig with a token or a client certificate (the test harness runs agent
"pods" as host processes with one). Exec plugins and auth providers are
refused with a one-line error naming the field, never ignored.

The service account token is re-read when its file changes: the kubelet
rotates projected tokens (they expire after about an hour).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ConfigError(ValueError):
    """The API's address or credentials cannot be worked out; the message names the field."""


@dataclass(frozen=True)
class Endpoint:
    """One API server and one identity, ready to connect."""

    host: str
    port: int
    context: ssl.SSLContext
    token: Callable[[], str | None]
    """The bearer token to send now (None: the client certificate identifies us)."""


class TokenFile:
    """A token read from a file again whenever the file changes (rotated projected tokens)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._token = ""
        self()  # a missing file is an error now, not at the first request

    def __call__(self) -> str:
        try:
            st = self.path.stat()
        except OSError as exc:
            if self._stamp is None:
                raise ConfigError(f"token file {self.path}: {exc.strerror}") from None
            return self._token  # mid-rotation: the last one read is still good
        stamp = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._token = self.path.read_text().strip()
                self._stamp = stamp
            return self._token


def from_environment(env: Mapping[str, str] | None = None) -> Endpoint:
    """``$KUBECONFIG`` if set; else the pod's service account in a pod; else ``~/.kube/config``."""
    env = os.environ if env is None else env
    if env.get("KUBECONFIG") or not env.get("KUBERNETES_SERVICE_HOST"):
        paths = (env.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep)
        return from_kubeconfig([Path(p) for p in paths if p])
    return in_cluster(env)


def in_cluster(env: Mapping[str, str], sa_dir: Path | None = None) -> Endpoint:
    """The pod's service account (``sa_dir``: where it is mounted, :data:`SA_DIR`)."""
    sa_dir = SA_DIR if sa_dir is None else sa_dir
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port.isdigit():
        raise ConfigError("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT needed")
    ca = sa_dir / "ca.crt"
    if not ca.is_file():
        raise ConfigError(f"in-cluster: {ca}: no such file (is a service account mounted?)")
    context = _context("in-cluster", cafile=ca)
    return Endpoint(host.strip("[]"), int(port), context, TokenFile(sa_dir / "token"))


def from_kubeconfig(paths: list[Path]) -> Endpoint:
    """The current context of the kubeconfig files ``paths`` (merged: the first name wins)."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    current, base = None, {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            if len(paths) > 1:
                continue  # client-go skips missing files of a list
            raise ConfigError(f"kubeconfig {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubeconfig {path}: not YAML: {_first_line(exc)}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path}: not a mapping")
        current = current or doc.get("current-context")
        for kind in ("clusters", "users", "contexts"):
            for item in doc.get(kind) or []:
                if isinstance(item, dict) and item.get("name") not in merged[kind]:
                    merged[kind][item.get("name")] = item.get(kind[:-1]) or {}
                    base[(kind, item.get("name"))] = path.parent
    where = f"kubeconfig {os.pathsep.join(map(str, paths))}"
    if not current:
        raise ConfigError(f"{where}: current-context: not set")
    context = merged["contexts"].get(current)
    if context is None:
        raise ConfigError(f"{where}: current-context: no context named {current!r}")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = merged["clusters"].get(cluster_name)
    if cluster is None:
        raise ConfigError(f"{where}: context {current!r}: no cluster named {cluster_name!r}")
    user = merged["users"].get(user_name, {}) if user_name else {}
    cdir = base.get(("clusters", cluster_name), Path("."))
    udir = base.get(("users", user_name), Path("."))
    return _endpoint(cluster, user, cdir, udir, f"{where}: cluster {cluster_name!r}",
                     f"{where}: user {user_name!r}")  # fmt: skip


def _endpoint(
    cluster: dict[str, Any], user: dict[str, Any], cdir: Path, udir: Path, cwhere: str, uwhere: str
) -> Endpoint:
    url = urlsplit(str(cluster.get("server") or ""))
    if url.scheme != "https" or not url.hostname:
        raise ConfigError(f"{cwhere}: server: an https:// URL needed, got {url.geturl()!r}")
    for field in ("exec", "auth-provider", "username"):
        if user.get(field):
            raise ConfigError(
                f"{uwhere}: {field}: not supported by the node agent (use a token or a client "
                "certificate)"
            )
    context = _context(
        f"{cwhere}: certificate-authority",
        cafile=_path(cluster.get("certificate-authority"), cdir),
        cadata=_data(cluster.get("certificate-authority-data"), f"{cwhere}: certificate-authority-data"),
        verify=not cluster.get("insecure-skip-tls-verify"),
    )  # fmt: skip
    _client_cert(context, user, udir, uwhere)
    token: Callable[[], str | None]
    if user.get("token"):
        fixed = str(user["token"])
        token = lambda: fixed  # noqa: E731
    elif user.get("tokenFile"):
        token = TokenFile(_path(user["tokenFile"], udir) or Path())
    else:
        token = lambda: None  # noqa: E731
    return Endpoint(url.hostname, url.port or 443, context, token)


def _client_cert(context: ssl.SSLContext, user: dict[str, Any], udir: Path, where: str) -> None:
    cert = _path(user.get("client-certificate"), udir)
    key = _path(user.get("client-key"), udir)
    cert_data = _data(user.get("client-certificate-data"), f"{where}: client-certificate-data")
    key_data = _data(user.get("client-key-data"), f"{where}: client-key-data")
    if not (cert or cert_data):
        return
    if not (key or key_data):
        raise ConfigError(f"{where}: client-key: needed with a client certificate")
    # ssl loads a certificate chain from files only: inline data goes through a
    # private temporary directory that is gone again before this returns.
    with tempfile.TemporaryDirectory(prefix="keepvip-kube-") as tmp:
        if cert_data is not None:
            cert = Path(tmp) / "cert.pem"
            cert.write_bytes(cert_data)
        if key_data is not None:
            key = Path(tmp) / "key.pem"
            key.write_bytes(key_data)
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}: client-certificate/client-key: {exc}") from None


def _context(
    where: str, *, cafile: Path | None = None, cadata: bytes | None = None, verify: bool = True
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(cafile) if cafile else None,
            cadata=cadata.decode() if cadata else None,
        )
    except (OSError, ssl.SSLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {getattr(exc, 'strerror', None) or exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _path(value: Any, base: Path) -> Path | None:
    return base / str(value) if value else None


def _data(value: Any, where: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise ConfigError(f"{where}: not base64") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
