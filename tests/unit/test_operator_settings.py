"""Operator settings: defaults, environment, command line (which wins), and bad values."""

from __future__ import annotations

import pytest

from keepvip_operator.settings import AgentResources, OperatorSettings, parse


def test_defaults() -> None:
    s = parse([], environ={})
    assert s == OperatorSettings()
    assert s.agent_metrics_port == 9640  # one port per node, below the old 9650.. range
    assert s.agent_tolerations == ({"operator": "Exists"},)  # like node networking agents
    assert s.agent_namespace is None and dict(s.agent_node_selector) == {}
    assert s.termination_grace_period_seconds == 30
    assert s.agent_resources == AgentResources("10m", "32Mi", "192Mi", None)
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
        "KEEPVIP_AGENT_TOLERATIONS": '[{"key": "edge", "operator": "Exists"}]',
        "KEEPVIP_AGENT_NODE_SELECTOR": "keepvip.io/vrrp=yes",
        "KEEPVIP_AGENT_IMAGE_PULL_SECRETS": "a,b",
        "KEEPVIP_AGENT_MAX_UNAVAILABLE": "10%",
        "POD_NAMESPACE": "keepvip-system",
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
    assert s.agent_tolerations == ({"key": "edge", "operator": "Exists"},)
    assert s.agent_node_selector == {"keepvip.io/vrrp": "yes"}
    assert s.agent_image_pull_secrets == ("a", "b")
    assert s.agent_max_unavailable == "10%"
    assert s.agent_namespace == "keepvip-system"  # the operator's own, by default
    assert parse(["--agent-namespace", "agents"], environ=env).agent_namespace == "agents"


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--agent-image-pull-policy", "Sometimes"], {}),
        ([], {"KEEPVIP_AGENT_LOG_LEVEL": "loud"}),
        ([], {"KEEPVIP_AGENT_METRICS_PORT": "ninety"}),
        ([], {"KEEPVIP_EXTRA_POD_LABELS": "novalue"}),
        (["--agent-metrics-port", "65536"], {}),
        ([], {"KEEPVIP_AGENT_TOLERATIONS": '{"operator": "Exists"}'}),  # not a list
        ([], {"KEEPVIP_AGENT_MAX_UNAVAILABLE": "0.5"}),
    ],
    ids=[
        "pull-policy",
        "log-level",
        "port-not-int",
        "labels",
        "port",
        "tolerations",
        "unavailable",
    ],
)
def test_bad_values_stop_at_the_edge(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(argv, environ=env)
    assert exit_.value.code == 2
