"""Broken keepalived input gives one clear ``file:line: message`` per problem and exit status 2.

Two sources of broken input:

* variants of the corpus: one edit to a published configuration (a brace
  dropped or glued on, a typo, a clash between hosts), each with the exact
  first line the user gets;
* published configurations that are broken as published
  (``convert_corpus/broken/``: no VIP at all, a keyword keepalived does not
  have), whose whole report is pinned in ``expected-error.txt``.

Nothing is written when the conversion fails: stdout stays empty.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from keepvip_tools.cli import main

CORPUS = Path(__file__).with_name("convert_corpus")
BROKEN = CORPUS / "broken"
UPDATE = os.environ.get("KEEPVIP_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Variant:
    id: str
    case: str
    file: str
    old: str
    new: str
    error: str
    """The first line of the report."""
    drop_args: bool = False


GLUED = (
    "cp1.conf:19: '{' is glued to 'VI_1': keepalived 2.2.7 does not read that as a block "
    "(and says nothing); write 'VI_1 {' with a space before the brace"
)
VARIANTS = [
    Variant(
        "unclosed-block",
        "kubeadm-haproxy",
        "cp1.conf",
        "        check_apiserver\n    }\n}\n",
        "        check_apiserver\n    }\n",
        "cp1.conf:19: this '{' is never closed: a '}' is missing before the end of the file",
    ),
    Variant(
        "extra-closing-brace",
        "nginx-plus-pair",
        "centos7-1.conf",
        "    vrrp_version 3\n}\n",
        "    vrrp_version 3\n}\n}\n",
        "centos7-1.conf:9: '}' without a matching '{'",
    ),
    Variant("glued-open-brace", "kubeadm-haproxy", "cp1.conf", "VI_1 {", "VI_1{", GLUED),
    Variant(
        "glued-close-brace",
        "kubeadm-haproxy",
        "cp1.conf",
        "        192.0.2.100\n    }",
        "        192.0.2.100}",
        "cp1.conf:29: '}' is glued to '192.0.2.100': keepalived 2.2.7 does not read that as a "
        "block (and says nothing); write '192.0.2.100 }' with a space before the brace",
    ),
    Variant(
        "typo-in-instance",
        "kubeadm-haproxy",
        "cp1.conf",
        "priority 101",
        "priorty 101",
        "cp1.conf:23: unknown keyword 'priorty' in vrrp_instance VI_1 (did you mean 'priority'?)",
    ),
    Variant(
        "typo-in-script",
        "kubeadm-haproxy",
        "cp1.conf",
        "interval 3",
        "intervall 3",
        "cp1.conf:13: unknown keyword 'intervall' in vrrp_script check_apiserver "
        "(did you mean 'interval'?)",
    ),
    Variant(
        "typo-at-top-level",
        "kubeadm-haproxy",
        "cp1.conf",
        "vrrp_script check_apiserver {",
        "vrrp_scipt check_apiserver {",
        "cp1.conf:11: unknown keyword 'vrrp_scipt' at the top level (did you mean 'vrrp_script'?)",
    ),
    Variant(
        "duplicate-vrid-on-one-interface",
        "keepalived-localcheck",
        "lb1.conf",
        "virtual_router_id 53",
        "virtual_router_id 51",
        "lb1.conf:80: VI_3: virtual_router_id 51 is already used by VI_1 (lb1.conf:38) on the "
        "same interface and address family; VRIDs must be unique there",
    ),
    Variant(
        "duplicate-router-ids",
        "redis-harbor",
        "redis1.conf",
        "",
        "",
        "redis2.conf:5: router_id redis is also the name of the host in redis1.conf:5: keepvip "
        "names nodes after router_id, so every host needs its own (or pass --node NAME once per "
        "file)",
        drop_args=True,
    ),
    Variant(
        "priority-out-of-range",
        "kubeadm-haproxy",
        "cp1.conf",
        "priority 101",
        "priority 300",
        "cp1.conf:23: priority: 300 is not in 1..255",
    ),
    Variant(
        "vrid-out-of-range",
        "kubeadm-haproxy",
        "cp1.conf",
        "virtual_router_id 51",
        "virtual_router_id 0",
        "cp1.conf:22: virtual_router_id: 0 is not in 1..255",
    ),
    Variant(
        "bad-address",
        "kubeadm-haproxy",
        "cp1.conf",
        "        192.0.2.100\n",
        "        192.0.2.300\n",
        "cp1.conf:29: '192.0.2.300' is not an IP address with an optional /prefix",
    ),
    Variant(
        "missing-vrid",
        "kubeadm-haproxy",
        "cp1.conf",
        "    virtual_router_id 51\n",
        "",
        "cp1.conf:19: vrrp_instance VI_1: virtual_router_id is missing",
    ),
    Variant(
        "instance-without-name",
        "kubeadm-haproxy",
        "cp1.conf",
        "vrrp_instance VI_1 {",
        "vrrp_instance {",
        "cp1.conf:19: vrrp_instance: exactly one name is expected",
    ),
    Variant(
        "weight-out-of-range",
        "kubeadm-haproxy",
        "cp1.conf",
        "weight -2",
        "weight -300",
        "cp1.conf:14: weight: weight -300 is not in -253..253",
    ),
    Variant(
        "unterminated-quote",
        "kubeadm-haproxy",
        "cp1.conf",
        '"/etc/keepalived/check_apiserver.sh"',
        '"/etc/keepalived/check_apiserver.sh',
        "cp1.conf:12: unterminated quoted string: a '\"' is missing",
    ),
    Variant(
        "include-matches-nothing",
        "kubeadm-haproxy",
        "cp1.conf",
        "global_defs {",
        "include conf.d/*.conf\nglobal_defs {",
        "cp1.conf:8: include conf.d/*.conf: no file matches (relative patterns are relative to "
        "the directory of cp1.conf)",
    ),
    Variant(
        "conditional-configuration",
        "kubeadm-haproxy",
        "cp1.conf",
        "    priority 101",
        "    @cp1 priority 101",
        "cp1.conf:23: conditional configuration ('@id' lines) is not supported by the converter: "
        "convert each host's file with only the lines that apply to it",
    ),
    Variant(
        "hosts-disagree-on-addresses",
        "kubeadm-haproxy",
        "cp2.conf",
        "        192.0.2.100\n",
        "        192.0.2.101\n",
        "cp2.conf:19: VI_1 on cp2 and VI_1 on cp1 (cp1.conf:19) are the same VRRP group (VRID 51) "
        "but differ in addresses: ['192.0.2.101/32'] here, ['192.0.2.100/32'] there; every node "
        "must agree",
    ),
    Variant(
        "hosts-disagree-on-interval",
        "nginx-plus-pair",
        "centos7-2.conf",
        "advert_int                 1",
        "advert_int                 2",
        "centos7-2.conf:22: VI_1 on centos7-2 and VI_1 on centos7-1 (centos7-1.conf:22) are the "
        "same VRRP group (VRID 51) but differ in advertisement interval: 2s here, 1s there; "
        "every node must agree",
    ),
    Variant(
        "hosts-disagree-on-password",
        "kubeadm-haproxy",
        "cp3.conf",
        "        auth_pass 42\n",
        "        auth_pass 43\n",
        "cp3.conf:19: VI_1 on cp3 and VI_1 on cp1 (cp1.conf:19) are the same VRRP group (VRID 51) "
        "but differ in authentication password: 43 here, 42 there; every node must agree",
    ),
]


def run(
    directory: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    cwd = Path.cwd()
    os.chdir(directory)
    try:
        code = main(["convert", *argv])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return code, out, err


def case_argv(directory: Path, drop_args: bool) -> list[str]:
    args = (directory / "args").read_text().split() if (directory / "args").exists() else []
    if drop_args:
        args = [a for a in args if a.endswith(".conf")]
    if not any(a.endswith(".conf") for a in args):
        args = sorted(p.name for p in directory.glob("*.conf")) + args
    return args


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_broken_variant_names_file_and_line(
    variant: Variant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / variant.case
    shutil.copytree(CORPUS / variant.case, directory)
    conf = directory / variant.file
    text = conf.read_text()
    assert variant.old in text, f"{variant.old!r} is not in {variant.file}"
    conf.write_text(text.replace(variant.old, variant.new, 1))
    code, out, err = run(directory, case_argv(directory, variant.drop_args), capsys)
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == variant.error
    assert lines[-1].endswith("nothing written")


@pytest.mark.parametrize("case", sorted(p.name for p in BROKEN.iterdir() if p.is_dir()))
def test_published_broken_configuration(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = BROKEN / case
    code, out, err = run(directory, case_argv(directory, False), capsys)
    assert code == 2, err
    assert out == ""
    expected = directory / "expected-error.txt"
    if UPDATE:
        expected.write_text(err)
    assert err == expected.read_text()


def test_every_problem_of_every_file_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several hosts' files with mistakes: one run lists them all, syntax and vocabulary alike."""
    for name, body in {
        "a.conf": "vrrp_instance VI_1{\n}\n",
        "b.conf": "vrrp_instance VI_1 {\n    priorty 1\n    virtual_router_id 300\n}\n",
    }.items():
        (tmp_path / name).write_text(body)
    code, _out, err = run(tmp_path, ["a.conf", "b.conf"], capsys)
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("a.conf:1: '{' is glued to 'VI_1'")
    assert lines[1].startswith("b.conf:1: vrrp_instance VI_1: no virtual_ipaddress")
    assert (
        lines[2]
        == "b.conf:2: unknown keyword 'priorty' in vrrp_instance VI_1 (did you mean 'priority'?)"
    )
    assert lines[3] == "b.conf:3: virtual_router_id: 300 is not in 1..255"
    assert lines[-1] == "keepvip convert: 4 error(s); nothing written"


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(tmp_path, ["missing.conf"], capsys)
    assert code == 2
    assert err.splitlines()[0] == "missing.conf: cannot read: No such file or directory"
