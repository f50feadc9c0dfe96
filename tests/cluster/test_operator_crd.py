"""The VirtualIP CRD on a real API server: bad VirtualIPs are refused with the message a user sees,
the examples are accepted, and both agree with the model.

Each bad input is checked twice: the API server refuses it (``kubectl apply``
would print the text asserted here) and the model (``parse_virtualip``, what
the agent and operator run) refuses it too, so neither layer lets through
what the other stops. Where the refusal comes from a CEL rule, the expected
text must be one of the rule messages the model put into the CRD.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_api import SpecError, parse_virtualip
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import CRD_FILE
from keepvip_harness.rest import ApiError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = {"addresses": ["192.0.2.50/24"]}


def _cel_messages(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations") or []:
            yield rule["message"]
        for value in node.values():
            yield from _cel_messages(value)
    elif isinstance(node, list):
        for value in node:
            yield from _cel_messages(value)


CEL_MESSAGES = set(_cel_messages(yaml.safe_load(CRD_FILE.read_text())))


def check(**fields: Any) -> dict[str, Any]:
    return {"checks": [{"name": "a", **fields}]}


LINK = {"link": {"interface": "eth0"}}
FAULT = {"onFailure": {"action": "fault"}}

# (id, spec, what the API says (substrings), what the model says (a substring), from a CEL rule)
BAD: list[tuple[str, dict[str, Any], list[str], str, bool]] = [
    ("vrid-range", {**BASE, "virtualRouterID": 300},
     ["spec.virtualRouterID", "should be less than or equal to 255"],
     "spec.virtualRouterID: 300 is not in 1..255", False),
    ("vrid-zero", {**BASE, "virtualRouterID": 0},
     ["spec.virtualRouterID", "should be greater than or equal to 1"],
     "spec.virtualRouterID: 0 is not in 1..255", False),
    ("vrid-string", {**BASE, "virtualRouterID": "51"},
     ["spec.virtualRouterID in body must be of type integer"],
     "spec.virtualRouterID: '51' is not an integer", False),
    ("priority-range", {**BASE, "priority": 255},
     ["spec.priority in body should be less than or equal to 254"],
     "spec.priority: 255 is not in 1..254", False),
    ("no-addresses", {"addresses": []},
     ["spec.addresses in body should have at least 1 items"],
     "spec.addresses: tuple should have at least 1 item", False),
    ("addresses-missing", {"priority": 100},
     ["spec.addresses: Required value"], "spec.addresses: required", False),
    ("bad-address", {"addresses": ["192.0.2.300/24"]},
     ['spec.addresses[0]: Invalid value: "192.0.2.300/24"',
      "must be an IP address with an optional /prefix"],
     "spec.addresses[0]: '192.0.2.300/24' is not an IP address with an optional /prefix", True),
    ("bad-prefix", {"addresses": ["192.0.2.3/33"]},
     ["must be an IP address with an optional /prefix"],
     "'192.0.2.3/33' is not an IP address", True),
    ("duplicate-address", {"addresses": ["192.0.2.50/24", "192.0.2.50/32"]},
     ["spec.addresses", "an address is listed twice"],
     "spec.addresses[1]: 192.0.2.50 is listed twice", True),
    ("version", {**BASE, "version": 4},
     ['spec.version: Unsupported value: 4: supported values: "2", "3"'],
     "spec.version: 4 is not allowed", False),
    ("v2-ipv6", {"addresses": ["2001:db8::50"], "version": 2},
     ["spec.addresses", "version 2 carries IPv4 addresses only"],
     "spec.addresses: version 2 carries IPv4 addresses only", True),
    ("v2-fractional-interval", {**BASE, "version": 2, "advertInterval": "1500ms"},
     ["spec.advertInterval", "must be whole seconds 1s..255s for version 2"],
     "spec.advertInterval: 1500ms must be whole seconds 1s..255s for version 2", True),
    ("v3-interval-step", {**BASE, "advertInterval": "15ms"},
     ["spec.advertInterval", "must be 10ms..40.95s in 10ms steps for version 3"],
     "spec.advertInterval: 15ms must be 10ms..40.95s in 10ms steps for version 3", True),
    ("v3-interval-too-long", {**BASE, "advertInterval": "41s"},
     ["must be 10ms..40.95s in 10ms steps for version 3"],
     "spec.advertInterval: 41s must be", True),
    ("v3-authentication", {**BASE, "authentication": {"password": "secret"}},
     ["spec.authentication", "only version 2 has authentication (RFC 9568 removed it)"],
     "spec.authentication: only version 2 has authentication", True),
    ("v2-password-and-hmac", {**BASE, "version": 2, "advertInterval": "1s",
                              "authentication": {"password": "secret"},
                              "authHMAC": {"keyFile": "/etc/keepvip/web.keys"}},
     ["spec.authHMAC", "authentication (the v2 password) and authHMAC exclude each other"],
     "spec.authHMAC: authentication (the v2 password) and authHMAC exclude each other", True),
    ("auth-hmac-two-sources", {**BASE, "authHMAC": {"keyFile": "/k", "secretName": "k"}},
     ["spec.authHMAC", "name exactly one of secretName (Kubernetes) and keyFile (standalone)"],
     "spec.authHMAC: name exactly one of secretName", True),
    ("auth-hmac-window", {**BASE, "authHMAC": {"secretName": "k", "timeWindow": "10m"}},
     ["spec.authHMAC.timeWindow", "must be 1s..5m"],
     "spec.authHMAC.timeWindow: 10m is not in 1s..5m", True),
    ("duration-syntax", {**BASE, "advertInterval": "1x"},
     ["spec.advertInterval in body should match"],
     "spec.advertInterval: '1x' is not a duration like 100ms, 1s or 1m30s", False),
    ("unicast-family", {**BASE, "unicastPeers": ["2001:db8::2"]},
     ["spec.unicastPeers", "must be of the family of addresses[0], on which the election runs"],
     "spec.unicastPeers[0]: 2001:db8::2 is IPv6 but the election runs on IPv4", True),
    ("unicast-not-an-address", {**BASE, "unicastPeers": ["peer-1"]},
     ['spec.unicastPeers[0]: Invalid value: "peer-1": must be an IP address'],
     "spec.unicastPeers[0]: 'peer-1' is not an IP address", True),
    ("duplicate-node", {**BASE, "nodes": [{"name": "a", "priority": 10},
                                          {"name": "a", "priority": 20}]},
     ['spec.nodes[1]: Duplicate value: {"name":"a"}'],
     "spec.nodes: 'a' is listed more than once", False),
    ("demote-without-weight",
     {**BASE, **check(**LINK, onFailure={"action": "demote"})},
     ["spec.checks[0].onFailure", "weight: required when action is demote"],
     "spec.checks[0].onFailure.weight: required when action is demote", True),
    ("fault-with-weight",
     {**BASE, **check(**LINK, onFailure={"action": "fault", "weight": 10})},
     ["spec.checks[0].onFailure",
      "weight: not allowed when action is fault (fault leaves the election)"],
     "spec.checks[0].onFailure.weight: not allowed when action is fault", True),
    ("two-probes", {**BASE, **check(**LINK, tcpSocket={"port": 80}, **FAULT)},
     ["spec.checks[0]", "exactly one of tcpSocket, httpGet, exec, link is required"],
     "spec.checks[0]: exactly one of tcpSocket, httpGet, exec, link is required (got 2)", True),
    ("tls-field-on-http",
     {**BASE, **check(httpGet={"url": "http://127.0.0.1/", "serverName": "kubernetes"}, **FAULT)},
     ["spec.checks[0].httpGet", "caFile, clientCertFile, clientKeyFile, serverName and "
      "insecureSkipVerify are only for an https url"],
     "spec.checks[0].httpGet.serverName: only for an https url", True),
    ("client-key-without-cert",
     {**BASE, **check(httpGet={"url": "https://127.0.0.1/", "clientKeyFile": "/k"}, **FAULT)},
     ["spec.checks[0].httpGet", "clientCertFile and clientKeyFile go together"],
     "spec.checks[0].httpGet.clientCertFile: required with clientKeyFile", True),
    ("skip-verify-with-server-name",
     {**BASE, **check(httpGet={"url": "https://127.0.0.1/", "serverName": "kubernetes",
                               "insecureSkipVerify": True}, **FAULT)},
     ["spec.checks[0].httpGet", "insecureSkipVerify: true verifies nothing, so caFile and "
      "serverName would be ignored: leave them out or drop insecureSkipVerify"],
     "spec.checks[0].httpGet.serverName: ignored with insecureSkipVerify: true", True),
    ("weight-range",
     {**BASE, **check(**LINK, onFailure={"action": "demote", "weight": 255})},
     ["spec.checks[0].onFailure.weight in body should be less than or equal to 254"],
     "spec.checks[0].onFailure.weight: 255 is not in 1..254", False),
    ("preempt-delay-range", {**BASE, "preemptDelay": "2h"},
     ['spec.preemptDelay: Invalid value: "2h": must be 0s..1h'],
     "spec.preemptDelay: 2h is not in 0s..1h", True),
    ("interface-too-long", {**BASE, "interface": "a-very-long-ifname"},
     ["spec.interface: Too long: may not be more than 15 bytes"],
     "spec.interface: string should have at most 15 characters", False),
    ("unknown-field", {**BASE, "preemption": True},
     ['unknown field "spec.preemption"'], "spec.preemption: unknown field", False),
    ("fencing", {**BASE, "fencing": "hard"},
     ['spec.fencing: Unsupported value: "hard": supported values: "none", "strict"'],
     "spec.fencing: 'hard' is not allowed", False),
    ("track-pods-demote-without-weight",
     {**BASE, "trackPods": {"selector": {"matchLabels": {"app": "redis"}},
                            "onFailure": {"action": "demote"}}},
     ["spec.trackPods.onFailure", "weight: required when action is demote"],
     "spec.trackPods.onFailure.weight: required when action is demote", True),
    ("check-name", {**BASE, "checks": [{"name": "Bad_Name", **LINK, **FAULT}]},
     ["spec.checks[0].name in body should match"],
     "spec.checks[0].name: 'Bad_Name' has the wrong form", False),
    ("toleration-operator", {**BASE, "tolerations": [{"key": "x", "operator": "Maybe"}]},
     ['spec.tolerations[0].operator: Unsupported value: "Maybe"'],
     "spec.tolerations[0].operator: 'Maybe' is not allowed", False),
    ("service-name", {**BASE, "serviceRef": {"name": "Web"}},
     ["spec.serviceRef.name in body should match"],
     "spec.serviceRef.name: 'Web' has the wrong form", False),
    ("service-shared-twice", {**BASE, "serviceRef": {"name": "web", "sharedWith": ["dns", "web"]}},
     ["spec.serviceRef", "sharedWith: a Service is listed more than once"],
     "spec.serviceRef.sharedWith: 'web' is listed more than once", True),
    ("address-per-service-count",
     {"addresses": ["192.0.2.50"],
      "serviceRef": {"name": "web", "sharedWith": ["dns"], "addressPerService": True}},
     ["spec.addresses",
      "serviceRef.addressPerService: one address per Service (name and sharedWith)"],
     "spec.addresses: serviceRef.addressPerService: 2 Services but 1 addresses", True),
    ("advert-too-long-ipv6", {"addresses": [f"2001:db8::{i:x}" for i in range(1, 79)]},
     ["spec.addresses",
      "an advertisement lists at most 255 IPv4 or 77 IPv6 addresses (of addresses[0]'s family)"],
     "spec.addresses: 78 IPv6 addresses; an advertisement lists at most", True),
]  # fmt: skip


def document(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(cp: ControlPlane, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create as ``kubectl apply`` does: strict field validation (unknown fields are errors)."""
    created: dict[str, Any] = cp.admin_rest().request(
        "POST",
        f"/apis/keepvip.io/v1alpha1/namespaces/{namespace}/virtualips",
        body,
        query={"fieldValidation": "Strict"},
    )
    return created


def test_the_table_is_broad() -> None:
    assert len(BAD) >= 15
    assert len({row[0] for row in BAD}) == len(BAD)
    assert sum(row[4] for row in BAD) >= 10  # CEL rules, not only the schema


@pytest.mark.parametrize(
    ("spec", "api_says", "model_says", "cel"), [r[1:] for r in BAD], ids=[r[0] for r in BAD]
)
def test_the_api_refuses_a_bad_virtualip_as_the_model_does(
    control_plane: ControlPlane,
    virtualip_crd: dict[str, Any],
    kube_namespace: str,
    spec: dict[str, Any],
    api_says: list[str],
    model_says: str,
    cel: bool,
) -> None:
    body = document("bad", spec)
    with pytest.raises(ApiError) as refused:
        create(control_plane, kube_namespace, body)
    assert refused.value.status in (400, 422)
    message = refused.value.body["message"]
    for text in api_says:
        assert text in message
    if cel:
        assert any(m in api_says[-1] for m in CEL_MESSAGES), "not one of the model's CEL messages"
    with pytest.raises(SpecError) as problems:
        parse_virtualip(body)
    assert any(model_says in line for line in problems.value.problems), problems.value.problems


def examples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "VirtualIP":
                found.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return found


KUBERNETES_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("minimal", document("minimal", {"addresses": ["192.0.2.50/24"]})),
    ("active-passive-redis", document("redis", {
        "addresses": ["192.0.2.60/24", "2001:db8::60/64"],
        "advertInterval": "100ms",
        "nodes": [{"name": "kv-node-1", "priority": 150}, {"name": "kv-node-2", "priority": 120}],
        "preempt": True,
        "preemptDelay": "30s",
        "nodeSelector": {"node-role.kubernetes.io/edge": ""},
        "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
        "trackPods": {
            "namespace": "data",
            "selector": {"matchLabels": {"app": "redis"},
                         "matchExpressions": [{"key": "tier", "operator": "In",
                                               "values": ["cache"]}]},
            "onFailure": {"action": "demote", "weight": 60},
            "roleLabel": True,
        },
        "fencing": "strict",
        "checks": [{"name": "uplink", "link": {"interface": "eth0"},
                    "onFailure": {"action": "fault"}}],
    })),
    # A full shared router: 240 addresses (the CEL rules' cost fits the API's budget).
    ("full-router", document("router", {
        "addresses": [f"198.51.100.{i}" for i in range(1, 241)],
        "serviceRef": {"name": "s0", "sharedWith": [f"s{i}" for i in range(1, 240)],
                       "addressPerService": True, "trackEndpoints": False},
    })),
    ("full-ipv6-router", document("router6", {
        "addresses": [f"2001:db8::{i:x}" for i in range(1, 78)] + ["192.0.2.1"],
    })),
    ("keepalived-v2", document("legacy", {
        "addresses": ["192.0.2.70"], "virtualRouterID": 70, "version": 2, "advertInterval": "1s",
        "authentication": {"password": "secret"}, "unicastPeers": ["198.51.100.11"],
    })),
]  # fmt: skip


@pytest.mark.parametrize(
    "doc",
    [d for _, d in examples() + KUBERNETES_EXAMPLES],
    ids=[i for i, _ in examples() + KUBERNETES_EXAMPLES],
)
def test_the_api_accepts_the_examples_and_defaults_them_as_the_model_does(
    control_plane: ControlPlane,
    virtualip_crd: dict[str, Any],
    kube_namespace: str,
    doc: dict[str, Any],
) -> None:
    stored = create(control_plane, kube_namespace, doc)
    # The API's defaults and the model's agree: the stored object is the same VirtualIP.
    expected = parse_virtualip({**doc, "metadata": {"name": doc["metadata"]["name"]}})
    assert parse_virtualip(stored).spec == expected.spec


def test_the_examples_exist() -> None:
    assert examples(), f"no VirtualIP examples in {EXAMPLES}"
