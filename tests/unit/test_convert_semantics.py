"""keepalived's rules, applied exactly: one small configuration per rule, checked value by value.

The corpus shows real files convert; these pin the rules themselves, each
against what keepalived 2.2.7 does (its source, and for the less obvious
ones a run of keepalived in a network namespace: weighted scripts ignored
on an address owner and in sync groups, ``nopreempt`` cleared by ``state
MASTER``, a MASTER without priority becoming 255, authentication ignored in
VRRPv3, scripts run without a shell).
"""

from __future__ import annotations

import io
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_tools.convert import Conversion, ConvertError, Severity, convert_files
from keepvip_tools.convert.command import run

HOST = """\
global_defs {{
    router_id {name}
}}
{body}
"""
INSTANCE = """\
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
{lines}
    virtual_ipaddress {{
        192.0.2.50/24
    }}
}}
"""


def host(name: str, lines: str = "", extra: str = "", instance: str | None = None) -> str:
    body = instance if instance is not None else INSTANCE.format(lines=lines)
    return HOST.format(name=name, body=extra + body)


def convert(
    tmp_path: Path, files: dict[str, str], standalone: bool = True, **kw: Any
) -> Conversion:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        return convert_files(list(files), standalone=standalone, **kw)
    finally:
        os.chdir(cwd)


def spec(conv: Conversion, index: int = 0) -> dict[str, Any]:
    return conv.documents[index].data["spec"]  # type: ignore[no-any-return]


def said(conv: Conversion, severity: Severity | None = None) -> str:
    return "\n".join(str(f) for f in conv.findings if severity is None or f.severity is severity)


def priorities(conv: Conversion, index: int = 0) -> dict[str, int]:
    return {n["name"]: n["priority"] for n in spec(conv, index)["nodes"]}


SCRIPT = """\
vrrp_script chk {{
    script "/usr/bin/true"
    interval 2
{weight}
}}
"""


# -- weights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "on_failure", "priority"),
    [
        ("", {"action": "fault"}, 100),
        ("    weight 0", {"action": "fault"}, 100),
        ("    weight -20", {"action": "demote", "weight": 20}, 100),
        ("    weight 20", {"action": "demote", "weight": 20}, 120),
    ],
    ids=["no-weight", "zero", "negative", "positive"],
)
def test_script_weight(
    tmp_path: Path, weight: str, on_failure: dict[str, Any], priority: int
) -> None:
    conf = host(
        "a",
        "    priority 100\n    track_script {\n        chk\n    }",
        SCRIPT.format(weight=weight),
    )
    conv = convert(tmp_path, {"a.conf": conf})
    (check,) = spec(conv)["checks"]
    assert check["onFailure"] == on_failure
    assert check["exec"] == {"command": ["/usr/bin/true"]}
    assert (check["interval"], check["timeout"]) == ("2s", "2s")
    assert priorities(conv) == {"a": priority}
    assert "so keepalived" in conv.documents[0].text  # the translation is explained


def test_track_script_weight_overrides_the_script(tmp_path: Path) -> None:
    conf = host(
        "a",
        "    priority 100\n    track_script {\n        chk weight 7\n    }",
        SCRIPT.format(weight="    weight -20"),
    )
    conv = convert(tmp_path, {"a.conf": conf})
    assert spec(conv)["checks"][0]["onFailure"] == {"action": "demote", "weight": 7}
    assert priorities(conv) == {"a": 107}


def test_positive_weights_above_254_are_capped_and_reported(tmp_path: Path) -> None:
    conf = host(
        "a",
        "    priority 240\n    track_script {\n        chk\n    }",
        SCRIPT.format(weight="    weight 30"),
    )
    conv = convert(tmp_path, {"a.conf": conf})
    assert priorities(conv) == {"a": 254}
    assert "keepalived caps the sum at 254" in said(conv, Severity.WARNING)


def test_address_owner_ignores_weighted_scripts_but_not_fault_scripts(tmp_path: Path) -> None:
    extra = SCRIPT.format(weight="    weight -20") + SCRIPT.format(weight="").replace("chk", "down")
    conf = host(
        "a", "    priority 255\n    track_script {\n        chk\n        down\n    }", extra
    )
    conv = convert(tmp_path, {"a.conf": conf})
    assert [c["name"] for c in spec(conv)["checks"]] == ["down"]
    assert "keepalived ignores weighted scripts on the address owner" in said(conv)
    assert priorities(conv) == {"a": 255}


def test_interfaces_are_link_checks_and_the_own_interface_is_implicit(tmp_path: Path) -> None:
    lines = "    priority 100\n    track_interface {\n        eth0\n        eth1 weight 5\n        eth2\n    }"
    conv = convert(tmp_path, {"a.conf": host("a", lines)})
    checks = {c["name"]: c for c in spec(conv)["checks"]}
    assert set(checks) == {"link-eth1", "link-eth2"}
    assert checks["link-eth1"]["link"] == {"interface": "eth1"}
    assert checks["link-eth2"]["onFailure"] == {"action": "fault"}
    assert priorities(conv) == {"a": 105}
    assert "track_interface eth0: the instance's own interface" in said(conv, Severity.NOTE)


def test_dev_tcp_idiom_becomes_a_tcp_check_and_shell_syntax_is_reported(tmp_path: Path) -> None:
    extra = (
        'vrrp_script web {\n    script "</dev/tcp/127.0.0.1/80"\n}\n'
        'vrrp_script sh {\n    script "pidof nginx || exit 1"\n    weight -5\n}\n'
    )
    lines = "    track_script {\n        web\n        sh\n    }"
    conv = convert(tmp_path, {"a.conf": host("a", lines, extra)})
    checks = {c["name"]: c for c in spec(conv)["checks"]}
    assert checks["web"]["tcpSocket"] == {"host": "127.0.0.1", "port": 80}
    assert checks["sh"]["exec"]["command"] == ["pidof", "nginx", "||", "exit", "1"]
    assert "keepalived runs scripts without a shell" in said(conv, Severity.WARNING)


# -- election settings -------------------------------------------------------------------


def test_master_without_priority_is_the_address_owner(tmp_path: Path) -> None:
    conv = convert(tmp_path, {"a.conf": host("a", "    state MASTER")})
    assert priorities(conv) == {"a": 255}
    assert "makes this node the address owner (priority 255)" in said(conv, Severity.WARNING)


def test_nopreempt_only_sticks_on_backup_nodes(tmp_path: Path) -> None:
    sticky = {
        "a.conf": host("a", "    state BACKUP\n    priority 150\n    nopreempt"),
        "b.conf": host("b", "    state BACKUP\n    priority 100\n    nopreempt"),
    }
    assert spec(convert(tmp_path, sticky))["preempt"] is False
    cleared = {
        "a.conf": host("a", "    state MASTER\n    priority 150\n    nopreempt"),
        "b.conf": host("b", "    state BACKUP\n    priority 100\n    nopreempt"),
    }
    conv = convert(tmp_path, cleared)
    assert spec(conv)["preempt"] is True
    assert "keepalived clears nopreempt" in said(conv, Severity.WARNING)


def test_preempt_delay_and_when_keepalived_clears_it(tmp_path: Path) -> None:
    conv = convert(tmp_path, {"a.conf": host("a", "    preempt_delay 30")})
    assert (spec(conv)["preempt"], spec(conv)["preemptDelay"]) == (True, "30s")
    conv = convert(tmp_path, {"a.conf": host("a", "    nopreempt\n    preempt_delay 30")})
    assert "preemptDelay" not in spec(conv)
    assert "preempt_delay: keepalived clears it because of nopreempt" in said(conv)


@pytest.mark.parametrize(
    ("lines", "version", "interval"),
    [
        ("", 2, "1s"),
        ("    advert_int 0.5", 2, "1s"),
        ("    advert_int 2.5", 2, "3s"),
        ("    version 3\n    advert_int 0.123", 3, "120ms"),
        ("    version 3\n    advert_int 0.125", 3, "130ms"),
    ],
)
def test_version_and_interval_rounding(
    tmp_path: Path, lines: str, version: int, interval: str
) -> None:
    conv = convert(tmp_path, {"a.conf": host("a", lines)})
    assert (spec(conv)["version"], spec(conv)["advertInterval"]) == (version, interval)


def test_global_vrrp_version(tmp_path: Path) -> None:
    conf = host("a").replace("router_id a", "router_id a\n    vrrp_version 3")
    assert spec(convert(tmp_path, {"a.conf": conf}))["version"] == 3


def test_ipv6_runs_vrrpv3(tmp_path: Path) -> None:
    conf = host("a", "    version 2").replace("192.0.2.50/24", "2001:db8::50/64")
    conv = convert(tmp_path, {"a.conf": conf})
    assert spec(conv)["version"] == 3
    assert "VRRPv2 is IPv4-only" in said(conv, Severity.WARNING)


V3 = "router_id a\n    vrrp_version 3"
AUTH = "    authentication {{\n        auth_type {kind}\n        auth_pass {value}\n    }}"


def test_authentication(tmp_path: Path) -> None:
    conv = convert(tmp_path, {"a.conf": host("a", AUTH.format(kind="PASS", value="longpassword"))})
    assert spec(conv)["authentication"] == {"password": "longpass"}
    v3 = host("a", "    version 3\n" + AUTH.format(kind="PASS", value="x"))
    conv = convert(tmp_path, {"a.conf": v3})
    assert "authentication" not in spec(conv)
    assert "with VRRP version 3: keepalived ignores it" in said(conv, Severity.WARNING)
    conv = convert(tmp_path, {"a.conf": host("a", AUTH.format(kind="AH", value="x"))})
    assert "authentication" not in spec(conv)
    assert "auth_type AH is not converted" in said(conv, Severity.UNSUPPORTED)


HMAC = """\
    auth_hmac {{
        key 1 hex:{key}
        key 2 file:/etc/keepalived/keys/vrrp51
        active_key {active}
{extra}
    }}"""
KEY = bytes(range(32)).hex()


def test_auth_hmac_names_a_key_source_and_keeps_the_keys_out(tmp_path: Path) -> None:
    """keepalived 2.4's auth_hmac (its keepalived.conf(5) and HMAC article): settings map,
    the key material stays out of the VirtualIP and the user is told where it goes."""
    extra = "        anti_replay monotonic\n        time_window 9\n        mode receive-only"
    text = host("a", HMAC.format(key=KEY, active=2, extra=extra))
    conv = convert(tmp_path, {"a.conf": text})
    assert spec(conv)["authHMAC"] == {
        "keyFile": "/etc/keepvip/keys/vi-1.keys",
        "mode": "receiveOnly",
        "antiReplay": "monotonic",
        "timeWindow": "9s",
    }
    notes = said(conv, Severity.NOTE)
    assert "/etc/keepvip/keys/vi-1.keys (mode 0600)" in notes
    assert "key 1 (hex, 32 bytes); key 2 (from file /etc/keepalived/keys/vrrp51)" in notes
    assert KEY not in conv.documents[0].text
    conv = convert(tmp_path, {"a.conf": text}, standalone=False)
    assert spec(conv)["authHMAC"]["secretName"] == "vi-1-vrrp-keys"


def test_auth_hmac_rules(tmp_path: Path) -> None:
    no_active = host("a", HMAC.format(key=KEY, active=3, extra=""))
    conv = convert(tmp_path, {"a.conf": no_active})
    assert "authHMAC" not in spec(conv)
    assert "active_key 3 is not one of the keys [1, 2]" in said(conv, Severity.WARNING)
    both = host(
        "a", AUTH.format(kind="PASS", value="x") + "\n" + HMAC.format(key=KEY, active=1, extra="")
    )
    conv = convert(tmp_path, {"a.conf": both})
    assert "authentication" not in spec(conv) and "authHMAC" in spec(conv)
    assert "keepalived drops the legacy block" in said(conv, Severity.NOTE)
    other = HMAC.format(key=KEY[::-1], active=1, extra="")
    with pytest.raises(ConvertError, match="differ in auth_hmac keys or settings"):
        convert(
            tmp_path,
            {
                "a.conf": host("a", HMAC.format(key=KEY, active=1, extra="")),
                "b.conf": host("b", other),
            },
        )
    bad = host("a", HMAC.format(key=KEY, active=1, extra="        mode strict"))
    with pytest.raises(ConvertError, match="mode: 'strict' is not one of enforce, permissive"):
        convert(tmp_path, {"a.conf": bad})


def test_addresses_dev_label_and_excluded(tmp_path: Path) -> None:
    instance = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.50/24 dev eth0 label eth0:1
        192.0.2.51 dev eth1
        192.0.2.52 brd 192.0.2.255 scope global
    }
    virtual_ipaddress_excluded {
        2001:db8::50/64
    }
}
"""
    conv = convert(tmp_path, {"a.conf": host("a", instance=instance).replace("router_id a", V3)})
    assert spec(conv)["addresses"] == ["192.0.2.50/24", "192.0.2.52/32", "2001:db8::50/64"]
    v2 = convert(tmp_path, {"a.conf": host("a", instance=instance)})
    assert spec(v2)["addresses"] == ["192.0.2.50/24", "192.0.2.52/32"]
    assert "2001:db8::50/64: VRRPv2 carries IPv4 only" in said(v2, Severity.UNSUPPORTED)
    text = said(conv)
    assert "192.0.2.51/32 dev eth1: keepvip binds every address" in text
    assert "label eth0:1: keepvip sets no address labels" in text
    assert "brd 192.0.2.255 scope global not set by keepvip" in text


# -- several hosts ----------------------------------------------------------------------------


def test_hosts_are_matched_by_vrid_and_unicast_peers_are_merged(tmp_path: Path) -> None:
    a = host(
        "a",
        "    priority 150\n    unicast_src_ip 192.0.2.11\n    unicast_peer {\n        192.0.2.12\n    }",
    )
    b = host(
        "b",
        "    priority 100\n    unicast_src_ip 192.0.2.12\n    unicast_peer {\n        192.0.2.11\n    }",
    )
    b = b.replace("VI_1", "WEB").replace("interface eth0", "interface ens3")
    conv = convert(tmp_path, {"a.conf": a, "b.conf": b})
    (doc,) = conv.documents
    s = doc.data["spec"]
    assert priorities(conv) == {"a": 150, "b": 100}
    assert s["unicastPeers"] == ["192.0.2.11", "192.0.2.12"]
    assert "interface" not in s
    assert "the nodes name the interface differently" in said(conv)
    assert "the hosts call this instance VI_1, WEB" in said(conv)


def test_same_vrid_on_two_interfaces_of_one_host_is_allowed(tmp_path: Path) -> None:
    second = INSTANCE.format(lines="").replace("VI_1", "VI_2").replace("eth0", "eth1")
    second = second.replace("192.0.2.50/24", "198.51.100.50/24")
    conv = convert(tmp_path, {"a.conf": host("a", extra=second)})
    assert [d.name for d in conv.documents] == ["vi-2", "vi-1"]  # file order


def test_node_option_count_must_match(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="--node was given 1 times for 2 file"):
        convert(tmp_path, {"a.conf": host("a"), "b.conf": host("b")}, nodes=["x"])


def test_kubernetes_form_wants_node_names(tmp_path: Path) -> None:
    conv = convert(tmp_path, {"a.conf": host("LVS_DEVEL")}, standalone=False)
    assert "'LVS_DEVEL' cannot be a Kubernetes node name" in said(conv, Severity.WARNING)
    conv = convert(tmp_path, {"a.conf": host("LVS_DEVEL")}, nodes=["worker-1"], standalone=False)
    assert priorities(conv) == {"worker-1": 100}


# -- sync groups -----------------------------------------------------------------------------

GROUP = """\
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
    }
    notify_master "/usr/local/bin/to-master arg"
}
vrrp_script chk {
    script "/usr/bin/true"
    weight -20
}
vrrp_script up {
    script "/usr/bin/true"
}
"""
SECOND = """\
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    priority 100
    virtual_ipaddress {
        2001:db8::50/64
    }
    track_script {
        chk
        up
    }
}
"""


def test_sync_group_on_one_interface_becomes_one_virtualip(tmp_path: Path) -> None:
    conf = host("a", "    priority 100", GROUP + SECOND).replace("router_id a", V3)
    conv = convert(tmp_path, {"a.conf": conf})
    (doc,) = conv.documents
    s = doc.data["spec"]
    assert doc.name == "g1"
    assert (s["virtualRouterID"], s["addresses"]) == (51, ["192.0.2.50/24", "2001:db8::50/64"])
    assert [c["name"] for c in s["checks"]] == ["up"]  # the weighted one is ignored in a group
    assert s["notify"]["master"] == ["/usr/local/bin/to-master", "arg"]
    text = said(conv)
    assert "became one VirtualIP with all their addresses" in text
    assert "keepalived ignores weighted scripts on sync group G1" in text


def test_sync_group_across_interfaces_stays_apart_and_says_so(tmp_path: Path) -> None:
    second = SECOND.replace("interface eth0", "interface eth1")
    conf = host("a", "    priority 100", GROUP + second).replace("router_id a", V3)
    conv = convert(tmp_path, {"a.conf": conf})
    assert sorted(d.name for d in conv.documents) == ["vi-1", "vi-2"]
    assert "differ(s) from VI_1, so the group cannot be one VirtualIP" in said(
        conv, Severity.WARNING
    )
    assert "notify_master is not converted" in said(conv, Severity.UNSUPPORTED)


# -- hooks -------------------------------------------------------------------------------------


def test_generic_notify_gets_keepalived_arguments(tmp_path: Path) -> None:
    conv = convert(
        tmp_path, {"a.conf": host("a", '    notify "/bin/hook x"\n    notify_master /bin/m')}
    )
    notify = spec(conv)["notify"]
    assert notify["master"] == ["/bin/m"]
    assert notify["backup"] == ["/bin/hook", "x", "INSTANCE", "VI_1", "BACKUP"]
    assert "keepalived runs both notify_master and notify" in said(conv, Severity.UNSUPPORTED)
    kube = convert(tmp_path, {"a.conf": host("a", '    notify "/bin/hook x"')}, standalone=False)
    assert "notify" not in spec(kube)
    assert "not in the Kubernetes form" in said(kube, Severity.UNSUPPORTED)


# -- the command --------------------------------------------------------------------------------


def args(files: list[str], **kw: Any) -> Namespace:
    base = {"output": None, "standalone": False, "node": [], "strict": False, "quiet": False}
    return Namespace(files=files, **{**base, **kw})


def test_output_directory(tmp_path: Path) -> None:
    second = INSTANCE.format(lines="").replace("VI_1", "VI_2").replace("51", "52")
    second = second.replace("192.0.2.50", "192.0.2.60")
    conf = tmp_path / "a.conf"
    conf.write_text(host("a", extra=second))
    out, err = io.StringIO(), io.StringIO()
    assert run(args([str(conf)], output=str(tmp_path / "k8s")), out, err) == 0
    assert sorted(p.name for p in (tmp_path / "k8s").iterdir()) == ["vi-1.yaml", "vi-2.yaml"]
    assert out.getvalue() == ""
    assert run(args([str(conf)], output=str(tmp_path / "s"), standalone=True), out, err) == 0
    docs = list(yaml.safe_load_all((tmp_path / "s" / "keepvip.yaml").read_text()))
    assert [d["metadata"]["name"] for d in docs] == ["vi-2", "vi-1"]


def test_strict_exit_status(tmp_path: Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(host("a", "    state MASTER"))  # a warning: MASTER without priority
    assert run(args([str(conf)]), io.StringIO(), io.StringIO()) == 0
    assert run(args([str(conf)], strict=True), io.StringIO(), io.StringIO()) == 1
