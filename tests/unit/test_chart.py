"""The Helm chart and the kubectl bundle made from it, rendered with the pinned helm (no cluster).

Checked here: every copy of the CRD is the model's; ``helm lint --strict``
is clean; the operator accepts the configuration the chart gives it (its
Deployment's environment goes through the operator's own settings parser);
wrong values fail at install with a message naming the value; the
operator's ClusterRole holds every permission the operator grants the
agents (RBAC refuses to grant more than the granter holds); and
deploy/keepvip.yaml is exactly what hack/image/bundle.sh renders. The chart
installed on a real control plane is tests/cluster/test_chart.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip_api import parse_virtualip
from keepvip_api.crd import CRDS
from keepvip_api.crd import render as render_crd
from keepvip_harness.tiers import skip_or_fail
from keepvip_operator import names
from keepvip_operator.rbac import plan_namespace_rbac
from keepvip_operator.render import render_daemonset
from keepvip_operator.settings import OperatorSettings, parse

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "keepvip"
BUNDLE = REPO / "deploy" / "keepvip.yaml"
KUBE_VERSION = "1.31.0"  # the chart's minimum (helm template needs one without a cluster)


def find_helm() -> str | None:
    """The helm of the control-plane tier's build (pinned), else helm on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "controlplane" / "build.sh"), "bin-dir"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if out and (Path(out) / "helm").exists():
        return str(Path(out) / "helm")
    from shutil import which

    return which("helm")


@pytest.fixture(scope="module")
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run helm with its state in a throwaway directory; the completed process."""
    binary = find_helm()
    if binary is None:
        skip_or_fail("unit", "no helm: run `make controlplane-build` (it builds the pinned helm)")
    home = tmp_path_factory.mktemp("helm")
    env = {
        **os.environ,
        **{f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")},
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            pytest.fail(f"helm {' '.join(args)}: {proc.stderr}")
        return proc

    yield run


def template(helm: Any, *args: str, check: bool = True) -> Any:
    return helm(
        "template", "kv", str(CHART), "--namespace", "keepvip-system",
        "--kube-version", KUBE_VERSION, *args, check=check,
    )  # fmt: skip


AGENT_RBAC_SOURCE = "# Source: keepvip/templates/agent-rbac.yaml"
SECRETS_RBAC_SOURCE = "# Source: keepvip/templates/secrets-rbac.yaml"


def _documents(helm: Any, *args: str) -> list[tuple[str, dict[str, Any]]]:
    """(the template it came from, the object) for every rendered object."""
    out = []
    for text in template(helm, *args).stdout.split("\n---\n"):
        obj = yaml.safe_load(text)
        if obj:
            out.append(
                (next((ln for ln in text.splitlines() if ln.startswith("# Source:")), ""), obj)
            )
    return out


def objects(helm: Any, *args: str) -> dict[str, dict[str, Any]]:
    """The operator's rendered objects by kind (one of each kind), without the node agents' and
    without the Secrets Role (secrets-rbac.yaml: :func:`secrets_objects`)."""
    return {
        d["kind"]: d
        for src, d in _documents(helm, *args)
        if src not in (AGENT_RBAC_SOURCE, SECRETS_RBAC_SOURCE)
    }


def secrets_objects(helm: Any, *args: str) -> dict[str, dict[str, Any]]:
    """The operator's Role on Secrets of its namespace and its binding (secrets-rbac.yaml)."""
    return {d["kind"]: d for src, d in _documents(helm, *args) if src == SECRETS_RBAC_SOURCE}


def agent_objects(helm: Any, *args: str) -> dict[str, dict[str, Any]]:
    """The node agents' ServiceAccount and static RBAC (agent-rbac.yaml) by kind."""
    return {d["kind"]: d for src, d in _documents(helm, *args) if src == AGENT_RBAC_SOURCE}


POD_NAME = "kv-keepvip-5d8f7c9b4-x2x7q"


def pod_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet gives it (downward API fields resolved)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.name": POD_NAME, "metadata.namespace": deployment["metadata"]["namespace"]}
    return {
        e["name"]: fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        if "valueFrom" in e
        else e["value"]
        for e in container["env"]
    }


def operator_settings(deployment: dict[str, Any]) -> OperatorSettings:
    """What keepvip-operator makes of the Deployment's command and environment."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["keepvip-operator"]
    return parse(container.get("args", []), environ=pod_env(deployment))


# -- one source of truth ------------------------------------------------------------------------


@pytest.mark.parametrize("plural", sorted(CRDS))
def test_every_crd_copy_is_the_models(plural: str) -> None:
    generated = render_crd(plural)
    crd = REPO / "crds" / f"keepvip.io_{plural}.yaml"
    assert crd.read_text() == generated, f"crds/ is stale: python -m keepvip_api.crd {plural}"
    chart_copy = CHART / "crds" / crd.name
    assert chart_copy.read_text() == generated, f"copy crds/{crd.name} to {chart_copy}"
    bundled = [
        d
        for d in yaml.safe_load_all(BUNDLE.read_text())
        if d and d["kind"] == "CustomResourceDefinition" and d["spec"]["names"]["plural"] == plural
    ]
    assert bundled == [yaml.safe_load(generated)], "deploy/keepvip.yaml is stale: make bundle"


def test_crds_directory_holds_exactly_the_generated_crds() -> None:
    expected = {f"keepvip.io_{p}.yaml" for p in CRDS}
    assert {p.name for p in (REPO / "crds").glob("*.yaml")} == expected
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == expected


def test_bundle_is_the_charts_output() -> None:
    helm = find_helm()
    if helm is None:
        pytest.skip("no helm")
    out = subprocess.run(
        [str(REPO / "hack" / "image" / "bundle.sh")],
        capture_output=True, text=True, check=True, env={**os.environ, "HELM": helm},
    ).stdout  # fmt: skip
    assert BUNDLE.read_text() == out, "deploy/keepvip.yaml is stale: run `make bundle`"
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds == [
        "Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "PriorityClass",
        "PodDisruptionBudget", "ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRole",
        "ClusterRoleBinding", "ClusterRoleBinding", "Role", "Role", "Role", "RoleBinding",
        "RoleBinding", "RoleBinding", "Deployment", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]  # fmt: skip


# -- lint and defaults -------------------------------------------------------------------------


def test_helm_lint_is_clean(helm: Any) -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout


def test_defaults_run_two_locked_down_operators_one_elected_with_the_charts_image(
    helm: Any,
) -> None:
    objs = objects(helm)
    assert set(objs) == {
        "PriorityClass", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
        "RoleBinding", "Deployment", "PodDisruptionBudget", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }  # fmt: skip
    deploy = objs["Deployment"]
    assert deploy["spec"]["replicas"] == 2
    # A new pod is standby until the old leader releases the Lease: never two reconciling.
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == objs["ServiceAccount"]["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's operator user
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/keepvip/keepvip:0.1.0"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}

    settings = operator_settings(deploy)
    assert settings.agent_image == container["image"]  # one image for both processes
    assert settings.priority_class_name == objs["PriorityClass"]["metadata"]["name"]
    assert settings.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert settings.watch_namespaces == ()
    # Leader election: the pod's name and namespace, the release's Lease (the one the
    # Role names), client-go's durations.
    assert settings.leader_election is True
    assert settings.leader_election_identity == POD_NAME
    assert settings.leader_election_namespace == "keepvip-system"
    assert settings.leader_election_lease_name == "kv-keepvip-operator"
    assert settings.agent_namespace == "keepvip-system"  # the node agents live with the operator
    assert settings == OperatorSettings(
        agent_namespace="keepvip-system",
        agent_image=settings.agent_image,
        priority_class_name=settings.priority_class_name,
        liveness_endpoint=settings.liveness_endpoint,
        leader_election=True,
        leader_election_identity=POD_NAME,
        leader_election_namespace="keepvip-system",
        leader_election_lease_name="kv-keepvip-operator",
    ), "every other chart default is the operator's own default"
    assert objs["PriorityClass"]["value"] == 1_000_000_000


def test_values_reach_the_operators_settings(helm: Any) -> None:
    digest = "sha256:" + "ab" * 32
    objs = objects(
        helm,
        "--set", "operator.watchNamespaces={prod,staging}",
        "--set", f"image.digest={digest}",
        "--set", "agents.image.repository=registry.example/keepvip-agent",
        "--set", "agents.image.tag=0.1.0-debug",
        "--set", "agents.logLevel=debug",
        "--set", "agents.resources.limits.cpu=200m",
        "--set", "agents.resources.requests.memory=",
        "--set", "agents.priorityClass.create=false",
        "--set", "agents.priorityClass.name=system-node-critical",
        "--set", "agents.podLabels.team=net",
        "--set", "agents.metricsPort=19650",
        "--set", "agents.nodeSelector.keepvip\\.io/vrrp=yes",
        "--set", "agents.tolerations[0].key=edge",
        "--set", "agents.tolerations[0].operator=Exists",
        "--set", "agents.tolerations[0].effect=NoSchedule",
        "--set", "agents.imagePullSecrets[0].name=regcred",
        "--set", "agents.updateStrategy.maxUnavailable=25%",
    )  # fmt: skip
    assert "PriorityClass" not in objs
    image = objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/keepvip/keepvip@{digest}"
    s = operator_settings(objs["Deployment"])
    assert s.watch_namespaces == ("prod", "staging")
    assert s.agent_image == "registry.example/keepvip-agent:0.1.0-debug"
    assert s.agent_log_level == "debug"
    assert (s.agent_resources.cpu_limit, s.agent_resources.memory_request) == ("200m", None)
    assert s.priority_class_name == "system-node-critical"
    assert dict(s.extra_pod_labels) == {"team": "net"}
    assert s.agent_metrics_port == 19650
    assert dict(s.agent_node_selector) == {"keepvip.io/vrrp": "yes"}
    assert s.agent_tolerations == ({"key": "edge", "operator": "Exists", "effect": "NoSchedule"},)
    assert s.agent_image_pull_secrets == ("regcred",)
    assert s.agent_max_unavailable == "25%"
    # Watching named namespaces, kopf follows them coming and going.
    rules = objs["ClusterRole"]["rules"]
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in rules


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("operator.logLevel=verbose", "value must be one of 'debug', 'info', 'warning', 'error'"),
        ("agents.logLevel=trace", "/agents/logLevel"),
        ("operator.replicas=-1", "/operator/replicas"),
        ("operator.leaderElection.enabled=false", "more than 1 needs operator.leaderElection"),
        ("operator.leaderElection.renewDeadlineSeconds=15", "need retryPeriodSeconds <"),
        ("operator.leaderElection.leaseDurationSeconds=1.5", "/operator/leaderElection"),
        ("operator.leaderElection.leaseName=Lease", "/operator/leaderElection/leaseName"),
        ("operator.replica=1", "additional properties 'replica' not allowed"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.digest=sha256:abc", "/image/digest"),
        ("image.repository=", "/image/repository"),
        ("agents.metricsPort=0", "/agents/metricsPort"),
        ("agents.metricsPort=65536", "/agents/metricsPort"),
        ("agents.metricsPorts=64", "additional properties 'metricsPorts' not allowed"),
        ("agents.updateStrategy.maxUnavailable=0", "/agents/updateStrategy/maxUnavailable"),
        ("agents.nodeSelector.zone=a\\,b", "/agents/nodeSelector/zone"),
        ("agents.tolerations[0].operator=Maybe", "/agents/tolerations/0/operator"),
        ("agents.resources.requests.cpu=lots", "/agents/resources/requests/cpu"),
        ("agents.resources.requests.gpu=1", "additional properties 'gpu' not allowed"),
        ("agents.priorityClass.value=2000000000", "/agents/priorityClass/value"),
        ("agents.podAnnotations.note=a\\,b", "/agents/podAnnotations/note"),
        ("agents.terminationGracePeriodSeconds=0", "/agents/terminationGracePeriodSeconds"),
        ("operator.watchNamespaces={Prod}", "/operator/watchNamespaces/0"),
        ("metrics.podMonitor.interval=often", "/metrics/podMonitor/interval"),
        ("serviceAccount.create=false", "serviceAccount.name: required"),
    ],
)
def test_wrong_values_fail_at_install(helm: Any, value: str, message: str) -> None:
    out = template(helm, "--set", value, check=False)
    assert out.returncode != 0, f"{value} was accepted"
    assert message in out.stderr


def test_pod_monitor_selects_the_agents_metrics_port(helm: Any) -> None:
    refused = template(helm, "--set", "metrics.podMonitor.enabled=true", check=False)
    assert "no monitoring.coreos.com/v1 PodMonitor" in refused.stderr
    objs = objects(
        helm,
        "--set", "metrics.podMonitor.enabled=true",
        "--set", "metrics.podMonitor.labels.release=prometheus",
        "--api-versions", "monitoring.coreos.com/v1/PodMonitor",
    )  # fmt: skip
    pm = objs["PodMonitor"]
    assert pm["metadata"]["labels"]["release"] == "prometheus"
    # The node agents live in the release namespace only.
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["keepvip-system"]}
    # The labels and the port name the operator gives every agent pod.
    selector = ",".join(f"{k}={v}" for k, v in pm["spec"]["selector"]["matchLabels"].items())
    assert selector == names.agent_pods_selector()
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


# -- RBAC: the operator holds what it grants -------------------------------------------------


def covers(held: list[dict[str, Any]], wanted: dict[str, Any]) -> list[str]:
    """The (group, resource, verb) of ``wanted`` that no rule of ``held`` grants.

    A held rule without resourceNames covers a wanted rule with or without them;
    a held rule with resourceNames never covers more than those names.
    """
    missing = []
    for group in wanted["apiGroups"]:
        for resource in wanted["resources"]:
            for verb in wanted["verbs"]:
                if not any(
                    group in rule["apiGroups"]
                    and resource in rule["resources"]
                    and verb in rule["verbs"]
                    and (
                        "resourceNames" not in rule
                        or (
                            "resourceNames" in wanted
                            and set(wanted["resourceNames"]) <= set(rule["resourceNames"])
                        )
                    )
                    for rule in held
                ):
                    missing.append(f"{group or 'core'}/{resource}:{verb}")
    return missing


def test_cluster_role_holds_every_permission_the_operator_grants_agents(helm: Any) -> None:
    held = objects(helm)["ClusterRole"]["rules"]
    base = {"selector": {"matchLabels": {"app": "web"}}, "onFailure": {"action": "fault"}}
    specs: list[dict[str, Any]] = [
        {},
        {"trackPods": base},
        {"trackPods": {**base, "roleLabel": True}},
        {"trackPods": {**base, "namespace": "apps", "roleLabel": True}},
        {"serviceRef": {"name": "web"}},
    ]
    vips = [
        (
            "prod",
            parse_virtualip(
                {
                    "apiVersion": "keepvip.io/v1alpha1",
                    "kind": "VirtualIP",
                    "metadata": {"name": "web", "namespace": "prod"},
                    "spec": {"addresses": ["192.0.2.50/24"], **spec},
                }
            ),
        )
        for spec in specs
    ]
    granted = [rule for rules in plan_namespace_rbac(vips).values() for rule in rules]
    assert granted, "the plan grants something to check"
    for rule in granted:
        assert covers(held, rule) == [], f"the ClusterRole cannot grant {rule}"


def test_the_operator_never_needs_rights_on_cluster_roles_or_escalation(helm: Any) -> None:
    for rule in objects(helm)["ClusterRole"]["rules"]:
        assert not {"clusterroles", "clusterrolebindings"} & set(rule["resources"])
        assert not {"escalate", "bind", "*"} & set(rule["verbs"])


def test_node_agents_static_rbac_is_exactly_the_contracts(helm: Any) -> None:
    agents = agent_objects(helm)
    assert set(agents) == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"
    }  # fmt: skip
    sa = agents["ServiceAccount"]["metadata"]
    assert (sa["namespace"], sa["name"]) == ("keepvip-system", "keepvip-agent")
    # The DaemonSet the operator renders runs as that ServiceAccount, in that namespace.
    settings = operator_settings(objects(helm)["Deployment"])
    assert settings.agent_namespace is not None
    ds = render_daemonset(settings, settings.agent_namespace)
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]
    assert ds["metadata"]["namespace"] == sa["namespace"]
    rules = {
        (g, r): sorted(rule["verbs"])
        for rule in agents["ClusterRole"]["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert rules == {
        ("keepvip.io", "virtualips"): ["get", "list", "watch"],
        ("keepvip.io", "virtualips/status"): ["get", "patch"],
        ("", "nodes"): ["get", "list", "watch"],
        ("", "events"): ["create", "patch"],
        ("events.k8s.io", "events"): ["create", "patch"],
    }
    role = agents["Role"]
    assert role["metadata"]["namespace"] == "keepvip-system"
    assert {(r["resources"][0], tuple(r["verbs"])) for r in role["rules"]} == {
        ("leases", ("get", "list", "watch", "create", "update", "patch", "delete")),
        ("pods", ("list", "watch")),
    }
    subject = {"kind": "ServiceAccount", "name": "keepvip-agent", "namespace": "keepvip-system"}
    for binding, target in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        assert agents[binding]["subjects"] == [subject]
        assert agents[binding]["roleRef"]["name"] == agents[target]["metadata"]["name"]


def test_the_rbac_tables_in_security_md_are_what_chart_and_operator_render(helm: Any) -> None:
    from keepvip_harness import rbacdoc

    binary = find_helm()
    assert binary is not None
    doc = rbacdoc.DOC.read_text()
    assert rbacdoc.current(doc) == rbacdoc.render(binary), (
        "docs/security.md's RBAC tables are stale: run `make rbac-docs`"
    )


# -- authHMAC Secrets ------------------------------------------------------------------------


def test_the_operator_may_get_secrets_of_its_namespace_only_to_grant_named_ones(
    helm: Any,
) -> None:
    objs = secrets_objects(helm)
    role, binding = objs["Role"], objs["RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "keepvip-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": objects(helm)["ServiceAccount"]["metadata"]["name"],
         "namespace": "keepvip-system"},
    ]  # fmt: skip
    assert secrets_objects(helm, "--set", "rbac.create=false") == {}


# -- leader election -------------------------------------------------------------------------


def test_the_lease_role_allows_exactly_what_the_election_does(helm: Any) -> None:
    objs = objects(helm)
    role, binding = objs["Role"], objs["RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "keepvip-system"
    # leader.py reads (GET), creates (POST) and replaces (PUT, guarded by resourceVersion)
    # its one Lease; only create cannot name it.
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [operator_settings(objs["Deployment"]).leader_election_lease_name],
            "verbs": ["get", "update"],
        },
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"],
    }  # fmt: skip
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": objs["ServiceAccount"]["metadata"]["name"],
         "namespace": "keepvip-system"},
    ]  # fmt: skip


def test_leader_election_values_reach_the_operator_and_off_means_one_replica(helm: Any) -> None:
    objs = objects(
        helm,
        "--set", "operator.replicas=3",
        "--set", "operator.leaderElection.leaseName=ops-lease",
        "--set", "operator.leaderElection.leaseDurationSeconds=30",
        "--set", "operator.leaderElection.renewDeadlineSeconds=20",
        "--set", "operator.leaderElection.retryPeriodSeconds=4",
    )  # fmt: skip
    assert objs["Deployment"]["spec"]["replicas"] == 3
    s = operator_settings(objs["Deployment"])
    assert s.leader_election_lease_name == "ops-lease"
    assert (
        s.leader_election_lease_duration,
        s.leader_election_renew_deadline,
        s.leader_election_retry_period,
    ) == (30, 20.0, 4.0)
    assert objs["Role"]["rules"][1]["resourceNames"] == ["ops-lease"]

    off = objects(
        helm, "--set", "operator.leaderElection.enabled=false", "--set", "operator.replicas=1"
    )
    assert "Role" not in off and "RoleBinding" not in off
    assert off["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}  # never two at once
    assert operator_settings(off["Deployment"]).leader_election is False


def test_two_replicas_spread_over_nodes_and_a_drain_evicts_one_at_a_time(helm: Any) -> None:
    objs = objects(helm)
    deploy, pdb = objs["Deployment"], objs["PodDisruptionBudget"]
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    (term,) = deploy["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    # One replica: no budget (it would block every drain of its node).
    one = objects(helm, "--set", "operator.replicas=1")
    assert "PodDisruptionBudget" not in one
    off = objects(helm, "--set", "operator.podDisruptionBudget.enabled=false")
    assert "PodDisruptionBudget" not in off
    # An affinity of the user's replaces the default spreading.
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "role", "operator": "In", "values": ["infra"]}]}]}}}  # fmt: skip
    custom = objects(helm, "--set-json", f"operator.affinity={json.dumps(mine)}")
    assert custom["Deployment"]["spec"]["template"]["spec"]["affinity"] == mine
