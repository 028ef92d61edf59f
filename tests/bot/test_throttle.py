from __future__ import annotations

import pytest

from bot.discord.throttle import EditThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_edit_may_happen_at_once() -> None:
    assert EditThrottle(1.5, Clock()).wait_time() == 0.0


def test_next_edit_waits_for_the_rest_of_the_interval() -> None:
    clock = Clock()
    throttle = EditThrottle(1.5, clock)
    throttle.mark()
    clock.now += 0.5
    assert throttle.wait_time() == pytest.approx(1.0)
    clock.now += 1.0
    assert throttle.wait_time() == 0.0
    clock.now += 10
    assert throttle.wait_time() == 0.0


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        EditThrottle(-1)
