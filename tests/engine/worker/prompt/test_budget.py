import pytest

from engine.worker.prompt.budget import largest_fitting


@pytest.mark.parametrize(("upper", "limit"), [(0, 0), (10, 10), (10, 0), (10, 3), (7, 6)])
def test_largest_fitting_finds_the_last_fitting_count(upper: int, limit: int) -> None:
    assert largest_fitting(upper, lambda k: k <= limit) == limit


def test_largest_fitting_only_returns_a_measured_fit_when_not_monotonic() -> None:
    fitting = {0, 1, 2, 5}

    found = largest_fitting(8, lambda k: k in fitting)

    assert found in fitting
