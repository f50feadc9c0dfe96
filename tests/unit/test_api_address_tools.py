"""``keepvip static-pod`` and ``keepvip systemd-unit``: what they print is valid, least-privileged
and consistent with the VirtualIP file they write.

The generated unit is checked by systemd itself (``systemd-analyze verify``,
which must print nothing: it only warns about unknown keys and bad values);
the generated Pod by a real API server in the cluster tier
(tests/cluster/test_api_address.py), because only the API server's
validation is authoritative.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_agent.cli import main as agent_main
from keepvip_api import load_documents, load_file
from keepvip_harness.tiers import skip_or_fail
from keepvip_tools.apiaddress.staticpod import CONFIG_ENV
from keepvip_tools.cli import main as keepvip

AGENT = Path(sys.executable).with_name("keepvip-agent")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = keepvip(list(argv))
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def static_pod(*argv: str) -> dict[str, Any]:
    code, out, err = run("static-pod", "--address", "192.0.2.10/24", *argv)
    assert code == 0 and all(line.startswith("wrote ") for line in err.splitlines())
    pod: dict[str, Any] = yaml.safe_load(out)
    return pod


def test_the_config_file_is_what_the_agent_reads(tmp_path: Path) -> None:
    config = tmp_path / "api-address.yaml"
    code, _, err = run(
        "static-pod", "--address", "192.0.2.10/24", "--interface", "eth0", "--priority", "150",
        "--advert-interval", "200ms", "--virtual-router-id", "7", "--config-out", str(config),
    )  # fmt: skip
    assert (code, err) == (0, f"wrote {config}\n")
    (vip,) = load_file(config)
    s = vip.spec
    assert [str(a) for a in s.addresses] == ["192.0.2.10/24"]
    assert (s.interface, s.virtual_router_id, s.advert_interval, s.priority) == (
        "eth0",
        7,
        0.2,
        150,
    )
    (check,) = s.checks
    assert check.http_get is not None
    h = check.http_get
    assert (h.url, h.ca_file, h.server_name, h.insecure_skip_verify) == (
        "https://127.0.0.1:6443/readyz", "/etc/kubernetes/pki/ca.crt", "kubernetes", False,
    )  # fmt: skip
    assert (check.on_failure.action, check.fall, check.timeout) == ("fault", 2, 1.0)
    assert agent_main(["--config", str(config), "--check"]) == 0


def test_the_pod_runs_the_agent_with_least_privilege_and_no_api_access() -> None:
    pod = static_pod()
    spec = pod["spec"]
    assert (pod["metadata"]["namespace"], spec["hostNetwork"]) == ("kube-system", True)
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    (c,) = spec["containers"]
    assert c["securityContext"] == {
        "runAsUser": 0,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
    }
    assert c["command"] == ["keepvip-agent"]
    assert c["args"][:2] == ["--config", "/etc/keepvip/api-address.yaml"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/etc/keepvip/api-address.yaml", "/etc/kubernetes/pki/ca.crt"):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["hostPath"] == {"path": path, "type": "File"}
    assert not any("kubeconfig" in str(v) or "admin.conf" in str(v) for v in spec["volumes"])


def test_inline_carries_the_same_virtualip_in_the_manifest(tmp_path: Path) -> None:
    config = tmp_path / "vip.yaml"
    pod = static_pod("--inline", "--config-out", str(config))
    (c,) = pod["spec"]["containers"]
    assert c["args"][:2] == ["--config-env", CONFIG_ENV]
    (inline,) = [e["value"] for e in c["env"] if e["name"] == CONFIG_ENV]
    assert load_documents(inline) == load_file(config)
    assert "/etc/keepvip/api-address.yaml" not in str(pod)
    # The agent reads it from its environment as it would in the pod.
    os.environ[CONFIG_ENV] = inline
    try:
        assert agent_main(["--config-env", CONFIG_ENV, "--check"]) == 0
    finally:
        del os.environ[CONFIG_ENV]


def test_the_agent_names_an_unset_inline_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert agent_main(["--config-env", "KEEPVIP_NOT_SET_ANYWHERE", "--check"]) == 2
    assert capsys.readouterr().err == "error: $KEEPVIP_NOT_SET_ANYWHERE: not set\n"


def test_a_client_certificate_is_mounted_for_the_check() -> None:
    pod = static_pod(
        "--client-cert",
        "/etc/kubernetes/pki/check.crt",
        "--client-key",
        "/etc/kubernetes/pki/check.key",
    )
    (c,) = pod["spec"]["containers"]
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {
        "/etc/kubernetes/pki/check.crt", "/etc/kubernetes/pki/check.key",
    }  # fmt: skip


def test_bad_options_name_the_option_and_write_nothing(tmp_path: Path) -> None:
    config = tmp_path / "vip.yaml"
    code, out, err = run(
        "systemd-unit",
        "--address",
        "192.0.2.300/24",
        "--priority",
        "0",
        "--config-out",
        str(config),
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: --address (spec.addresses[0]): '192.0.2.300/24' is not an IP address "
        "with an optional /prefix",
        "error: --priority (spec.priority): 0 is not in 1..254",
    ]
    assert not config.exists()
    code, _, err = run("static-pod", "--address", "192.0.2.10/24", "--advert-interval", "15ms")
    assert (code, err) == (
        2,
        "error: --advert-interval (spec.advertInterval): 15ms must be 10ms..40.95s "
        "in 10ms steps for version 3\n",
    )
    code, _, err = run("static-pod", "--address", "192.0.2.10/24", "--client-cert", "/c.crt")
    assert (code, err) == (
        2,
        "error: --client-key (spec.checks[0].httpGet.clientKeyFile): required with clientCertFile\n",
    )


def verify(analyze: str, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze, "verify", str(unit)], check=False, capture_output=True, text=True
    )


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("unit", "systemd-analyze is not installed (`make deps` installs systemd)")
    config = tmp_path / "api-address.yaml"
    unit = tmp_path / "keepvip-api-address.service"
    code, _, _ = run(
        "systemd-unit", "--address", "2001:db8::10/64", "--agent", str(AGENT),
        "--config-path", str(config), "--config-out", str(config), "-o", str(unit),
    )  # fmt: skip
    assert code == 0
    text = unit.read_text()
    assert f"ExecStart={AGENT} --config {config} --metrics-port 9650\n" in text
    assert "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n" in text
    done = verify(str(analyze), unit)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    # verify is strict enough to fail: a unit naming a missing agent is refused.
    unit.write_text(text.replace(str(AGENT), "/nonexistent/keepvip-agent"))
    done = verify(str(analyze), unit)
    assert done.returncode != 0 and "/nonexistent/keepvip-agent" in done.stderr
