"""Graceful stop under fake loop time (make before break), and the binding's acquire/release race."""

from __future__ import annotations

import asyncio

import pytest

from keepvip_agent.health import HealthBoard
from keepvip_agent.runtime.binding import Binding
from keepvip_agent.runtime.instance import (
    HANDOVER_GRACE,
)
from keepvip_agent.runtime.metrics import Metrics
from keepvip_agent.vrrp.router import State
from keepvip_harness.runtime_rig import (
    EPS,
    LOWER,
    VIP,
    Rig,
    advert,
    now,
    run,
    virtualip,
)


def test_stop_hands_over_before_it_releases_the_vip() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        sent = len(rig.sock.sent)
        stopping = asyncio.get_running_loop().create_task(rig.runner.stop())
        await asyncio.sleep(0.3)  # the backups count down their skew
        assert rig.sock.priorities()[sent:] == [0]
        assert rig.runner.state is State.INITIALIZE
        assert rig.kernel.bound == {VIP}  # make before break: clients are still answered here
        rig.hear(advert(90), LOWER)  # the successor's first advertisement
        heard = now()
        await stopping
        (unbound,) = [t for t, op, _ in rig.kernel.log if op == "unbind"]
        assert unbound == pytest.approx(heard + HANDOVER_GRACE, abs=EPS)
        assert rig.kernel.bound == set()
        assert rig.port.instances == {}

    run(main)


def test_stop_without_a_successor_releases_after_any_backup_must_have_taken_over() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.elected()
        t0 = now()
        await rig.runner.stop()
        (unbound,) = [t for t, op, _ in rig.kernel.log if op == "unbind"]
        assert unbound == pytest.approx(t0 + 1.0 + HANDOVER_GRACE, abs=EPS)
        assert rig.kernel.bound == set()

    run(main)


def test_stop_of_a_backup_sends_nothing() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        await rig.start()
        await rig.runner.stop()
        assert rig.sock.sent == [] and rig.kernel.log == []
        assert rig.runner.state is State.INITIALIZE

    run(main)


# -- the binding on its own --------------------------------------------------------------------


def test_binding_converges_when_acquire_and_release_race() -> None:
    async def main() -> None:
        rig = Rig(virtualip())
        kernel = rig.kernel
        kernel.unbind_takes = 0.05
        binding = Binding(
            "web",
            rig.runner.spec,
            rig.port,
            kernel,
            Metrics().instance("web"),
            HealthBoard(100, lambda health: None),
            lambda: True,
        )
        binding.want(True)  # bound on return: the GARP follows at once
        assert binding.bound and kernel.bound == {VIP}
        assert len(rig.announcer.frames) == 1
        binding.want(False)
        await asyncio.sleep(0.01)
        binding.want(True)  # master again while the release is still in netlink
        await asyncio.sleep(0.1)
        assert binding.bound and kernel.bound == {VIP}
        assert [op for _, op, _ in kernel.log] == ["bind", "unbind", "bind"]
        binding.want(False)
        binding.want(True)
        binding.want(False)  # only the last wish counts
        await binding.close()
        assert not binding.bound and kernel.bound == set()

    run(main)
