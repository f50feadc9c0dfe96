"""Where ``keepvip status`` reads from: the Kubernetes API, or standalone agents' ``/status``.

The API path uses the official client's kubeconfig handling (``--kubeconfig``,
``$KUBECONFIG`` with several files, contexts, exec plugins, in-cluster
service accounts), with a client of its own so nothing global is touched;
the client is an optional extra (``keepvip[kubernetes]``) and is imported
only here. The agent path is a plain HTTP GET per agent; an agent that does
not answer is reported and the others are still shown.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keepvip_api.crd import GROUP, PLURAL, VERSION
from keepvip_api.names import node_of_lease

__all__ = ["AgentReplies", "Listing", "SourceError", "fetch_agents", "list_virtualips"]

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TIMEOUT = 5.0


class SourceError(Exception):
    """The source could not be read at all (no kubeconfig, API unreachable, forbidden)."""


def _namespace_of_context(kubeconfig: str | None, context: str | None) -> str:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    chosen = active
    if context is not None:
        chosen = next((c for c in contexts if c.get("name") == context), active)
    return str((chosen or {}).get("context", {}).get("namespace") or "default")


@dataclass
class Listing:
    items: list[dict[str, Any]]
    renewals: dict[str, datetime | None] | None
    """Each node's agent Lease renewTime, by node; None when the Leases are not readable."""


def _renewals(api_client: Any, agent_namespace: str | None) -> dict[str, datetime | None] | None:
    """The node agents' Leases (``keepvip-node-<node>``) in ``agent_namespace``, or in any
    namespace when it is not given (then the newest renewal of a node wins); None if refused."""
    from kubernetes import client

    api = client.CoordinationV1Api(api_client)
    try:
        if agent_namespace:
            leases = api.list_namespaced_lease(agent_namespace, _request_timeout=TIMEOUT)
        else:
            leases = api.list_lease_for_all_namespaces(_request_timeout=TIMEOUT)
    except Exception:  # 403 or unreachable: staleness falls back to the entries' write times
        return None
    out: dict[str, datetime | None] = {}
    for lease in leases.items or ():
        node = node_of_lease((lease.metadata.name if lease.metadata else None) or "")
        if node is None:
            continue
        spec = lease.spec
        renewed = (spec.renew_time or spec.acquire_time) if spec else None
        renewed = renewed.astimezone(UTC) if renewed else None
        known = out.get(node)
        if node not in out or (renewed is not None and (known is None or renewed > known)):
            out[node] = renewed
    return out


def connect(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    """An API client (in-cluster, or from the kubeconfig) and the default namespace."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise SourceError(
            "reading the Kubernetes API needs the kubernetes package: "
            "pip install 'keepvip[kubernetes]' (or use --agent URL for standalone agents)"
        ) from None
    in_cluster = (
        not kubeconfig
        and not os.environ.get("KUBECONFIG")
        and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    )
    try:
        if in_cluster:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient(), IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
        # The client reads KUBECONFIG once, when it is imported: pass it explicitly.
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
        return api_client, _namespace_of_context(kubeconfig, context)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise SourceError(f"cannot load the Kubernetes configuration: {exc}") from None


def list_virtualips(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    agent_namespace: str | None = None,
) -> Listing:
    """VirtualIP objects of one namespace (default: the context's) or of all namespaces,
    and the node agents' Lease renewals that say whose entries are stale."""
    from kubernetes import client

    api_client, default_ns = connect(kubeconfig, context)
    api = client.CustomObjectsApi(api_client)
    try:
        if all_namespaces:
            listed = api.list_cluster_custom_object(
                GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT
            )
        else:
            listed = api.list_namespaced_custom_object(
                GROUP, VERSION, namespace or default_ns, PLURAL, _request_timeout=TIMEOUT
            )
        renewals = _renewals(api_client, agent_namespace)
    except client.ApiException as exc:
        raise SourceError(f"listing VirtualIPs failed: HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 connection errors have no common base worth naming here
        raise SourceError(f"cannot reach the Kubernetes API: {exc}") from None
    finally:
        api_client.close()
    items = listed.get("items", []) if isinstance(listed, dict) else []
    return Listing([i for i in items if isinstance(i, dict)], renewals)


@dataclass
class AgentReplies:
    statuses: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _status_url(agent: str) -> str:
    base = agent if "://" in agent else f"http://{agent}"
    return base.rstrip("/") + "/status"


def fetch_agents(agents: Sequence[str], timeout: float = TIMEOUT) -> AgentReplies:
    """Each agent's ``/status``; agents that do not answer are listed in ``errors``."""
    replies = AgentReplies()
    for agent in agents:
        url = _status_url(agent)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) URLs the user gave
                body = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            replies.errors.append(f"{url}: {reason}")
            continue
        if not isinstance(body, dict):
            replies.errors.append(f"{url}: not an agent's /status document")
            continue
        replies.statuses.append(body)
    return replies
