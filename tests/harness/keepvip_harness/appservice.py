"""The app's Service in front of the lab responders, and a watch on its EndpointSlices.

``service()`` maps port :data:`PORT` (8080) to the responders' port 80, so an
answer on 8080 went through the kube-proxy stand-in (:mod:`.servicenet`).
:class:`SliceWatch` records when each node's endpoint was seen turning not
Ready, the start of the "endpoint not Ready -> another node answers" time
measured by the Service tests and ``benchmarks/cluster.py --only service``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from .controlplane import ControlPlane
from .rest import ApiError

PORT = 8080


def service(name: str = "web", *, type_: str = "ClusterIP", **spec: Any) -> dict[str, Any]:
    """The app's Service: port 8080 to the responders' port 80."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": type_,
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": PORT, "targetPort": 80}],
            **spec,
        },
    }


class SliceWatch:
    """Receipt times (monotonic) of EndpointSlice updates: when did node X's endpoint turn not Ready?"""

    def __init__(self, cp: ControlPlane, ns: str, service: str = "web") -> None:
        self.api, self.ns, self.service = cp.admin_rest(), ns, service
        self.events: list[tuple[float, str, bool]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.ns}/endpointslices"
        selector = f"kubernetes.io/service-name={self.service}"
        while not self.stopped.is_set():
            with contextlib.suppress(ApiError, OSError):
                rv = self.api.get(path, labelSelector=selector)["metadata"]["resourceVersion"]
                for ev in self.api.watch(path, labelSelector=selector, resourceVersion=rv):
                    now = time.monotonic()
                    for ep in (ev.get("object") or {}).get("endpoints") or []:
                        ready = bool((ep.get("conditions") or {}).get("ready"))
                        self.events.append((now, str(ep.get("nodeName")), ready))
                    if self.stopped.is_set():
                        return
            time.sleep(0.05)

    def first_not_ready(self, node: str, after: float) -> float | None:
        return next(
            (t for t, n, r in list(self.events) if n == node and t >= after and not r), None
        )

    def stop(self) -> None:
        self.stopped.set()
        self.api.close()
        self.thread.join(5)
