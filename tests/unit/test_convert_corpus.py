"""The keepalived corpus: real configurations from public docs and tutorials, converted and pinned.

Each directory of ``convert_corpus/`` holds the keepalived files of one
published setup (one file per host, each opening with its source URL) and
the pinned results of ``keepvip convert``: ``kubernetes.expected.yaml`` and
``standalone.expected.yaml`` (the documents) and ``*.report.txt`` (every
finding, with file and line). An ``args`` file, if present, holds the
command line after ``convert``; otherwise the case's ``*.conf`` files in
name order are converted.

The test runs the real command (``keepvip_tools.cli.main``) from the
case's directory, so paths in the output are the short ones users see.
``KEEPVIP_UPDATE_GOLDEN=1`` rewrites the pinned files after a deliberate
change; review the diff like any other.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from keepvip_api import load_documents
from keepvip_tools.cli import main

CORPUS = Path(__file__).with_name("convert_corpus")
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "broken")
UPDATE = os.environ.get("KEEPVIP_UPDATE_GOLDEN") == "1"
FORMS = {"kubernetes": [], "standalone": ["--standalone"]}


def command_line(case: Path) -> list[str]:
    args = (case / "args").read_text().split() if (case / "args").exists() else []
    if not any(a.endswith(".conf") for a in args):
        args = sorted(p.name for p in case.glob("*.conf")) + args
    return ["convert", *args]


def convert(case: Path, form: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    cwd = Path.cwd()
    os.chdir(case)
    try:
        code = main([*command_line(case), *FORMS[form]])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return code, out, err


def pinned(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual)
        return
    assert path.exists(), f"{path} is missing: run with KEEPVIP_UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{path.name} of {path.parent.name} changed"


def test_the_corpus_is_big_enough_and_every_file_names_its_source() -> None:
    assert len(CASES) >= 12, CASES
    for conf in CORPUS.rglob("*.conf"):
        head = conf.read_text().splitlines()[0]
        assert head.startswith("# Source: https://"), conf


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", CASES)
def test_case_converts_as_pinned(case: str, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    directory = CORPUS / case
    code, out, err = convert(directory, form, capsys)
    assert code == 0, err
    pinned(directory / f"{form}.expected.yaml", out)
    pinned(directory / f"{form}.report.txt", err)
    # The pinned documents are valid for the agent's own loader in their form...
    vips = load_documents(out, source=case, standalone=form == "standalone")
    assert vips
    # ...and every finding printed is also in the header of a document it concerns, or is
    # about the host as a whole (global_defs, node naming).
    for line in err.splitlines()[:-1]:
        assert line.split(": ", 2)[1] in ("note", "warning", "unsupported"), line


@pytest.mark.parametrize("case", CASES)
def test_both_forms_describe_the_same_election(case: str) -> None:
    """The forms differ only in what Kubernetes agents cannot do (hooks), never in the election."""
    if UPDATE:
        pytest.skip("comparing pinned files while they are being rewritten")
    kube = list(yaml.safe_load_all((CORPUS / case / "kubernetes.expected.yaml").read_text()))
    alone = list(yaml.safe_load_all((CORPUS / case / "standalone.expected.yaml").read_text()))
    for a, b in zip(kube, alone, strict=True):
        b["spec"].pop("notify", None)
        assert a == b
