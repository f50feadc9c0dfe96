"""The agent's one timer for every instance's deadline, under fake loop time."""

from __future__ import annotations

import asyncio

import pytest

from keepvip_agent.runtime.deadlines import Deadlines
from keepvip_harness.runtime_rig import now, run


class Owner:
    def __init__(self, fired: list[tuple[str, float]], name: str, fail: bool = False) -> None:
        self.fired, self.name, self.fail = fired, name, fail

    def on_deadline(self) -> None:
        self.fired.append((self.name, round(now(), 3)))
        if self.fail:
            raise RuntimeError("boom")


def test_each_owner_fires_once_at_its_last_deadline_in_order() -> None:
    async def main() -> None:
        fired: list[tuple[str, float]] = []
        d = Deadlines(asyncio.get_running_loop())
        a, b, c, gone = (Owner(fired, n) for n in "abcx")
        t0 = round(now(), 3)
        d.arm(a, t0 + 3)
        d.arm(b, t0 + 1)
        d.arm(c, t0 + 2)
        d.arm(a, t0 + 0.5)  # moved earlier
        d.arm(c, t0 + 4)  # moved later
        d.arm(gone, t0 + 1.5)
        d.cancel(gone)
        await asyncio.sleep(5)
        assert fired == [("a", t0 + 0.5), ("b", t0 + 1), ("c", t0 + 4)]

    run(main)


def test_a_failing_owner_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        fired: list[tuple[str, float]] = []
        d = Deadlines(asyncio.get_running_loop())
        t0 = now()
        d.arm(Owner(fired, "bad", fail=True), t0 + 1)
        d.arm(Owner(fired, "good"), t0 + 1)
        d.arm(Owner(fired, "later"), t0 + 2)
        await asyncio.sleep(3)
        assert [n for n, _ in fired] == ["bad", "good", "later"]

    run(main)
    assert "deadline callback failed" in caplog.text


def test_a_deadline_that_may_come_early_joins_an_earlier_wake_up_an_exact_one_never() -> None:
    async def main() -> None:
        fired: list[tuple[str, float]] = []
        d = Deadlines(asyncio.get_running_loop())
        t0 = round(now(), 3)
        d.arm(Owner(fired, "first"), t0 + 1.0)
        d.arm(Owner(fired, "flexible"), t0 + 1.0015, early=0.002)
        d.arm(Owner(fired, "exact"), t0 + 1.001)
        d.arm(Owner(fired, "too-far"), t0 + 1.003, early=0.002)
        await asyncio.sleep(2)
        assert fired == [
            ("first", t0 + 1.0),
            ("flexible", t0 + 1.0),  # with the first wake-up
            ("exact", t0 + 1.001),
            ("too-far", t0 + 1.001),  # within 2 ms of the second wake-up
        ]

    run(main)
