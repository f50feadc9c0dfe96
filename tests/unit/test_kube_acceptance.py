"""The node agent's gate in a shared cluster: only accepted generations, and no commands or
node-aimed checks of an untrusted namespace (keepvip_api.acceptance, selection.Gate)."""

from __future__ import annotations

from typing import Any

from keepvip_agent.kube.selection import Gate, select
from keepvip_api.acceptance import Trust, acceptance, parse_label

NODE = {
    "metadata": {"name": "n1"},
    "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"},
                             {"type": "Hostname", "address": "n1"}]},
}  # fmt: skip
FAULT = {"action": "fault"}


def obj(gen: int = 2, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": "web", "namespace": "team-a", "generation": gen},
        "spec": {"addresses": ["198.51.100.7/24"], "virtualRouterID": 7, **spec},
        "status": status or {},
    }


def accepted_cond(status: str, gen: int, reason: str = "Granted") -> dict[str, Any]:
    return {"type": "Accepted", "status": status, "reason": reason, "message": "m",
            "observedGeneration": gen}  # fmt: skip


def test_acceptance_reads_accepted_generation_against_the_objects_generation() -> None:
    cases = {
        "accepted": {"acceptedGeneration": 2, "conditions": [accepted_cond("True", 2)]},
        "refused": {"acceptedGeneration": 1, "conditions": [accepted_cond("False", 2)]},
        "pending": {"acceptedGeneration": 1, "conditions": [accepted_cond("True", 1)]},
    }
    for want, status in cases.items():
        assert acceptance(obj(2, status)) == want, status
    assert acceptance(obj(2)) == "pending", "never judged"
    # Judged by an operator of an earlier release (no Accepted condition at all): serving.
    assert acceptance(obj(2, {"observedGeneration": 2})) == "accepted"
    assert acceptance(obj(3, {"observedGeneration": 2})) == "pending"


def test_an_unjudged_or_refused_generation_never_runs() -> None:
    gate = Gate(Trust())
    assert select([obj()], NODE, gate).skipped["team-a/web"].startswith("waiting for the operator")
    refused = obj(2, {"conditions": [accepted_cond("False", 2, "AddressNotGranted")]})
    sel = select([refused], NODE, gate)
    assert sel.run == {}
    assert sel.skipped["team-a/web"] == "refused by the operator: AddressNotGranted: m"


def test_the_last_accepted_spec_runs_while_a_newer_generation_is_judged() -> None:
    gate = Gate(Trust())
    ok = {"acceptedGeneration": 2, "conditions": [accepted_cond("True", 2)]}
    first = select([obj(2, ok, priority=150)], NODE, gate).run
    assert first["team-a/web"].spec.priority == 150
    edited = obj(3, ok, priority=50)  # not judged yet
    kept = select([edited], NODE, Gate(Trust(), accepted=first)).run
    assert kept["team-a/web"].spec.priority == 150, "the accepted spec, not the edit"
    refused = obj(3, {"acceptedGeneration": 2, "conditions": [accepted_cond("False", 3)]})
    assert select([refused], NODE, Gate(Trust(), accepted=first)).run == {}
    now = {"acceptedGeneration": 3, "conditions": [accepted_cond("True", 3)]}
    assert select([obj(3, now, priority=50)], NODE, gate).run["team-a/web"].spec.priority == 50


def test_with_grants_off_the_agent_runs_what_it_reads() -> None:
    assert list(select([obj()], NODE, Gate(Trust(address_grants=False))).run) == ["team-a/web"]


def test_the_agent_refuses_commands_and_node_aimed_checks_whatever_the_operator_said() -> None:
    ok = {"acceptedGeneration": 2, "conditions": [accepted_cond("True", 2)]}
    exec_check = [{"name": "c", "exec": {"command": ["true"]}, "onFailure": FAULT}]
    kubelet = [{"name": "k", "tcpSocket": {"host": "192.0.2.11", "port": 10250},
                "onFailure": FAULT}]  # fmt: skip
    for spec, why in (
        ({"checks": exec_check}, "CommandsNotAllowed: checks[0].exec"),
        ({"notify": {"backup": ["/bin/sh"]}}, "CommandsNotAllowed: notify.backup"),
        ({"checks": kubelet}, "CheckTargetNotAllowed: checks[0].tcpSocket.host: 192.0.2.11"),
    ):
        for trust in (Trust(), Trust(address_grants=False)):
            sel = select([obj(2, ok, **spec)], NODE, Gate(trust))
            assert sel.skipped["team-a/web"].startswith(f"refused on this node: {why}"), spec
        trusted = Trust(trusted_label=("tenancy", "trusted"))
        labels = {"team-a": {"tenancy": "trusted"}}
        assert select([obj(2, ok, **spec)], NODE, Gate(trusted, labels)).run
        assert not select([obj(2, ok, **spec)], NODE, Gate(trusted, {"team-a": {}})).run
    assert select([obj(2, ok, checks=exec_check)], NODE).run, "no gate: standalone-like tests"


def test_the_trusted_label_is_key_equals_value() -> None:
    assert parse_label(" keepvip.io/trusted = yes ") == ("keepvip.io/trusted", "yes")
    assert parse_label("") is None
    for bad in ("novalue", "=x"):
        try:
            parse_label(bad)
        except ValueError as exc:
            assert "is not key=value" in str(exc)
        else:
            raise AssertionError(bad)
