"""keepalived's syntax as the converter reads it: comments, quotes, blocks, includes, and no crashes.

The property tests feed arbitrary text, and text assembled from keepalived's
own vocabulary, through the parser and through the whole conversion: the
only exception allowed out is :class:`ConvertError` (with locations), never
an IndexError from some corner of the input.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keepvip_tools.convert import ConvertError, convert_files
from keepvip_tools.convert.errors import Findings
from keepvip_tools.convert.lexer import expand_braces
from keepvip_tools.convert.parser import parse_file, parse_text
from keepvip_tools.convert.reader import read_node


def words(text: str) -> list[list[str]]:
    return [[w.text for w in s.words] for s in parse_text(text)]


def test_comments_start_anywhere_outside_quotes() -> None:
    # keepalived 2.2.7 reads "router_id ab#cd" as "ab"; "!" starts a comment as well.
    stmts = parse_text('global_defs {\n router_id ab#cd\n ! old\n script "x # y" # z\n}\n')
    assert [[w.text for w in s.words] for s in stmts[0].block or []] == [
        ["router_id", "ab"],
        ["script", "x # y"],
    ]


def test_quotes_escapes_and_continuation() -> None:
    assert words('notify "/bin/a b" \\\n  c\n') == [["notify", "/bin/a b", "c"]]
    assert words('x "a\\"b\\tc"\n') == [["x", 'a"b\tc']]


def test_one_line_blocks_and_a_brace_on_the_next_line() -> None:
    stmts = parse_text("vrrp_instance VI_1\n{\n virtual_ipaddress { 192.0.2.1 192.0.2.2 }\n}\n")
    (inst,) = stmts
    assert inst.args == ["VI_1"]
    (vips,) = inst.block or []
    assert [c.keyword for c in vips.block or []] == ["192.0.2.1"]
    assert (vips.block or [])[0].args == ["192.0.2.2"]
    assert parse_text("a {}\n")[0].block == []


def test_locations_point_at_the_line() -> None:
    stmts = parse_text("\n\nglobal_defs {\n\n  router_id x\n}\n", "h.conf")
    assert str(stmts[0].where) == "h.conf:3"
    assert str((stmts[0].block or [])[0].where) == "h.conf:5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a {\n", "t:1: this '{' is never closed"),
        ("}\n", "t:1: '}' without a matching '{'"),
        ("a {\n}\n{\n}\n", "t:3: '{' does not follow a keyword"),
        ("a{\n}\n", "t:1: '{' is glued to 'a'"),
        ('a "b\n', "t:1: unterminated quoted string"),
        ("$X=1\n", "t:1: parameter definitions"),
        ("a {\n" * 100, "blocks nested deeper than 64 levels"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ConvertError) as err:
        parse_text(text, "t")
    assert message in str(err.value)


def test_brace_expansion() -> None:
    assert expand_braces("a{b,c}d") == ["abd", "acd"]
    assert expand_braces("{x,y{1,2}}") == ["x", "y1", "y2"]
    assert expand_braces("{single}") == ["{single}"]
    assert expand_braces("plain") == ["plain"]


def test_includes_are_relative_to_the_including_file(tmp_path: Path) -> None:
    """As keepalived.conf(5) says, and as keepalived 2.2.7 does (checked with keepalived -t)."""
    (tmp_path / "conf.d" / "inner").mkdir(parents=True)
    (tmp_path / "main.conf").write_text("global_defs {\n router_id a\n}\ninclude conf.d/*.conf\n")
    (tmp_path / "conf.d" / "b.conf").write_text("include inner/{x,y}.inc\n")
    (tmp_path / "conf.d" / "a.conf").write_text("vrrp_script s {\n script /bin/true\n}\n")
    (tmp_path / "conf.d" / "inner" / "x.inc").write_text("vrrp_script x {\n script /bin/true\n}\n")
    (tmp_path / "conf.d" / "inner" / "y.inc").write_text("vrrp_script y {\n script /bin/true\n}\n")
    cwd = Path.cwd()
    os.chdir("/")  # the current directory must not matter
    try:
        stmts = parse_file(str(tmp_path / "main.conf"))
    finally:
        os.chdir(cwd)
    assert [s.args for s in stmts if s.keyword == "vrrp_script"] == [["s"], ["x"], ["y"]]
    where = {s.args[0]: str(s.where) for s in stmts if s.keyword == "vrrp_script"}
    assert where["x"] == f"{tmp_path}/conf.d/inner/x.inc:1"


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(ConvertError, match="includes itself"):
        parse_file(str(tmp_path / "a.conf"))


# -- never a crash ----------------------------------------------------------------------------

VOCABULARY = [
    "global_defs", "router_id", "vrrp_version", "vrrp_strict", "vrrp_instance", "vrrp_script",
    "vrrp_sync_group", "group", "state", "MASTER", "BACKUP", "interface", "eth0", "eth1",
    "virtual_router_id", "priority", "advert_int", "nopreempt", "preempt_delay", "version",
    "authentication", "auth_type", "PASS", "AH", "auth_pass", "virtual_ipaddress",
    "virtual_ipaddress_excluded", "dev", "label", "unicast_src_ip", "unicast_peer",
    "mcast_src_ip", "track_interface", "track_script", "weight", "reverse", "script",
    "interval", "timeout", "rise", "fall", "notify", "notify_master", "notify_backup",
    "notify_fault", "include", "VI_1", "VI_2", "chk", "G1", "0", "1", "2", "3", "-5", "50",
    "255", "300", "0.5", "192.0.2.1", "192.0.2.2/24", "2001:db8::1", "2001:db8::2/64",
    '"/bin/true"', '"a b"', "{", "}", "{}", "#", "!", '"', "\\", "@x", "$Y=1", "x{",
]  # fmt: skip
keepalivedish = st.lists(
    st.one_of(st.sampled_from(VOCABULARY), st.sampled_from([" ", "\n", "\t", "\n\n"])),
    max_size=120,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_raises_only_its_own_error_on_any_text(text: str) -> None:
    try:
        parse_text(text)
    except ConvertError as exc:
        assert exc.problems


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keepalivedish)
def test_reading_keepalived_like_text_raises_only_conversion_errors(text: str) -> None:
    try:
        read_node(parse_text(text, "t.conf"), "t.conf", Findings())
    except ConvertError as exc:
        assert exc.problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(keepalivedish, min_size=1, max_size=3))
def test_the_whole_conversion_raises_only_conversion_errors(texts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, text in enumerate(texts):
            path = Path(tmp, f"h{i}.conf")
            path.write_text(text)
            paths.append(str(path))
        for standalone in (False, True):
            try:
                convert_files(paths, standalone=standalone)
            except ConvertError as exc:
                assert exc.problems


# Whole configurations with random but well-formed values: these get past the parser and
# exercise keepalived's rules, the merge of hosts and the writer; every outcome must be a
# valid document set or a ConvertError.

ADDRESSES = ["192.0.2.1", "192.0.2.2/24", "198.51.100.3", "2001:db8::1", "2001:db8::2/64"]


@st.composite
def host_conf(draw: st.DrawFn, index: int) -> str:
    out = [f"global_defs {{\n router_id {draw(st.sampled_from(['a', 'b', f'h{index}']))}"]
    if draw(st.booleans()):
        out.append(f" vrrp_version {draw(st.sampled_from([2, 3]))}")
    if draw(st.booleans()):
        out.append(" vrrp_strict")
    out.append("}")
    scripts = draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), unique=True, max_size=3))
    for name in scripts:
        weight = draw(st.one_of(st.none(), st.integers(-253, 253)))
        command = draw(st.sampled_from(['"/bin/true"', '"</dev/tcp/127.0.0.1/80"', "a || b"]))
        out.append(f"vrrp_script {name} {{\n script {command}")
        if weight is not None:
            out.append(f" weight {weight}" + draw(st.sampled_from(["", " reverse"])))
        out.append(f" interval {draw(st.sampled_from(['0.05', '1', '2.5']))}")
        out.append(f" rise {draw(st.integers(0, 200))}\n fall {draw(st.integers(0, 3))}\n}}")
    names = draw(
        st.lists(st.sampled_from(["VI_1", "VI_2", "VI_3"]), unique=True, min_size=1, max_size=3)
    )
    for name in names:
        out.append(f"vrrp_instance {name} {{")
        out.append(f" interface {draw(st.sampled_from(['eth0', 'eth1']))}")
        out.append(f" virtual_router_id {draw(st.integers(1, 3))}")
        for line in draw(
            st.lists(
                st.sampled_from(
                    [
                        "state MASTER", "state BACKUP", "nopreempt", "preempt_delay 5",
                        "version 2", "version 3", "advert_int 0.3", "advert_int 3",
                        "priority 255", "priority 1", "priority 200",
                        "authentication {\n auth_type PASS\n auth_pass secret99\n }",
                        "authentication {\n auth_type AH\n auth_pass x\n }",
                        "unicast_src_ip 192.0.2.10\n unicast_peer {\n 192.0.2.11\n }",
                        "mcast_src_ip 192.0.2.10", 'notify "/bin/n"', "notify_master /bin/m",
                        "track_interface {\n eth0\n eth2 weight 3\n eth3 weight -3 reverse\n }",
                        "garp_master_repeat 500", "garp_master_refresh 7",
                    ]
                ),
                unique=True,
                max_size=6,
            )
        ):  # fmt: skip
            out.append(f" {line}")
        vips = draw(st.lists(st.sampled_from(ADDRESSES), unique=True, min_size=1, max_size=3))
        dev = draw(st.sampled_from(["", " dev eth0", " dev eth9", " label x:1"]))
        out.append(" virtual_ipaddress {\n" + "\n".join(f"  {v}{dev}" for v in vips) + "\n }")
        if scripts and draw(st.booleans()):
            tracked = draw(st.lists(st.sampled_from([*scripts, "missing"]), unique=True))
            weights = [
                draw(st.sampled_from(["", " weight 0", " weight 10", " weight -10"]))
                for _ in tracked
            ]
            out.append(
                " track_script {\n"
                + "\n".join(f"  {t}{w}" for t, w in zip(tracked, weights, strict=True))
                + "\n }"
            )
        out.append("}")
    if len(names) > 1 and draw(st.booleans()):
        group = "\n".join(f"  {n}" for n in names[:2])
        out.append(f'vrrp_sync_group G {{\n group {{\n{group}\n }}\n notify "/bin/g"\n}}')
    return "\n".join(out) + "\n"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_wellformed_configurations_convert_or_fail_cleanly(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 3))
    texts = [data.draw(host_conf(i)) for i in range(count)]
    nodes = [f"n{i}" for i in range(count)] if data.draw(st.booleans()) else []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, text in enumerate(texts):
            path = Path(tmp, f"h{i}.conf")
            path.write_text(text)
            paths.append(str(path))
        for standalone in (False, True):
            try:
                conv = convert_files(paths, nodes, standalone=standalone)
            except ConvertError as exc:
                assert exc.problems
                continue
            assert conv.documents
