from __future__ import annotations

import pytest

from engine.safety import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_hits_up_to_the_limit_pass_and_the_next_is_told_how_long_to_wait(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(3, 10.0, clock=clock)
    answers = []
    for _ in range(3):
        answers.append(limiter.hit("mira"))
        clock.now += 1.0

    assert answers == [None, None, None]
    assert limiter.hit("mira") == pytest.approx(7.0)


def test_a_refused_hit_is_not_recorded(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 10.0, clock=clock)
    assert limiter.hit("mira") is None
    for _ in range(5):
        clock.now += 1.0
        assert limiter.hit("mira") is not None

    clock.now = 1010.0

    assert limiter.hit("mira") is None


def test_the_window_slides(clock: FakeClock) -> None:
    limiter = RateLimiter(2, 10.0, clock=clock)
    assert limiter.hit("mira") is None  # t=1000
    clock.now = 1006.0
    assert limiter.hit("mira") is None  # t=1006
    clock.now = 1009.0
    assert limiter.hit("mira") == pytest.approx(1.0)

    clock.now = 1010.0  # the first hit leaves the window

    assert limiter.hit("mira") is None
    assert limiter.hit("mira") == pytest.approx(6.0)


def test_keys_have_separate_budgets(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60.0, clock=clock)

    assert limiter.hit(("guild", 1, "user", 7)) is None
    assert limiter.hit(("guild", 1, "user", 8)) is None
    assert limiter.hit(("guild", 2, "user", 7)) is None
    assert limiter.hit(("guild", 1, "user", 7)) == pytest.approx(60.0)


def test_quiet_keys_are_forgotten_without_changing_answers(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 1.0, clock=clock)
    for user in range(3000):
        clock.now += 0.01
        assert limiter.hit(user) is None

    assert limiter.hit(2999) is not None
    clock.now += 2.0
    assert limiter.hit(0) is None


def test_the_default_clock_is_monotonic_time() -> None:
    limiter = RateLimiter(1, 60.0)

    assert limiter.hit("mira") is None
    wait = limiter.hit("mira")
    assert wait is not None
    assert 59.0 < wait <= 60.0


@pytest.mark.parametrize(
    ("limit", "per_seconds"),
    [pytest.param(0, 1.0, id="zero-limit"), pytest.param(1, 0.0, id="zero-window")],
)
def test_nonsense_limits_are_refused(limit: int, per_seconds: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(limit, per_seconds)
