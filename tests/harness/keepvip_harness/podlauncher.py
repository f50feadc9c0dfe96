"""The kubelet for launcher pods: runs them for real in node network namespaces.

kwok plays every other pod's lifecycle; pods carrying the launch label
(``controlplane.LAUNCH_LABEL``, which kwok's stages are configured to skip)
are run by this launcher instead, when they are bound to a node that the
test maps to a network namespace. Each container's command becomes a host
process inside that namespace, with the pod's environment (downward API
included) and a status the launcher keeps up to date (podworker.py).

The test owns the namespaces: it passes ``netns_for``, a dict or a callable
from node name to namespace name (None: not ours, leave the pod alone). The
launcher never creates or deletes a namespace, and needs each one's ``lo``
up, because that is where it offers the API server to the pod's processes:

* ``KUBECONFIG`` points at a kubeconfig with a token the API server issued
  for the pod's ServiceAccount, bound to the pod (as the kubelet's projected
  token is), so the process has exactly the RBAC its ServiceAccount has;
* ``KUBERNETES_SERVICE_HOST``/``_PORT`` name a relay on that namespace's
  loopback to the API server on the host's loopback (nsnet.ApiRelay).

The fixed in-cluster paths (/var/run/secrets/kubernetes.io/serviceaccount)
are not provided: they would be shared by every pod on this one host. The
token, CA and namespace files are in the directory ``KEEPVIP_TEST_SA_DIR``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from . import nsnet, podenv, rest
from .controlplane import ControlPlane, kubeconfig
from .podworker import PodWorker, WorkerContext

logger = logging.getLogger(__name__)

NetnsFor = Mapping[str, str] | Callable[[str], str | None]


class PodLauncher:
    """Watches launch-labelled pods and runs those on mapped nodes.

    Use as a context manager; leaving it stops every process it started
    (the pod objects stay, as after a kubelet restart).
    """

    def __init__(
        self,
        cp: ControlPlane,
        netns_for: NetnsFor,
        *,
        label: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        image_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        """``image_paths``: image name -> directory whose commands run that image's pods
        (first on PATH); other images run this venv's commands."""
        self.cp = cp
        self._netns_for = netns_for
        self.label = label or cp.launch_label
        self.extra_env = dict(extra_env or {})
        self.image_paths = {k: str(v) for k, v in (image_paths or {}).items()}
        self.api = cp.admin_rest()
        self.dir = Path(tempfile.mkdtemp(prefix="keepvip-launcher-"))
        self._workers: dict[str, PodWorker] = {}
        self._relays: dict[str, nsnet.ApiRelay] = {}
        self._node_ips: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch_loop, name="pod-launcher", daemon=True)
        self._ctx = WorkerContext(
            api=self.api, log_dir=self.dir / "logs", base_env=self._base_env, lookup=self._lookup
        )
        self._ctx.log_dir.mkdir()

    # ------------------------------------------------------------ public API

    def start(self) -> PodLauncher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.api.close()
        self._thread.join(timeout=10)
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.stop()
        for w in workers:
            w.join(timeout=60)
        for relay in self._relays.values():
            relay.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PodLauncher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        """The worker of that pod: the running one, else the last that ran it."""
        with self._lock:
            matching = [w for w in self._workers.values() if w.ref == f"{namespace}/{name}"]
        alive = [w for w in matching if w.is_alive()]
        found = alive or matching
        return found[-1] if found else None

    def log(self, namespace: str, name: str, container: str | None = None) -> str:
        """What the container's processes wrote to stdout and stderr, restarts included.

        Still there after the pod is gone, until the launcher stops.
        """
        w = self.worker(namespace, name)
        if w is None:
            return ""
        path = w.log_path(container or w.main[0].name)
        return path.read_text(errors="replace") if path.exists() else ""

    def pid(self, namespace: str, name: str, container: str | None = None) -> int | None:
        """The host pid of the container's running process, if any."""
        w = self.worker(namespace, name)
        return None if w is None else w.pid(container or w.main[0].name)

    # ------------------------------------------------------------ watching

    def netns_for(self, node: str) -> str | None:
        if callable(self._netns_for):
            return self._netns_for(node)
        return self._netns_for.get(node)

    def _watch_loop(self) -> None:
        selector = {"labelSelector": self.label}
        while not self._stopped.is_set():
            try:
                listing = self.api.get("/api/v1/pods", **selector)
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self._handle("ADDED", pod)
                self._forget_missing(seen)
                rv = listing["metadata"]["resourceVersion"]
                for event in self.api.watch(
                    "/api/v1/pods", resourceVersion=rv, timeoutSeconds=240, **selector
                ):
                    if self._stopped.is_set():
                        return
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    if event["type"] != "BOOKMARK":
                        self._handle(event["type"], event["object"])
            except Exception:
                if self._stopped.is_set():
                    return
                logger.exception("pod launcher watch failed; listing again")
                time.sleep(0.5)

    def _forget_missing(self, seen: set[str]) -> None:
        with self._lock:
            missing = [w for uid, w in self._workers.items() if uid not in seen]
        for w in missing:
            w.gone()

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            existing = self._workers.get(uid)
            if existing is not None and not existing.is_alive():
                del self._workers[uid]
                existing = None
        if kind == "DELETED":
            if existing is not None:
                existing.gone()
            return
        if existing is not None:
            existing.update(pod)
            return
        node = pod["spec"].get("nodeName")
        if not node or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        netns = self.netns_for(node)
        if netns is None:
            return
        worker = PodWorker(pod, netns, self._node_ip(node), self._ctx)
        with self._lock:
            self._workers[uid] = worker
        worker.start()

    def _node_ip(self, node: str) -> str:
        # Read on every new pod: a test may have moved the node's address.
        status = self.api.get(f"/api/v1/nodes/{node}").get("status", {})
        for addr in status.get("addresses", []):
            if addr["type"] == "InternalIP":
                return str(addr["address"])
        raise RuntimeError(f"node {node} has no InternalIP")

    # ------------------------------------------------------------ environment

    def _lookup(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        try:
            obj = self.api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except rest.ApiError as exc:
            if exc.status == 404:
                return None
            raise
        data: Mapping[str, str] = obj.get("data", {})
        return data

    def _relay(self, netns: str) -> nsnet.ApiRelay:
        with self._lock:
            relay = self._relays.get(netns)
            if relay is None:
                try:
                    relay = nsnet.ApiRelay(netns, self.cp.ports["apiserver"])
                except OSError as exc:
                    raise podenv.ContainerConfigError(
                        f"cannot listen on 127.0.0.1 in netns {netns} for the API relay "
                        f"(is its lo up?): {exc}"
                    ) from exc
                self._relays[netns] = relay
            return relay

    def _base_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """What the kubelet and the image would put in a container's environment."""
        meta, spec = pod["metadata"], pod["spec"]
        relay = self._relay(self.netns_for(spec["nodeName"]) or "")
        # The interpreter running the tests sits next to the project's
        # console scripts (keepvip-agent): put them first on PATH.
        image = (spec.get("containers") or [{}])[0].get("image", "")
        commands = self.image_paths.get(image, str(Path(sys.executable).parent))
        path = f"{commands}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            # Host networking: the hostname is the node's.
            "HOSTNAME": spec["nodeName"],
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(relay.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(relay.port),
        }
        if spec.get("automountServiceAccountToken", True):
            sa = spec.get("serviceAccountName") or "default"
            sa_dir = self.dir / "sa" / meta["uid"]
            sa_dir.mkdir(parents=True, exist_ok=True)
            token = self.cp.service_account_token(
                meta["namespace"],
                sa,
                expiration_seconds=3 * 3600,
                bound_pod=(meta["name"], meta["uid"]),
            )
            (sa_dir / "token").write_text(token)
            (sa_dir / "namespace").write_text(meta["namespace"])
            shutil.copy(self.cp.ca_cert, sa_dir / "ca.crt")
            doc = kubeconfig(
                f"https://127.0.0.1:{relay.port}",
                sa_dir / "ca.crt",
                f"system:serviceaccount:{meta['namespace']}:{sa}",
                {"token": token},
            )
            doc["contexts"][0]["context"]["namespace"] = meta["namespace"]
            (sa_dir / "kubeconfig").write_text(yaml.safe_dump(doc))
            env["KUBECONFIG"] = str(sa_dir / "kubeconfig")
            env["KEEPVIP_TEST_SA_DIR"] = str(sa_dir)
        env.update(self.extra_env)
        return env
