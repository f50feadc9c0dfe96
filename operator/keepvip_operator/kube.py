"""The operator's own requests to the API: server-side apply, delete, list, Events.

A thin, synchronous adapter over the official client's HTTP layer with plain
JSON objects in the API's own field names (no generated models: the
rendered objects already are API JSON, and apply must send exactly them).
Calls run in worker threads. Errors come out as :class:`ApiError` that says
whether trying again can help, which the handlers turn into kopf's
``TemporaryError`` or ``PermanentError``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from keepvip_api.times import format_time
from keepvip_operator.names import API_VERSION, FIELD_MANAGER, KIND, PLURAL, Target

logger = logging.getLogger(__name__)

JSON = "application/json"
APPLY = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
TIMEOUT = (5.0, 30.0)
TRANSIENT = frozenset({0, 408, 409, 425, 429, 500, 502, 503, 504})
# Kinds the operator touches: (apiVersion, kind) -> plural.
PLURALS = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Event"): "events",
    ("v1", "Pod"): "pods",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("apps/v1", "DaemonSet"): "daemonsets",
    (API_VERSION, KIND): PLURAL,
}
EVENT_MESSAGE_MAX = 1024
CONNECTIONS = 16


class ApiError(Exception):
    """A failed request; ``status`` 0 means the API server was not reached."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {message}" if status else message)
        self.status, self.message, self.reason = status, message, reason

    @property
    def transient(self) -> bool:
        """Trying again later can succeed (the API is away, busy, or the object moved on)."""
        return self.status in TRANSIENT

    @property
    def not_found(self) -> bool:
        return self.status == 404


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    where = f"/namespaces/{namespace}" if namespace else ""
    tail = f"/{name}" if name else ""
    return f"{prefix}{where}/{PLURALS[(api_version, kind)]}{tail}"


def load_configuration(kubeconfig: str | None) -> Any:
    """A ``kubernetes.client.Configuration``: a given kubeconfig, else $KUBECONFIG, else in-cluster.

    An explicit kubeconfig wins over the in-cluster service account, as in the agent.
    """
    from kubernetes import client, config

    cfg = client.Configuration()
    explicit = kubeconfig or os.environ.get("KUBECONFIG")
    if explicit or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=explicit, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


class Kube:
    def __init__(self, api_client: Any) -> None:
        self.api = api_client
        self.instance = socket.gethostname()

    @classmethod
    def connect(cls, kubeconfig: str | None) -> Kube:
        from kubernetes import client

        cfg = load_configuration(kubeconfig)
        cfg.connection_pool_maxsize = CONNECTIONS  # one per worker thread, see handlers.start
        return cls(client.ApiClient(cfg))

    def close(self) -> None:
        self.api.close()

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = JSON,
    ) -> Any:
        """One request; the decoded answer, or :class:`ApiError`."""
        import urllib3

        headers = {"Content-Type": content_type, "Accept": JSON}
        try:
            m, full, hdrs, data, post = self.api.param_serialize(
                method, url, query_params=list(query), header_params=headers, body=body,
                auth_settings=["BearerToken"],
            )  # fmt: skip
            resp = self.api.call_api(m, full, hdrs, data, post, _request_timeout=TIMEOUT)
            resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, f"{method} {url}: {exc}") from exc
        raw = resp.data or b""
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        if resp.status >= 300:
            message = decoded.get("message", "") if isinstance(decoded, dict) else str(decoded)
            reason = decoded.get("reason", "") if isinstance(decoded, dict) else ""
            raise ApiError(resp.status, f"{method} {url}: {message}", reason)
        return decoded

    def apply(self, obj: dict[str, Any], *, subresource: str = "") -> dict[str, Any]:
        """Server-side apply as ``keepvip-operator``, taking over conflicting fields."""
        meta = obj["metadata"]
        url = path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        out: dict[str, Any] = self.request(
            "PATCH", url + (f"/{subresource}" if subresource else ""), obj,
            query=query, content_type=APPLY,
        )  # fmt: skip
        return out

    def json_patch(self, url: str, ops: list[dict[str, Any]]) -> Any:
        return self.request(
            "PATCH", url, ops, query=[("fieldManager", FIELD_MANAGER)], content_type=JSON_PATCH
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        orphan: bool = False,
    ) -> bool:
        """Delete (background propagation, or orphaning its dependents); False if not there."""
        policy = "Orphan" if orphan else "Background"
        try:
            self.request(
                "DELETE", path(api_version, kind, namespace, name), {"propagationPolicy": policy}
            )
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def list(
        self, api_version: str, kind: str, namespace: str | None, *, labels: str
    ) -> list[dict[str, Any]]:
        answer = self.request(
            "GET", path(api_version, kind, namespace), query=[("labelSelector", labels)]
        )
        items: list[dict[str, Any]] = answer.get("items") or []
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def delete_all(self, objs: Iterable[dict[str, Any]]) -> None:
        for obj in objs:
            meta = obj["metadata"]
            self.delete(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    def post_event(self, t: Target, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the VirtualIP (``kubectl describe`` shows it); best effort."""
        involved = {"apiVersion": API_VERSION, "kind": KIND, "name": t.name, "uid": t.uid}
        self.post_event_on(involved, t.namespace, type_, reason, message)

    def post_event_on(
        self, involved: Mapping[str, str], namespace: str, type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on an object of ``namespace`` (apiVersion, kind, name, uid); best effort."""
        name = involved["name"]
        now = format_time(datetime.now(UTC))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": name,
                "namespace": namespace,
                "uid": involved["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:EVENT_MESSAGE_MAX],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": f"keepvip.io/{FIELD_MANAGER}",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", path("v1", "Event", namespace), event)
        except ApiError as exc:
            logger.warning(
                "%s/%s: cannot post Event %s (%s): %s", namespace, name, reason, message, exc
            )
