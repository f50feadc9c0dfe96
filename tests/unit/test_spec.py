"""The VirtualIP model: valid documents parse, invalid ones give exactly one readable line each."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from textwrap import dedent, indent

import pytest
from pydantic import ValidationError

from keepvip_api import SpecError, VirtualIP, load_documents, parse_virtualip

HEAD = """\
apiVersion: keepvip.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
"""


def doc(spec: str, head: str = HEAD) -> str:
    """A one-document file whose spec is ``spec`` (written unindented)."""
    return head + indent(dedent(spec), "  ")


def load_one(text: str) -> VirtualIP:
    (vip,) = load_documents(text)
    return vip


def problems(text: str, **kwargs: object) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_documents(text, **kwargs)  # type: ignore[arg-type]
    assert str(err.value) == "\n".join(err.value.problems)
    return err.value.problems


# -- valid documents ------------------------------------------------------------------


def test_minimal() -> None:
    vip = load_one(doc("addresses: [192.0.2.50]\nvirtualRouterID: 51\n"))
    assert vip.key == "web"
    s = vip.spec
    assert s.addresses == (IPv4Interface("192.0.2.50/32"),)
    assert s.virtual_router_id == 51
    # The defaults, field by field.
    assert (s.version, s.advert_interval, s.priority, s.preempt, s.preempt_delay) == (
        3, 1.0, 100, False, 0.0,
    )  # fmt: skip
    assert (s.interface, s.nodes, s.unicast_peers, s.checks, s.authentication) == (
        None, (), (), (), None,
    )  # fmt: skip
    assert (s.announce.count, s.announce.interval, s.announce.refresh) == (3, 0.05, 0.0)
    assert s.address_lifetime == 5.0
    assert s.interval_cs == 100
    assert s.priority_for("any-node") == 100


def test_ipv6() -> None:
    vip = load_one(
        doc("""\
            addresses: [2001:db8::50/64]
            virtualRouterID: 7
            interface: eth0
            advertInterval: 40ms
            unicastPeers: [2001:db8::1, 2001:db8::2]
        """)
    )
    s = vip.spec
    assert s.addresses == (IPv6Interface("2001:db8::50/64"),)
    assert s.interval_cs == 4
    assert s.unicast_peers == (IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2"))
    assert s.interface == "eth0"


def test_dual_stack_elects_on_the_first_family() -> None:
    s = load_one(
        doc("""\
            addresses: [192.0.2.50/24, 2001:db8::50/64, 198.51.100.50/24]
            virtualRouterID: 51
            unicastPeers: [192.0.2.2]
        """)
    ).spec
    assert s.election_addresses == (
        IPv4Interface("192.0.2.50/24"),
        IPv4Interface("198.51.100.50/24"),
    )
    assert len(s.addresses) == 3


def test_checks_of_each_kind() -> None:
    s = load_one(
        doc("""\
            addresses: [192.0.2.50/24]
            virtualRouterID: 51
            nodes:
            - {name: node-a, priority: 255}
            - {name: node-b, priority: 120}
            checks:
            - name: api
              tcpSocket: {port: 6443}
              interval: 500ms
              timeout: 200ms
              rise: 2
              fall: 3
              onFailure: {action: demote, weight: 50}
            - name: health
              httpGet: {url: "http://127.0.0.1:8080/healthz", expectStatus: [200, 204]}
              onFailure: {action: fault}
            - name: script
              exec: {command: [/usr/local/bin/check, --quick]}
              interval: 1m30s
              onFailure: {action: demote, weight: 1}
            - name: uplink
              link: {interface: eth1}
              onFailure: {action: fault}
        """)
    ).spec
    api, health, script, uplink = s.checks
    assert [c.kind for c in s.checks] == ["tcp_socket", "http_get", "exec", "link"]
    assert api.tcp_socket is not None
    assert (api.tcp_socket.host, api.tcp_socket.port) == ("127.0.0.1", 6443)
    assert (api.interval, api.timeout, api.rise, api.fall) == (0.5, 0.2, 2, 3)
    assert (api.on_failure.action, api.on_failure.weight) == ("demote", 50)
    assert health.http_get is not None
    assert health.http_get.expect_status == (200, 204)
    assert (health.on_failure.action, health.on_failure.weight) == ("fault", None)
    assert script.exec is not None
    assert script.exec.command == ("/usr/local/bin/check", "--quick")
    assert script.interval == 90.0
    assert uplink.link is not None
    assert uplink.link.interface == "eth1"
    assert s.priority_for("node-a") == 255
    assert s.priority_for("node-b") == 120
    assert s.priority_for("node-c") == 100


def test_v2_with_authentication() -> None:
    s = load_one(
        doc("""\
            addresses: [192.0.2.50/24]
            virtualRouterID: 51
            version: 2
            advertInterval: 3s
            authentication: {password: secret}
            preempt: true
            preemptDelay: 30s
        """)
    ).spec
    assert (s.version, s.interval_cs) == (2, 300)
    assert s.authentication is not None
    assert s.authentication.password == "secret"  # noqa: S105 - a test fixture
    assert (s.preempt, s.preempt_delay) == (True, 30.0)


@pytest.mark.parametrize(
    ("version", "interval", "cs"),
    [(3, "10ms", 1), (3, "40.95s", 4095), (3, "40950ms", 4095), (2, "1s", 100), (2, "255s", 25500),
     (2, "4m15s", 25500)],
)  # fmt: skip
def test_interval_bounds_are_inclusive(version: int, interval: str, cs: int) -> None:
    text = doc(f"addresses: [192.0.2.50]\nvirtualRouterID: 1\nversion: {version}\n"
               f"advertInterval: {interval}\n")  # fmt: skip
    assert load_one(text).spec.interval_cs == cs


def test_several_documents_and_the_api_mode() -> None:
    text = doc("addresses: [192.0.2.50]\nvirtualRouterID: 51\n") + dedent("""\
        ---
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: web, namespace: prod}
        spec: {addresses: ["192.0.2.60"], virtualRouterID: 52}
        ---
        # an empty document is skipped
        ---
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: db}
        spec: {addresses: ["2001:db8::60"], virtualRouterID: 51}
    """)
    assert [v.key for v in load_documents(text)] == ["web", "prod/web", "db"]
    # In Kubernetes the operator allocates the VRID, so it may be left out.
    obj = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": "default", "uid": "ignored"},
        "spec": {"addresses": ["192.0.2.50/24"]},
    }
    assert parse_virtualip(obj).spec.virtual_router_id is None


def test_model_is_frozen() -> None:
    vip = load_one(doc("addresses: [192.0.2.50]\nvirtualRouterID: 51\n"))
    with pytest.raises(ValidationError):
        vip.spec.priority = 5  # type: ignore[misc]
    assert vip.spec.addresses[0].ip == IPv4Address("192.0.2.50")


# -- invalid documents: one exact line each ----------------------------------------------

BASE = "addresses: [192.0.2.50/24]\nvirtualRouterID: 51\n"


def check(name: str, body: str) -> str:
    return f"checks:\n- name: {name}\n" + indent(dedent(body), "  ")


INVALID: list[tuple[str, str, str]] = [
    ("vrid-range", "addresses: [192.0.2.50]\nvirtualRouterID: 300\n",
     "spec.virtualRouterID: 300 is not in 1..255"),
    ("vrid-zero", "addresses: [192.0.2.50]\nvirtualRouterID: 0\n",
     "spec.virtualRouterID: 0 is not in 1..255"),
    ("vrid-string", 'addresses: [192.0.2.50]\nvirtualRouterID: "51"\n',
     "spec.virtualRouterID: '51' is not an integer"),
    ("vrid-float", "addresses: [192.0.2.50]\nvirtualRouterID: 51.5\n",
     "spec.virtualRouterID: 51.5 is not an integer"),
    ("vrid-missing-standalone", "addresses: [192.0.2.50]\n",
     "spec.virtualRouterID: required in standalone mode (1..255)"),
    ("priority-range", BASE + "priority: 255\n", "spec.priority: 255 is not in 1..254"),
    ("node-priority-range", BASE + "nodes: [{name: a, priority: 0}]\n",
     "spec.nodes[0].priority: 0 is not in 1..255"),
    ("node-priority-missing", BASE + "nodes: [{name: a}]\n", "spec.nodes[0].priority: required"),
    ("unknown-field", BASE + "preemption: true\n", "spec.preemption: unknown field"),
    ("unknown-nested-field", BASE + check("a", "link: {interface: eth0, carrier: true}\n"
                                          "onFailure: {action: fault}\n"),
     "spec.checks[0].link.carrier: unknown field"),
    ("bool-type", BASE + 'preempt: "yes"\n', "spec.preempt: 'yes' is not true or false"),
    ("list-type", "addresses: 192.0.2.50\nvirtualRouterID: 51\n",
     "spec.addresses: '192.0.2.50' is not a list"),
    ("mapping-type", BASE + "checks: [5]\n", "spec.checks[0]: 5 is not a mapping"),
    ("string-type", BASE + "interface: 5\n", "spec.interface: 5 is not a string"),
    ("no-addresses", "addresses: []\nvirtualRouterID: 51\n",
     "spec.addresses: tuple should have at least 1 item after validation, not 0"),
    ("version", BASE + "version: 4\n", "spec.version: 4 is not allowed: input should be 2 or 3"),
    ("duplicate-address", "addresses: [192.0.2.50/24, 198.51.100.1, 192.0.2.50/32]\n"
                          "virtualRouterID: 51\n",
     "spec.addresses[2]: 192.0.2.50 is listed twice"),
    ("duplicate-node", BASE + "nodes: [{name: a, priority: 10}, {name: a, priority: 20}]\n",
     "spec.nodes: 'a' is listed more than once"),
    ("duplicate-check", BASE + "checks:\n"
                              "- {name: up, link: {interface: eth0}, onFailure: {action: fault}}\n"
                              "- {name: up, link: {interface: eth1}, onFailure: {action: fault}}\n",
     "spec.checks: name 'up' is used more than once"),
    ("v2-fractional-interval", BASE + "version: 2\nadvertInterval: 1500ms\n",
     "spec.advertInterval: 1500ms must be whole seconds 1s..255s for version 2"),
    ("v2-interval-too-long", BASE + "version: 2\nadvertInterval: 256s\n",
     "spec.advertInterval: 4m16s must be whole seconds 1s..255s for version 2"),
    ("v2-ipv6", "addresses: [2001:db8::50]\nvirtualRouterID: 51\nversion: 2\n",
     "spec.addresses: version 2 carries IPv4 addresses only"),
    ("v2-dual-stack", "addresses: [192.0.2.50, 2001:db8::50]\nvirtualRouterID: 51\nversion: 2\n",
     "spec.addresses: version 2 carries IPv4 addresses only"),
    ("v3-auth", BASE + "authentication: {password: secret}\n",
     "spec.authentication: only version 2 has authentication (RFC 9568 removed it)"),
    ("v2-password-and-hmac", BASE + "version: 2\nauthentication: {password: secret}\n"
     "authHMAC: {keyFile: /etc/keepvip/web.keys}\n",
     "spec.authHMAC: authentication (the v2 password) and authHMAC exclude each other"),
    ("auth-hmac-no-source", BASE + "authHMAC: {mode: enforce}\n",
     "spec.authHMAC: name exactly one of secretName (Kubernetes) and keyFile (standalone)"),
    ("auth-hmac-relative-file", BASE + "authHMAC: {keyFile: web.keys}\n",
     "spec.authHMAC.keyFile: 'web.keys' is not an absolute file path"),
    ("auth-hmac-mode", BASE + "authHMAC: {secretName: k, mode: strict}\n",
     "spec.authHMAC.mode: 'strict' is not allowed: input should be 'enforce', 'permissive' or "
     "'receiveOnly'"),
    ("password-not-string", BASE + "version: 2\nauthentication: {password: 123456789}\n",
     "spec.authentication.password: 123456789 is not a string"),
    ("v2-password-long-string", BASE + 'version: 2\nauthentication: {password: "123456789"}\n',
     "spec.authentication.password: string should have at most 8 characters"),
    ("v3-interval-step", BASE + "advertInterval: 15ms\n",
     "spec.advertInterval: 15ms must be 10ms..40.95s in 10ms steps for version 3"),
    ("v3-interval-too-long", BASE + "advertInterval: 41s\n",
     "spec.advertInterval: 41s must be 10ms..40.95s in 10ms steps for version 3"),
    ("v3-interval-zero", BASE + "advertInterval: 0s\n",
     "spec.advertInterval: 0s must be 10ms..40.95s in 10ms steps for version 3"),
    ("unicast-family", BASE + "unicastPeers: [192.0.2.2, 2001:db8::2]\n",
     "spec.unicastPeers[1]: 2001:db8::2 is IPv6 but the election runs on IPv4 "
     "(the family of addresses[0])"),
    ("unicast-bad-address", BASE + "unicastPeers: [peer-1]\n",
     "spec.unicastPeers[0]: 'peer-1' is not an IP address"),
    ("bad-address", "addresses: [192.0.2.300/24]\nvirtualRouterID: 51\n",
     "spec.addresses[0]: '192.0.2.300/24' is not an IP address with an optional /prefix"),
    ("bad-prefix", "addresses: [192.0.2.3/33]\nvirtualRouterID: 51\n",
     "spec.addresses[0]: '192.0.2.3/33' is not an IP address with an optional /prefix"),
    ("address-not-string", "addresses: [3232235777]\nvirtualRouterID: 51\n",
     "spec.addresses[0]: 3232235777 is not an IP address string"),
    ("demote-without-weight", BASE + check("a", "link: {interface: eth0}\n"
                                           "onFailure: {action: demote}\n"),
     "spec.checks[0].onFailure.weight: required when action is demote"),
    ("fault-with-weight", BASE + check("a", "link: {interface: eth0}\n"
                                       "onFailure: {action: fault, weight: 10}\n"),
     "spec.checks[0].onFailure.weight: not allowed when action is fault "
     "(fault leaves the election)"),
    ("weight-range", BASE + check("a", "link: {interface: eth0}\n"
                                  "onFailure: {action: demote, weight: 255}\n"),
     "spec.checks[0].onFailure.weight: 255 is not in 1..254"),
    ("action", BASE + check("a", "link: {interface: eth0}\nonFailure: {action: restart}\n"),
     "spec.checks[0].onFailure.action: 'restart' is not allowed: "
     "input should be 'demote' or 'fault'"),
    ("on-failure-missing", BASE + check("a", "link: {interface: eth0}\n"),
     "spec.checks[0].onFailure: required"),
    ("no-probe", BASE + check("a", "onFailure: {action: fault}\n"),
     "spec.checks[0]: exactly one of tcpSocket, httpGet, exec, link is required (got 0)"),
    ("two-probes", BASE + check("a", "link: {interface: eth0}\ntcpSocket: {port: 80}\n"
                                "onFailure: {action: fault}\n"),
     "spec.checks[0]: exactly one of tcpSocket, httpGet, exec, link is required (got 2)"),
    ("check-name", BASE + check("Bad_Name", "link: {interface: eth0}\n"
                                "onFailure: {action: fault}\n"),
     "spec.checks[0].name: 'Bad_Name' has the wrong form "
     "(String should match pattern '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"),
    ("port-range", BASE + check("a", "tcpSocket: {port: 65536}\nonFailure: {action: fault}\n"),
     "spec.checks[0].tcpSocket.port: 65536 is not in 1..65535"),
    ("url-scheme", BASE + check("a", 'httpGet: {url: "ftp://x"}\nonFailure: {action: fault}\n'),
     "spec.checks[0].httpGet.url: 'ftp://x' has the wrong form "
     "(String should match pattern '^https?://')"),
    ("exec-empty", BASE + check("a", "exec: {command: []}\nonFailure: {action: fault}\n"),
     "spec.checks[0].exec.command: tuple should have at least 1 item after validation, not 0"),
    ("duration-unit", BASE + "advertInterval: 1x\n",
     "spec.advertInterval: '1x' is not a duration like 100ms, 1s or 1m30s"),
    ("duration-number", BASE + "advertInterval: 1\n",
     "spec.advertInterval: 1 is not a duration like 100ms, 1s or 1m30s"),
    ("duration-sub-ms", BASE + "preemptDelay: 0.5ms\n",
     "spec.preemptDelay: '0.5ms' is finer than a millisecond"),
    ("duration-range", BASE + "preemptDelay: 2h\n", "spec.preemptDelay: 2h is not in 0s..1h"),
    ("check-interval-range", BASE + check("a", "link: {interface: eth0}\ninterval: 50ms\n"
                                          "onFailure: {action: fault}\n"),
     "spec.checks[0].interval: 50ms is not in 100ms..1h"),
    ("address-lifetime-range", BASE + "addressLifetime: 1s\n",
     "spec.addressLifetime: 1s is not in 2s..1h"),
    ("interface-name-too-long", BASE + "interface: a-very-long-ifname\n",
     "spec.interface: string should have at most 15 characters"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_spec(body: str, message: str) -> None:
    assert problems(doc(body)) == [f"<input>: {message}"]


def test_invalid_table_is_broad() -> None:
    assert len(INVALID) >= 20
    assert len({c[0] for c in INVALID}) == len(INVALID)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEAD.replace("keepvip.io/v1alpha1", "keepvip.io/v1") + "  addresses: [192.0.2.50]\n"
         "  virtualRouterID: 51\n",
         "<input>: apiVersion: 'keepvip.io/v1' is not allowed: "
         "input should be 'keepvip.io/v1alpha1'"),
        (HEAD.replace("VirtualIP", "VirtualIp") + "  addresses: [192.0.2.50]\n"
         "  virtualRouterID: 51\n",
         "<input>: kind: 'VirtualIp' is not allowed: input should be 'VirtualIP'"),
        ("apiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\nmetadata: web\n"
         "spec: {addresses: [192.0.2.50], virtualRouterID: 51}\n",
         "<input>: metadata: 'web' is not a mapping"),
        ("apiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\n"
         "spec: {addresses: [192.0.2.50], virtualRouterID: 51}\n",
         "<input>: metadata: required"),
        ("apiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: Web}\n"
         "spec: {addresses: [192.0.2.50], virtualRouterID: 51}\n",
         "<input>: metadata.name: 'Web' has the wrong form "
         "(String should match pattern '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')"),
        (HEAD, "<input>: spec: None is not a mapping"),
        ("- just\n- a list\n", "<input>: a document must be a mapping"),
        ("", "<input>: no VirtualIP document found"),
        ("# only a comment\n---\n", "<input>: no VirtualIP document found"),
    ],
    ids=["api-version", "kind", "metadata-not-mapping", "metadata-missing", "name-form",
         "spec-null", "not-a-mapping", "empty", "only-comments"],
)  # fmt: skip
def test_invalid_document(text: str, message: str) -> None:
    assert problems(text) == [message]


def test_invalid_yaml_names_the_line() -> None:
    text = doc("addresses: [192.0.2.50\nvirtualRouterID: 51\n")
    assert problems(text, source="/etc/keepvip/web.yaml") == [
        "/etc/keepvip/web.yaml:7: not valid YAML: expected ',' or ']', but got ':'"
    ]


def test_invalid_yaml_tab_indentation() -> None:
    text = HEAD + "\taddresses: [192.0.2.50]\n"
    (line,) = problems(text)
    assert line.startswith("<input>:6: not valid YAML: ")


def test_every_problem_of_every_document_at_once() -> None:
    text = dedent("""\
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: a}
        spec: {addresses: [192.0.2.50], virtualRouterID: 51, bogus: 1, priority: 0}
        ---
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: b}
        spec: {addresses: [192.0.2.51], virtualRouterID: 300}
        ---
        - not a mapping
    """)
    assert problems(text, source="vips.yaml") == [
        "vips.yaml[0] (a): spec.priority: 0 is not in 1..254",
        "vips.yaml[0] (a): spec.bogus: unknown field",
        "vips.yaml[1] (b): spec.virtualRouterID: 300 is not in 1..255",
        "vips.yaml[2]: a document must be a mapping",
    ]


def test_duplicate_vrid_across_documents() -> None:
    text = dedent("""\
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: web}
        spec: {addresses: [192.0.2.50], virtualRouterID: 51, interface: eth0}
        ---
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {name: db}
        spec: {addresses: [192.0.2.60], virtualRouterID: 51, interface: eth0}
    """)
    assert problems(text) == [
        "<input>: db: spec.virtualRouterID: 51 is already used by web "
        "on the same interface and address family"
    ]


@pytest.mark.parametrize(
    ("second", "interface"),
    [("2001:db8::60", "eth0"), ("192.0.2.60", "eth1")],
    ids=["other-family", "other-interface"],
)
def test_same_vrid_on_another_family_or_interface_is_fine(second: str, interface: str) -> None:
    # RFC 9568: VRIDs of IPv4 and IPv6 virtual routers are separate spaces.
    text = dedent(f"""\
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {{name: web}}
        spec: {{addresses: [192.0.2.50], virtualRouterID: 51, interface: eth0}}
        ---
        apiVersion: keepvip.io/v1alpha1
        kind: VirtualIP
        metadata: {{name: db}}
        spec: {{addresses: ["{second}"], virtualRouterID: 51, interface: {interface}}}
    """)
    assert len(load_documents(text)) == 2


def test_duplicate_names_across_documents() -> None:
    one = "apiVersion: keepvip.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: web}\n"
    text = (
        one + "spec: {addresses: [192.0.2.50], virtualRouterID: 51}\n---\n"
        + one + "spec: {addresses: [192.0.2.60], virtualRouterID: 52}\n"
    )  # fmt: skip
    assert problems(text) == ["<input>: metadata.name 'web' is used by more than one document"]


def test_api_mode_checks_the_same_rules() -> None:
    obj = {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web"},
        "spec": {"addresses": ["192.0.2.50"], "virtualRouterID": 0},
    }
    with pytest.raises(SpecError) as err:
        parse_virtualip(obj, prefix="default/web: ")
    assert err.value.problems == ["default/web: spec.virtualRouterID: 0 is not in 1..255"]
    with pytest.raises(SpecError) as err:
        parse_virtualip({**obj, "spec": {"addresses": ["192.0.2.50"]}}, standalone=True)
    assert err.value.problems == ["spec.virtualRouterID: required in standalone mode (1..255)"]
