"""Operator settings: defaults, environment, command line (which wins), and bad values."""

from __future__ import annotations

import pytest

from keepvip_operator.settings import AgentResources, OperatorSettings, parse


def test_defaults() -> None:
    s = parse([], environ={})
    assert s == OperatorSettings()
    assert (s.agent_metrics_port, s.agent_metrics_ports) == (9650, 512)
    assert s.termination_grace_period_seconds == 30
    assert s.agent_resources == AgentResources("10m", "32Mi", "128Mi", None)
    assert s.priority_class_name == "system-node-critical"
    assert s.watch_namespaces == () and s.peering_name is None


def test_environment_then_command_line() -> None:
    env = {
        "KEEPVIP_AGENT_IMAGE": "registry.example/keepvip:1",
        "KEEPVIP_AGENT_METRICS_PORT": "19650",
        "KEEPVIP_WATCH_NAMESPACES": "a, b,",
        "KEEPVIP_EXTRA_POD_LABELS": "x=1, y = 2",
        "KEEPVIP_PRIORITY_CLASS_NAME": "",
        "KEEPVIP_AGENT_CPU_LIMIT": "1",
        "KEEPVIP_AGENT_LOG_LEVEL": "warning",
    }
    s = parse(["--agent-image", "cli:2", "--termination-grace-period-seconds", "60"], environ=env)
    assert s.agent_image == "cli:2"  # the command line wins
    assert s.agent_metrics_port == 19650
    assert s.watch_namespaces == ("a", "b")
    assert s.extra_pod_labels == {"x": "1", "y": "2"}
    assert s.priority_class_name is None
    assert s.agent_resources == AgentResources(cpu_limit="1")
    assert s.agent_log_level == "warning"
    assert s.termination_grace_period_seconds == 60


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--agent-image-pull-policy", "Sometimes"], {}),
        ([], {"KEEPVIP_AGENT_LOG_LEVEL": "loud"}),
        ([], {"KEEPVIP_AGENT_METRICS_PORT": "ninety"}),
        ([], {"KEEPVIP_EXTRA_POD_LABELS": "novalue"}),
        (["--agent-metrics-port", "65500"], {}),  # the range would run past 65535
    ],
    ids=["pull-policy", "log-level", "port-not-int", "labels", "range"],
)
def test_bad_values_stop_at_the_edge(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(argv, environ=env)
    assert exit_.value.code == 2
