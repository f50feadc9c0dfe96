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

from keepvip_agent.convert import ConvertError, convert_files
from keepvip_agent.convert.errors import Findings
from keepvip_agent.convert.lexer import expand_braces
from keepvip_agent.convert.parser import parse_file, parse_text
from keepvip_agent.convert.reader import read_node


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
