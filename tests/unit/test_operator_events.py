"""The Events the operator posts, on a VirtualIP and on a Service, come from one builder.

Both carry the operator as source and reporting component, the process as
reporting instance, a message cut to the API's limit, and a refused POST
is only logged (an Event is best effort and must not fail a reconcile).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from keepvip_api.times import EPOCH
from keepvip_operator.kube import EVENT_MESSAGE_MAX, ApiError, Kube
from keepvip_operator.lbmodel import LBService
from keepvip_operator.names import Target
from keepvip_operator.services import LoadBalancers
from keepvip_operator.settings import OperatorSettings


class Recording(Kube):
    def __init__(self, refuse: bool = False) -> None:
        super().__init__(None)
        self.instance = "op-0"
        self.sent: list[tuple[str, str, Any]] = []
        self.refuse = refuse

    def request(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        self.sent.append((method, url, body))
        if self.refuse:
            raise ApiError(403, "forbidden", "Forbidden")
        return {}


def without_stamps(event: dict[str, Any]) -> dict[str, Any]:
    stamp = event["firstTimestamp"]
    assert event["lastTimestamp"] == stamp and stamp.endswith("Z") and len(stamp) == 20
    return {k: v for k, v in event.items() if k not in ("firstTimestamp", "lastTimestamp")}


def expected(involved: dict[str, str], name: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": "shop"},
        "involvedObject": {**involved, "name": name, "namespace": "shop", "uid": "u-1"},
        "type": "Normal",
        "reason": reason,
        "message": message,
        "source": {"component": "keepvip-operator"},
        "reportingComponent": "keepvip.io/keepvip-operator",
        "reportingInstance": "op-0",
        "count": 1,
    }


def test_an_event_on_a_virtualip() -> None:
    kube = Recording()
    kube.post_event(Target("shop", "web", "u-1"), "Normal", "MasterChanged", "n2 holds the VIP")
    ((method, url, event),) = kube.sent
    assert (method, url) == ("POST", "/api/v1/namespaces/shop/events")
    assert without_stamps(event) == expected(
        {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP"},
        "web",
        "MasterChanged",
        "n2 holds the VIP",
    )


def test_an_event_on_a_service_with_a_long_message() -> None:
    kube = Recording()
    lbs = LoadBalancers(kube, OperatorSettings())
    svc = LBService("shop", "shop-front", "u-1", EPOCH, 1, (4,))
    lbs._event(svc, "Normal", "AddressAssigned", "x" * (EVENT_MESSAGE_MAX + 5))
    ((method, url, event),) = kube.sent
    assert (method, url) == ("POST", "/api/v1/namespaces/shop/events")
    assert without_stamps(event) == expected(
        {"apiVersion": "v1", "kind": "Service"},
        "shop-front",
        "AddressAssigned",
        "x" * EVENT_MESSAGE_MAX,
    )


def test_a_refused_event_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    kube = Recording(refuse=True)
    with caplog.at_level(logging.WARNING, logger="keepvip_operator.kube"):
        kube.post_event(Target("shop", "web", "u-1"), "Warning", "Conflict", "address taken")
    assert "shop/web: cannot post Event Conflict (address taken): HTTP 403" in caplog.text
