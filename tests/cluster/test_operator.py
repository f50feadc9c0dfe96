"""The operator against a real control plane: the node agent DaemonSet, the RBAC it grants
per namespace, VRIDs, conflicts, placement, status aggregation and its staleness rule.

The operator runs in-process (``keepvip_harness.operatorrun``) watching only the test's
namespace, which is also the agents' namespace; the chart's static agent RBAC is applied
there first. No agent runs: the DaemonSet's pods are played by kwok, the agents'
status entries are written by the test with server-side apply under each agent's field
manager, and their node Leases by :class:`~keepvip_harness.agentrbac.NodeLeases`,
exactly as agents write them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from keepvip_api.names import NODE_AGENT_SELECTOR
from keepvip_harness.agentrbac import NodeLeases
from keepvip_harness.controlplane import ControlPlane
from keepvip_harness.kubeapi import Vips, forbidden, rfc3339, wait_for
from keepvip_harness.operatorrun import RunningOperator, operator_settings, running_operator
from keepvip_harness.rest import ApiError
from keepvip_operator.render import render_daemonset

RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces"
NODES = ("kv-node-1", "kv-node-2", "kv-node-3")
AGENTS = ",".join(f"{k}={v}" for k, v in sorted(NODE_AGENT_SELECTOR.items()))
TRACKING = "keepvip-agent-tracking"


def contains(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``; fields the API added (defaults) are fine."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not a mapping"]
        return [d for k, v in expected.items() for d in contains(v, actual.get(k), f"{where}.{k}")]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} != {expected!r}"]
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in contains(e, a, f"{where}[{i}]")
        ]
    return [] if expected == actual else [f"{where}: {actual!r} != {expected!r}"]


def agent_pods(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cp.admin_rest().get(
        f"/api/v1/namespaces/{ns}/pods", labelSelector=AGENTS
    )["items"]
    return items


def running_on(cp: ControlPlane, ns: str) -> set[str]:
    return {
        p["spec"].get("nodeName")
        for p in agent_pods(cp, ns)
        if p["status"].get("phase") == "Running"
    }


def daemonset(cp: ControlPlane, ns: str) -> dict[str, Any]:
    got: dict[str, Any] = cp.admin_rest().get(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent"
    )
    return got


def daemonsets(cp: ControlPlane, ns: str) -> list[str]:
    items = cp.admin_rest().get(f"/apis/apps/v1/namespaces/{ns}/daemonsets")["items"]
    return sorted(d["metadata"]["name"] for d in items)


def cond(vips: Vips, name: str, kind: str) -> tuple[str, str] | None:
    c = vips.condition(name, kind)
    return (c["status"], c["reason"]) if c else None


# -- the node agents ------------------------------------------------------------------------


def test_virtualips_become_one_node_agent_daemonset_as_rendered(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    ns = vips.namespace
    for i in range(3):
        vips.create(f"web{i}", addresses=[f"192.0.2.{50 + i}/24"])
    ds = wait_for("the node agent DaemonSet", lambda: daemonset(control_plane, ns))
    wait_for(
        "one agent pod Running on each fake node",
        lambda: running_on(control_plane, ns) == set(NODES),
    )
    assert len(agent_pods(control_plane, ns)) == len(NODES)  # one per node, not per VirtualIP
    assert daemonsets(control_plane, ns) == ["keepvip-agent"]
    rendered = render_daemonset(keepvip_operator.settings, ns)
    assert contains(rendered, ds) == []
    assert "ownerReferences" not in ds["metadata"]  # it serves every VirtualIP
    pod = agent_pods(control_plane, ns)[0]
    assert pod["metadata"]["labels"]["keepvip.test/extra"] == "yes"
    assert pod["spec"]["serviceAccountName"] == "keepvip-agent"
    assert pod["spec"]["hostNetwork"] is True
    # No per-VirtualIP objects at all.
    api = control_plane.admin_rest()
    sas = [
        s["metadata"]["name"] for s in api.get(f"/api/v1/namespaces/{ns}/serviceaccounts")["items"]
    ]
    assert sorted(sas) == ["default", "keepvip-agent"]

    wait_for(
        "the allocated VRIDs",
        lambda: all(vips.status(f"web{i}").get("virtualRouterID") for i in range(3)),
    )
    assert sorted(vips.status(f"web{i}")["virtualRouterID"] for i in range(3)) == [1, 2, 3]
    assert vips.status("web0")["observedGeneration"] == 1
    assert cond(vips, "web0", "Conflict") == ("False", "NoConflict")
    assert cond(vips, "web0", "Ready") == ("False", "NoAgentReports")
    wait_for("placement judged", lambda: cond(vips, "web0", "NoNode") == ("False", "NodesSelected"))

    # Neither a spec change nor placement touches the pods: the agents read the spec live
    # and judge placement against their own Node.
    generation = ds["metadata"]["generation"]
    uids = sorted(p["metadata"]["uid"] for p in agent_pods(control_plane, ns))
    vips.patch_spec("web0", {"priority": 90, "advertInterval": "100ms"})
    wait_for("observedGeneration 2", lambda: vips.status("web0").get("observedGeneration") == 2)
    vips.patch_spec("web0", {"nodeSelector": {"kubernetes.io/hostname": "kv-node-2"}})
    wait_for(
        "placed on kv-node-2",
        lambda: (vips.condition("web0", "NoNode") or {}).get("message") == "placed on kv-node-2",
    )
    vips.patch_spec("web0", {"nodeSelector": {"keepvip.test/nowhere": "yes"}})
    wait_for("NoNode", lambda: cond(vips, "web0", "NoNode") == ("True", "NoNodeSelected"))
    warning = wait_for(
        "the NoNodeSelected Event",
        lambda: [
            e
            for e in vips.events("web0", "NoNodeSelected")
            if "keepvip.test/nowhere" in e["message"]
        ],
    )
    assert warning[0]["type"] == "Warning"
    assert daemonset(control_plane, ns)["metadata"]["generation"] == generation
    assert sorted(p["metadata"]["uid"] for p in agent_pods(control_plane, ns)) == uids

    # Deleting VirtualIPs leaves the node agents (they serve the others, and the next).
    for i in range(3):
        vips.delete(f"web{i}")
    wait_for("the VirtualIPs gone", lambda: vips.api.get(vips.base)["items"] == [])
    assert daemonset(control_plane, ns)["metadata"]["generation"] == generation


# -- RBAC -----------------------------------------------------------------------------------


@contextlib.contextmanager
def other_namespace(cp: ControlPlane, name: str) -> Iterator[str]:
    api = cp.admin_rest()
    api.post("/api/v1/namespaces", {"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            api.delete(f"/api/v1/namespaces/{name}")


def test_agent_service_account_gets_exactly_what_the_agent_needs(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    from kubernetes import client

    ns = vips.namespace
    admin = control_plane.admin_rest()
    vips.create("web", addresses=["192.0.2.80"])
    vips.create("other", addresses=["192.0.2.81"])
    wait_for("the node agents", lambda: daemonset(control_plane, ns))
    with other_namespace(control_plane, f"{ns}-x") as elsewhere:
        wait_for(
            "the other namespace's ServiceAccount",
            lambda: admin.get(f"/api/v1/namespaces/{elsewhere}/serviceaccounts/default"),
        )
        admin.post(
            f"/apis/coordination.k8s.io/v1/namespaces/{elsewhere}/leases",
            {"metadata": {"name": "someone-elses"}, "spec": {"holderIdentity": "x"}},
        )
        group, version, plural = "keepvip.io", "v1alpha1", "virtualips"
        with control_plane.service_account_client(ns, "keepvip-agent") as sa:
            custom = client.CustomObjectsApi(sa)
            core = client.CoreV1Api(sa)
            leases = client.CoordinationV1Api(sa)

            # What the node agent does (keepvip_agent.kube), allowed. RBAC caches settle.
            wait_for(
                "the chart's RBAC to take effect",
                lambda: custom.get_namespaced_custom_object(group, version, ns, plural, "web"),
            )
            listed = custom.list_cluster_custom_object(group, version, plural)
            assert {"web", "other"} <= {o["metadata"]["name"] for o in listed["items"]}
            entry = {
                "name": "kv-node-1",
                "state": "Backup",
                "heartbeatTime": rfc3339(datetime.now(UTC)),
            }
            custom.patch_namespaced_custom_object_status(
                group, version, ns, plural, "web",
                {"apiVersion": f"{group}/{version}", "kind": "VirtualIP",
                 "metadata": {"name": "web", "namespace": ns}, "status": {"nodes": [entry]}},
                field_manager="keepvip-agent-kv-node-1", force=True,
                _content_type="application/apply-patch+yaml",
            )  # fmt: skip
            assert core.read_node("kv-node-1").metadata.name == "kv-node-1"
            peers = core.list_namespaced_pod(ns, label_selector=AGENTS)
            assert peers.items is not None
            for name in ("keepvip-node-kv-node-1", "keepvip-vip-web-0123456789"):
                lease = client.V1Lease(
                    metadata=client.V1ObjectMeta(name=name, namespace=ns),
                    spec=client.V1LeaseSpec(holder_identity="kv-node-1", lease_duration_seconds=6),
                )
                leases.create_namespaced_lease(ns, lease)
                got = leases.read_namespaced_lease(name, ns)
                got.spec.holder_identity = "kv-node-2"
                leases.replace_namespaced_lease(name, ns, got)
            leases.delete_namespaced_lease("keepvip-vip-web-0123456789", ns)  # released
            core.create_namespaced_event(
                ns,
                client.CoreV1Event(
                    metadata=client.V1ObjectMeta(generate_name="web."),
                    involved_object=client.V1ObjectReference(kind="VirtualIP", name="web", namespace=ns),
                    reason="Test", message="an agent may post Events", type="Normal",
                ),
            )  # fmt: skip

            # Everything else, refused.
            assert forbidden(
                custom.patch_namespaced_custom_object, group, version, ns, plural, "web",
                {"spec": {"priority": 200}},
            )  # fmt: skip
            assert forbidden(core.list_namespaced_secret, ns)
            assert forbidden(core.read_namespaced_config_map, "kube-root-ca.crt", ns)
            assert forbidden(core.list_pod_for_all_namespaces)
            assert forbidden(core.list_namespaced_pod, elsewhere)  # no VirtualIP tracks pods there
            assert forbidden(
                core.patch_namespaced_pod,
                peers.items[0].metadata.name if peers.items else "x",
                ns,
                {"metadata": {"labels": {"keepvip.io/role": "master"}}},
            )  # no trackPods.roleLabel: no pod patching
            assert forbidden(core.list_namespaced_service, ns)  # no serviceRef here
            assert forbidden(core.patch_node, "kv-node-1", {"metadata": {"labels": {"x": "y"}}})
            assert forbidden(leases.read_namespaced_lease, "someone-elses", elsewhere)
            assert forbidden(client.AppsV1Api(sa).delete_namespaced_daemon_set, "keepvip-agent", ns)


def test_tracking_pods_grants_where_they_are_and_withdraws_when_none_does(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    from kubernetes import client

    ns = vips.namespace
    admin = control_plane.admin_rest()
    with other_namespace(control_plane, f"{ns}-app") as app:
        wait_for(
            "the app namespace's ServiceAccount",
            lambda: admin.get(f"/api/v1/namespaces/{app}/serviceaccounts/default"),
        )
        admin.post(
            f"/api/v1/namespaces/{app}/pods",
            {"metadata": {"name": "redis-0", "labels": {"app": "redis"}},
             "spec": {"nodeName": "kv-node-1", "containers": [{"name": "redis", "image": "redis"}]}},
        )  # fmt: skip
        track = {"namespace": app, "selector": {"matchLabels": {"app": "redis"}},
                 "onFailure": {"action": "fault"}}  # fmt: skip
        vips.create("redis", addresses=["192.0.2.90"], trackPods={**track, "roleLabel": True})
        vips.create("redis-ro", addresses=["192.0.2.91"], trackPods=track)
        role = wait_for(
            "the Role in the app namespace", lambda: admin.get(f"{RBAC}/{app}/roles/{TRACKING}")
        )
        assert role["metadata"]["labels"]["keepvip.io/agent-rbac"] == "true"
        assert "ownerReferences" not in role["metadata"]
        verbs = sorted(v for r in role["rules"] for v in r["verbs"])
        assert verbs == ["get", "list", "patch", "watch"]
        binding = admin.get(f"{RBAC}/{app}/rolebindings/{TRACKING}")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "keepvip-agent", "namespace": ns}
        ]
        with control_plane.service_account_client(ns, "keepvip-agent") as sa:
            core = client.CoreV1Api(sa)
            wait_for(
                "the Role to take effect",
                lambda: (
                    core.list_namespaced_pod(
                        app, label_selector="app=redis", field_selector="spec.nodeName=kv-node-1"
                    ).items
                ),
            )
            core.patch_namespaced_pod(
                "redis-0", app, {"metadata": {"labels": {"keepvip.io/role": "master"}}}
            )
            assert forbidden(core.list_namespaced_secret, app)

            # The roleLabel VirtualIP goes: read stays, patch is withdrawn.
            vips.delete("redis")
            wait_for(
                "patch withdrawn",
                lambda: (
                    sorted(
                        v
                        for r in admin.get(f"{RBAC}/{app}/roles/{TRACKING}")["rules"]
                        for v in r["verbs"]
                    )
                    == ["get", "list", "watch"]
                ),
            )

            # The last one goes: the grant in that namespace goes too.
            vips.delete("redis-ro")

            def withdrawn() -> bool:
                left = [
                    admin.get(f"{RBAC}/{app}/{kind}", labelSelector="keepvip.io/agent-rbac=true")[
                        "items"
                    ]
                    for kind in ("roles", "rolebindings")
                ]
                return left == [[], []]

            wait_for("the agents' RBAC withdrawn from the app namespace", withdrawn)
            wait_for("the refusal", lambda: forbidden(core.list_namespaced_pod, app), timeout=30)


# -- VRIDs and conflicts ----------------------------------------------------------------------


def vrid(vips: Vips, name: str) -> int | None:
    value = vips.status(name).get("virtualRouterID")
    return int(value) if value is not None else None


def test_vrid_allocation_takes_the_lowest_free(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    vips.create("a-fixed", addresses=["192.0.2.100"], virtualRouterID=1)
    assert wait_for("a-fixed's VRID in status", lambda: vrid(vips, "a-fixed")) == 1
    vips.create("b-auto", addresses=["192.0.2.101"])
    assert wait_for("an allocated VRID", lambda: vrid(vips, "b-auto")) == 2
    vips.create("c-fixed", addresses=["192.0.2.102"], virtualRouterID=3)
    vips.create("d-auto", addresses=["2001:db8::103"])
    # Allocation skips every VRID in use, in spec or status, of either family.
    assert wait_for("another allocated VRID", lambda: vrid(vips, "d-auto")) == 4
    # Leaving it out again later keeps the allocated one (the VRRP identity of a running VIP).
    vips.patch_spec("b-auto", {"priority": 120})
    wait_for("b-auto reconciled", lambda: vips.status("b-auto").get("observedGeneration") == 2)
    assert vrid(vips, "b-auto") == 2
    # Same VRID on the other family: a separate virtual router (RFC 9568), no conflict.
    vips.create("e-v6", addresses=["2001:db8::104"], virtualRouterID=1)
    wait_for("e-v6 judged", lambda: cond(vips, "e-v6", "Conflict"))
    assert cond(vips, "e-v6", "Conflict") == ("False", "NoConflict")
    for name in ("a-fixed", "b-auto", "c-fixed", "d-auto"):
        assert cond(vips, name, "Conflict") == ("False", "NoConflict")


def test_same_address_blocks_the_newer_until_the_older_goes(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    ns = vips.namespace
    vips.create("a-older", addresses=["192.0.2.70/24"])
    wait_for("a-older judged", lambda: cond(vips, "a-older", "Conflict"))
    vips.create("b-newer", addresses=["192.0.2.71/24", "192.0.2.70/32"])
    conflict = wait_for("Conflict on b-newer", lambda: vips.condition("b-newer", "Conflict"))
    assert (conflict["status"], conflict["reason"]) == ("True", "AddressInUse")
    assert f"address 192.0.2.70 already claimed by {ns}/a-older (older)" in conflict["message"]
    assert cond(vips, "b-newer", "Ready") == ("False", "Conflict")
    warning = wait_for("the Conflict Event", lambda: vips.events("b-newer", "Conflict"))
    assert warning[0]["type"] == "Warning" and "192.0.2.70" in warning[0]["message"]
    assert cond(vips, "a-older", "Conflict") == ("False", "NoConflict")
    assert vips.events("a-older", "Conflict") == []

    vips.delete("a-older")
    wait_for(
        "b-newer unblocked",
        lambda: cond(vips, "b-newer", "Conflict") == ("False", "NoConflict"),
    )
    wait_for("the ConflictResolved Event", lambda: vips.events("b-newer", "ConflictResolved"))


def test_same_vrid_blocks_the_newer_and_a_new_vrid_releases_it(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    ns = vips.namespace
    vips.create("a-older", addresses=["192.0.2.72"], virtualRouterID=7)
    wait_for("a-older judged", lambda: cond(vips, "a-older", "Conflict"))
    vips.create("b-newer", addresses=["192.0.2.73"], virtualRouterID=7)
    conflict = wait_for("Conflict on b-newer", lambda: vips.condition("b-newer", "Conflict"))
    assert (conflict["status"], conflict["reason"]) == ("True", "VirtualRouterIDInUse")
    assert f"virtualRouterID 7 already used by {ns}/a-older for IPv4 (older)" in conflict["message"]
    assert vips.events("b-newer", "Conflict")[0]["type"] == "Warning"

    vips.patch_spec("b-newer", {"virtualRouterID": 8})
    wait_for(
        "b-newer unblocked", lambda: cond(vips, "b-newer", "Conflict") == ("False", "NoConflict")
    )
    assert vrid(vips, "b-newer") == 8


def test_a_name_longer_than_63_is_refused_by_the_api(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    # The agents' pods carry the name as a label value (at most 63 characters): the
    # CRD's root CEL rule refuses a longer name when it is applied, before any agent.
    name = "a" * 64
    with pytest.raises(ApiError) as refused:
        vips.create(name, addresses=["192.0.2.99"])
    assert refused.value.status == 422
    assert "metadata.name: at most 63 characters" in str(refused.value)


# -- status aggregation ---------------------------------------------------------------------


def messages(vips: Vips, name: str, reason: str) -> list[str]:
    return [e["message"] for e in vips.events(name, reason)]


def test_status_aggregates_the_agents_entries(
    control_plane: ControlPlane, keepvip_operator: RunningOperator, vips: Vips
) -> None:
    ns = vips.namespace
    vips.create("web", addresses=["192.0.2.110"])
    wait_for("agent pods on every node", lambda: running_on(control_plane, ns) == set(NODES))
    with NodeLeases(control_plane.admin_rest(), ns, NODES) as leases:
        aggregated(vips, leases)


def aggregated(vips: Vips, leases: NodeLeases) -> None:
    n1, n2, n3 = NODES

    vips.report("web", n1, "Master", reason="no master heard: master down timer fired")
    vips.report("web", n2, "Backup")
    vips.report("web", n3, "Backup")
    wait_for("master kv-node-1", lambda: vips.status("web").get("master") == n1)
    wait_for("Ready", lambda: cond(vips, "web", "Ready") == ("True", "MasterElected"))
    assert cond(vips, "web", "Degraded") == ("False", "BackupAvailable")
    assert cond(vips, "web", "SplitBrain") == ("False", "SingleMaster")
    wait_for("the first MasterChanged", lambda: messages(vips, "web", "MasterChanged"))
    assert messages(vips, "web", "MasterChanged") == [
        "(none) -> kv-node-1: no master heard: master down timer fired"
    ]

    # A failover: the Event names both nodes and the new master's reason.
    vips.report(
        "web", n1, "Fault", faults=["check web: connection refused"], reason="check web failed"
    )
    wait_for("Faulted", lambda: cond(vips, "web", "Faulted") == ("True", "AgentFault"))
    faulted = wait_for("the Faulted Event", lambda: vips.events("web", "Faulted"))
    assert faulted[0]["type"] == "Warning"
    assert faulted[0]["message"] == "kv-node-1: check web: connection refused"
    vips.report("web", n2, "Master", reason="no master heard: master down timer fired")
    wait_for("master kv-node-2", lambda: vips.status("web").get("master") == n2)
    wait_for(
        "the second MasterChanged",
        lambda: (
            "kv-node-1 -> kv-node-2: no master heard: master down timer fired"
            in messages(vips, "web", "MasterChanged")
        ),
    )
    # (Between the two agents' writes the operator may see no master for a moment, and
    # says so; the Event for the new master still names the last holder.)
    wait_for("Ready again", lambda: cond(vips, "web", "Ready") == ("True", "MasterElected"))
    ready_since = vips.condition("web", "Ready")["lastTransitionTime"]
    vips.report(
        "web", n2, "Master", reason="no master heard: master down timer fired"
    )  # a heartbeat
    vips.report("web", n3, "Backup")

    # Two masters: split brain.
    vips.report("web", n3, "Master", reason="no master heard")
    wait_for("a second master", lambda: cond(vips, "web", "Ready") != ("True", "MasterElected"))
    assert vips.condition("web", "Ready")["lastTransitionTime"] >= ready_since
    wait_for("SplitBrain", lambda: cond(vips, "web", "SplitBrain") == ("True", "MultipleMasters"))
    assert cond(vips, "web", "Ready") == ("False", "SplitBrain")
    assert vips.status("web")["master"] == n2  # the one that was master stays named
    assert cond(vips, "web", "Degraded") == ("True", "NoBackup")
    wait_for("the SplitBrain Event", lambda: vips.events("web", "SplitBrain"))
    # The Lease settles it: the loser steps down and says why.
    vips.report(
        "web", n3, "Fault", reason="lease held by kv-node-2",
        faults=["split brain: kv-node-2 holds lease keepvip-web and renews it"],
    )  # fmt: skip
    wait_for(
        "SplitBrain reported by the agent",
        lambda: cond(vips, "web", "SplitBrain") == ("True", "ReportedByAgent"),
    )
    assert cond(vips, "web", "Ready") == ("True", "MasterElected")
    vips.report("web", n3, "Backup", reason="hearing the master again")
    vips.report("web", n1, "Backup", reason="check web passed")
    wait_for(
        "SplitBrain over", lambda: cond(vips, "web", "SplitBrain") == ("False", "SingleMaster")
    )
    wait_for("the SplitBrainResolved Event", lambda: vips.events("web", "SplitBrainResolved"))
    assert cond(vips, "web", "Degraded") == ("False", "BackupAvailable")

    # A node whose agent stopped renewing its node Lease, and a node without an agent
    # pod: their entries are ignored and pruned.
    leases.backdate(n3, 120)
    vips.report("web", n3, "Master")
    vips.report("web", "kv-node-9", "Master")
    wait_for(
        "the stale entries pruned",
        lambda: sorted(n["name"] for n in vips.status("web").get("nodes", [])) == [n1, n2],
    )
    assert vips.status("web")["master"] == n2
    assert cond(vips, "web", "SplitBrain") == ("False", "SingleMaster")

    # The operator never took ownership of the agents' entries.
    managers = {
        m["manager"]: m.get("fieldsV1", {}).get("f:status", {})
        for m in vips.get("web")["metadata"]["managedFields"]
        if m.get("subresource") == "status"
    }
    assert "f:nodes" not in managers.get("keepvip-operator", {})
    assert f'k:{{"name":"{n1}"}}' in managers[f"keepvip-agent-{n1}"]["f:nodes"]

    # The master's node loses its agent: no master, and the Event says so.
    vips.report("web", n2, "Fault", reason="interface down", faults=["link eth0 down"])
    wait_for("no master", lambda: "master" not in vips.status("web"))
    assert cond(vips, "web", "Ready") == ("False", "NoMaster")
    wait_for(
        "MasterChanged to none",
        lambda: (
            "kv-node-2 -> (none): kv-node-2 is Fault (interface down)"
            in messages(vips, "web", "MasterChanged")
        ),
    )
    # Events carry whole-second timestamps: find this one by its text, not by its position.
    lost = [
        e["type"]
        for e in vips.events("web", "MasterChanged")
        if e["message"].startswith("kv-node-2 -> (none)")
    ]
    assert lost == ["Warning"]


def test_a_restarted_operator_resumes_every_virtualip(
    control_plane: ControlPlane, virtualip_crd: dict[str, Any], vips: Vips
) -> None:
    ns = vips.namespace
    settings = operator_settings(control_plane, ns)
    names = [f"v{i:02d}" for i in range(40)]  # more objects than kopf would run at once
    with running_operator(settings, ns, control_plane):
        for i, name in enumerate(names):
            vips.create(name, addresses=[f"192.0.2.{150 + i}"])
        wait_for(
            "every VirtualIP reconciled",
            lambda: all(vips.status(n).get("observedGeneration") == 1 for n in names),
            timeout=60,
        )
    vrids = {n: vrid(vips, n) for n in names}
    assert sorted(vrids.values()) == list(range(1, 41))
    assert {cond(vips, n, "Conflict") for n in names} == {("False", "NoConflict")}
    # While it is away: the DaemonSet is deleted and an entry goes stale.
    control_plane.admin_rest().delete(f"/apis/apps/v1/namespaces/{ns}/daemonsets/keepvip-agent")
    vips.report("v01", "kv-node-9", "Master")
    with running_operator(settings, ns, control_plane):
        wait_for("the DaemonSet back", lambda: daemonset(control_plane, ns))
        wait_for("the stale entry pruned", lambda: not vips.status("v01").get("nodes"))
        assert {n: vrid(vips, n) for n in names} == vrids  # nobody's VRID moved
