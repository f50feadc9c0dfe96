"""Health changes under fake loop time: checks that demote or fault, a broken interface, a VIP that cannot be bound."""

from __future__ import annotations

import asyncio

import pytest

from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import (
    EPS,
    MDI_100,
    OURS,
    VIP,
    Rig,
    check,
    run,
    scripted_probe,
    virtualip,
)


def test_a_failing_demote_check_lowers_the_advertised_priority_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = {"app": (True, "ok")}
    probes = scripted_probe(monkeypatch, results)

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "demote", "weight": 60})]))
        await rig.elected()
        results["app"] = (False, "exit status 1")
        sent = len(rig.sock.sent)
        await asyncio.sleep(0.5)  # the next probe fails
        assert rig.runner.priority == 40
        # Told at once, not at the next Adver_Timer, which restarts from there.
        ((at, adv, _),) = rig.sock.sent[sent:]
        assert adv.priority == 40 and at == pytest.approx(probes[-1], abs=EPS)
        await asyncio.sleep(1.0)
        assert rig.sock.priorities()[sent:] == [40, 40]
        assert rig.sock.sent[-1][0] == pytest.approx(probes[-2] + 1.0, abs=EPS)
        assert rig.runner.state is State.MASTER and rig.runner.faults == frozenset()
        results["app"] = (True, "ok")
        await asyncio.sleep(1.0)
        assert rig.runner.priority == 100 == rig.runner.health.configured

    run(main)


def test_a_failing_fault_check_takes_the_master_out_and_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = {"app": (True, "ok")}
    scripted_probe(monkeypatch, results)

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "fault"})]))
        await rig.elected()
        results["app"] = (False, "exit status 1")
        sent = len(rig.sock.sent)
        await asyncio.sleep(1.1)
        assert rig.runner.state is State.FAULT
        assert rig.runner.faults == frozenset({"app: exit status 1"})
        assert rig.sock.priorities()[sent:] == [0]  # release at once
        assert rig.kernel.bound == set()
        results["app"] = (True, "ok")
        await asyncio.sleep(1.0)
        assert rig.runner.state is State.BACKUP and rig.runner.faults == frozenset()
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER

    run(main)


def test_a_node_never_becomes_master_before_its_checks_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted_probe(monkeypatch, {"app": (False, "connection refused")})

    async def main() -> None:
        rig = Rig(virtualip(checks=[check("app", {"action": "fault"})]))
        await rig.start()
        assert rig.runner.state is State.FAULT
        await asyncio.sleep(10)
        assert rig.sock.sent == [] and rig.kernel.bound == set()

    run(main)


def test_a_broken_interface_is_a_fault_until_it_heals() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        rig.runner.link_changed(rig.port.health_name, "interface eth0 is down", None)
        await asyncio.sleep(0.01)
        assert rig.runner.state is State.FAULT
        assert rig.runner.faults == frozenset({"interface eth0: interface eth0 is down"})
        assert rig.kernel.bound == set()
        rig.runner.link_changed(rig.port.health_name, None, OURS)
        assert rig.runner.state is State.BACKUP

    run(main)


def test_a_vip_that_cannot_be_bound_takes_the_node_out_for_a_while() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        rig.kernel.fail_bind = True
        await rig.start()
        await asyncio.sleep(MDI_100 + 0.01)
        assert rig.runner.state is State.FAULT
        assert rig.sock.priorities() == [100, 0]  # took over, could not bind, released
        (fault,) = rig.runner.faults
        assert fault.startswith("addresses: cannot bind addresses: Operation not permitted")
        rig.kernel.fail_bind = False
        await asyncio.sleep(10.0)
        assert rig.runner.state is State.BACKUP
        await asyncio.sleep(MDI_100)
        assert rig.runner.state is State.MASTER and rig.kernel.bound == {VIP}

    run(main)
