"""A unit fake of the node agent's API client (``keepvip_agent.kube.api.Kube``): objects by path.

The agent calls the API by method and path (``kube.call("PUT", path, body)``),
so one fake serves every shell test: GET answers the stored object or 404,
POST to a collection creates (409 if present), PUT replaces (404 if absent,
409 on a stale ``resourceVersion``), PATCH is recorded. Every call is kept in
``calls`` as (method, path, body), the ones that went through also in ``done``;
``fail`` makes the next writes fail.
Shared by the agent's unit tests, so none imports another.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from keepvip_agent.kube.api import ApiError

JSON = "application/json"


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.done: list[tuple[str, str, Any]] = []
        self.fail = 0
        """Writes (POST, PUT, PATCH) to fail with a 500 before they succeed again."""
        self.fail_status = 500
        self.version = 0
        self.last_ok = 0.0
        self.after_write: Callable[[str, dict[str, Any]], None] | None = None
        """Called with (path, stored object) after each successful POST or PUT."""

    def writes(self, method: str | None = None) -> list[tuple[str, str, Any]]:
        """The writes that went through, optionally of one method."""
        return [c for c in self.done if c[0] != "GET" and (method is None or c[0] == method)]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
    ) -> Any:
        self.calls.append((method, path, copy.deepcopy(body)))
        answer = self._answer(method, path, body)
        self.done.append(self.calls[-1])
        return answer

    def _answer(self, method: str, path: str, body: Any) -> Any:
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, {"reason": "NotFound", "message": f"{path} not found"})
            return copy.deepcopy(self.objects[path])
        if self.fail:
            self.fail -= 1
            raise ApiError(self.fail_status, {"reason": "InternalError", "message": "API away"})
        if method == "PATCH":
            return copy.deepcopy(body)
        target = f"{path}/{body['metadata']['name']}" if method == "POST" else path
        stored = self.objects.get(target)
        if method == "POST" and stored is not None:
            raise ApiError(409, {"reason": "AlreadyExists", "message": f"{target} exists"})
        if method == "PUT":
            if stored is None:
                raise ApiError(404, {"reason": "NotFound", "message": f"{target} not found"})
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent is not None and sent != stored["metadata"].get("resourceVersion"):
                raise ApiError(409, {"reason": "Conflict", "message": "changed meanwhile"})
        self.version += 1
        obj = copy.deepcopy(body)
        obj["metadata"] = {**obj.get("metadata", {}), "resourceVersion": str(self.version)}
        self.objects[target] = obj
        if self.after_write is not None:
            self.after_write(target, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request(method, path, body, **kwargs)
