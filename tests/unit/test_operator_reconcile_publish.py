"""The Reconciler publishing on Services, against an in-memory API: requests, conditions, Events."""

from __future__ import annotations

import copy
from typing import Any, cast

from keepvip_harness.fakekube import NOW, FakeKube, merge, vip
from keepvip_operator.kube import ApiError, Kube
from keepvip_operator.reconcile import Reconciler, View
from keepvip_operator.settings import OperatorSettings

BASE = "/api/v1/namespaces/ns/services"
KEY = "published.keepvip.io/web"


class ServiceKube(FakeKube):
    """FakeKube plus Services: GET, labelled LIST, merge PATCH with resourceVersion checks."""

    def __init__(self) -> None:
        super().__init__()
        self.services: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.conflicts = 0  # answer this many PATCHes with 409 first

    def add(self, name: str, **spec: Any) -> None:
        self.services[name] = {
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", **spec},
        }

    def request(
        self, method: str, url: str, body: Any = None, *, query: Any = (), content_type: str = ""
    ) -> Any:
        self.requests.append((method, url))
        if url == BASE:
            key = dict(query)["labelSelector"]
            items = [
                s for s in self.services.values() if key in (s["metadata"].get("labels") or {})
            ]
            return {"items": copy.deepcopy(items)}
        name, _, sub = url.removeprefix(BASE + "/").partition("/")
        svc = self.services.get(name)
        if svc is None:
            raise ApiError(404, f"services {name} not found", "NotFound")
        if method == "GET":
            return copy.deepcopy(svc)
        if (
            self.conflicts
            or body["metadata"]["resourceVersion"] != svc["metadata"]["resourceVersion"]
        ):
            self.conflicts = max(0, self.conflicts - 1)
            svc["metadata"]["resourceVersion"] = str(int(svc["metadata"]["resourceVersion"]) + 1)
            raise ApiError(409, "the object has been modified", "Conflict")
        patch = {"status": body["status"]} if sub == "status" else body
        new = merge(svc, patch)
        new["metadata"]["resourceVersion"] = str(int(svc["metadata"]["resourceVersion"]) + 1)
        self.services[name] = new
        return copy.deepcopy(new)

    def published(self) -> dict[str, Any] | None:
        conds = {c["type"]: c for c in (self.last_status or {}).get("conditions", [])}
        return conds.get("ServicePublished")


def setup() -> tuple[ServiceKube, Reconciler]:
    kube = ServiceKube()
    # Address grants are judged in test_operator_grants.py; here any address is allowed.
    return kube, Reconciler(
        cast(Kube, kube),
        OperatorSettings(agent_namespace="agents", address_grants=False),
        clock=lambda: NOW,
    )


SPEC = {"addresses": ["192.0.2.50/24"], "serviceRef": {"name": "web"}}


def test_a_missing_service_is_a_condition_and_one_event_then_published_when_it_appears() -> None:
    kube, rec = setup()
    web = vip("web", SPEC)
    view = View(vips={web.key: web})
    rec.reconcile(web, view)
    cond = kube.published()
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "ServiceNotFound")
    assert kube.last_status["virtualRouterID"] == 1, "the rest of the status is written"
    rec.reconcile(web, view)
    assert [e for e in kube.events() if e[0] == "ServiceNotFound"] == [
        ("ServiceNotFound", cond["message"])
    ], "told once"

    kube.add("web", externalIPs=["198.51.100.7"])
    rec.publish_for(web.key, view)
    assert kube.services["web"]["spec"]["externalIPs"] == ["198.51.100.7", "192.0.2.50"]
    cond = kube.published()
    assert cond is not None and cond["status"] == "True", cond
    assert ("ServicePublished", "192.0.2.50 in web spec.externalIPs") in kube.events()


def test_a_conflicting_write_is_read_again_and_retried() -> None:
    kube, rec = setup()
    kube.add("web")
    kube.conflicts = 1
    web = vip("web", SPEC)
    rec.reconcile(web, View(vips={web.key: web}))
    assert kube.services["web"]["spec"]["externalIPs"] == ["192.0.2.50"]
    assert kube.requests.count(("GET", f"{BASE}/web")) == 2, "read, then read again after 409"


def test_a_changed_service_ref_withdraws_from_the_old_service() -> None:
    kube, rec = setup()
    kube.add("web")
    kube.add("other")
    web = vip("web", SPEC)
    rec.reconcile(web, View(vips={web.key: web}))
    moved = vip("web", {**SPEC, "serviceRef": {"name": "other"}}, gen=2)
    rec.reconcile(moved, View(vips={moved.key: moved}))
    assert "externalIPs" not in kube.services["web"]["spec"]
    assert KEY not in kube.services["web"]["metadata"]["labels"]
    assert kube.services["other"]["spec"]["externalIPs"] == ["192.0.2.50"]

    # serviceRef removed: withdrawn, and the condition goes with it.
    gone = vip("web", {"addresses": ["192.0.2.50/24"]}, status=kube.last_status, gen=3)
    rec.reconcile(gone, View(vips={gone.key: gone}))
    assert "externalIPs" not in kube.services["other"]["spec"]
    assert kube.published() is None


def test_a_virtualip_without_service_ref_makes_no_service_request() -> None:
    kube, rec = setup()
    plain = vip("plain", {"addresses": ["192.0.2.60/24"]})
    rec.reconcile(plain, View(vips={plain.key: plain}))
    assert kube.requests == []


def test_delete_withdraws_from_every_labelled_service() -> None:
    kube, rec = setup()
    kube.add("web")
    web = vip("web", SPEC)
    rec.reconcile(web, View(vips={web.key: web}))
    rec.withdraw(web.target)
    assert "externalIPs" not in kube.services["web"]["spec"]
    assert KEY not in (kube.services["web"]["metadata"].get("annotations") or {})


def test_nothing_publishes_again_after_the_withdrawal_of_a_deleted_virtualip() -> None:
    """A reconcile or a Service event in flight with a view from before the deletion mark.

    Seen in CI: the Service event caused by the withdrawal itself published the address again
    from a view that did not show the deletion yet, and nobody withdrew it after that."""
    kube, rec = setup()
    kube.add("web")
    web = vip("web", SPEC)
    stale = View(vips={web.key: web})
    rec.reconcile(web, stale)
    rec.withdraw(web.target)
    rec.publish_for(web.key, stale)
    rec.reconcile(web, stale)
    assert "externalIPs" not in kube.services["web"]["spec"]
    rec.forget(web.target)  # gone; a new VirtualIP of that name and uid publishes as usual
    rec.reconcile(web, stale)
    assert kube.services["web"]["spec"]["externalIPs"] == ["192.0.2.50"]
