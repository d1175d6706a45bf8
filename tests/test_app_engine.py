"""The asyncio side of the engine: the dispatcher's one timer, armed on a grid."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from b2bua.app_engine import TIMER_STEP_S, EngineCore, TimedDispatcher


class _Loop:
    """Records `call_at`; the dispatcher needs nothing else of a loop to arm its timer."""

    def __init__(self) -> None:
        self.armed: list[float] = []

    def time(self) -> float:
        return 0.0

    def call_at(self, when: float, callback: Any) -> asyncio.TimerHandle:
        self.armed.append(when)
        return asyncio.TimerHandle(when, callback, (), cast(asyncio.AbstractEventLoop, self))

    def get_debug(self) -> bool:
        return False

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass


class _Core:
    def __init__(self) -> None:
        self.deadline: float | None = None

    def next_deadline(self) -> float | None:
        return self.deadline


@pytest.mark.parametrize("deadline", [32.0001, 32.004, 32.0099999, 7.3])
def test_timer_is_armed_on_the_grid_never_before_the_deadline(deadline: float) -> None:
    loop, core = _Loop(), _Core()
    dispatcher = TimedDispatcher(cast(asyncio.AbstractEventLoop, loop), cast(EngineCore, core))
    core.deadline = deadline
    dispatcher.rearm()
    (armed,) = loop.armed
    assert deadline <= armed < deadline + TIMER_STEP_S + 1e-9
    assert abs(armed / TIMER_STEP_S - round(armed / TIMER_STEP_S)) < 1e-6


def test_deadlines_within_one_step_share_one_timer() -> None:
    loop, core = _Loop(), _Core()
    dispatcher = TimedDispatcher(cast(asyncio.AbstractEventLoop, loop), cast(EngineCore, core))
    for deadline in (40.0012, 40.0047, 40.0031, 40.0099):  # transactions expiring apart
        core.deadline = deadline
        dispatcher.rearm()
    assert len(loop.armed) == 1
    core.deadline = 39.5  # an earlier deadline (a retransmission) re-arms
    dispatcher.rearm()
    assert loop.armed[1:] == [pytest.approx(39.5)]
