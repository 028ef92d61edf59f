import pytest

from engine.narrator.memory import turns_to_summarise


@pytest.mark.parametrize(
    ("counts", "budget", "keep_recent", "expected"),
    [
        ([], 100, 2, 0),
        ([30, 30, 40], 100, 0, 0),  # exactly at the budget: nothing to do
        ([30, 30, 41], 100, 0, 2),  # over: fold down to half the budget (41 left)
        ([60, 10, 10, 10, 10, 10], 100, 2, 1),  # one big old turn is enough
        ([20] * 6, 100, 0, 4),  # 120 -> 40 <= 50
        ([20] * 6, 100, 3, 3),  # would fold 4, but the newest 3 stay
        ([50, 60], 100, 2, 0),  # over budget, yet every turn is recent
        ([10, 10, 200], 100, 1, 2),  # folds all it may even if still over
    ],
)
def test_oldest_turns_are_folded_only_when_over_budget(
    counts: list[int], budget: int, keep_recent: int, expected: int
) -> None:
    assert turns_to_summarise(counts, budget, keep_recent) == expected


def test_explicit_target_sets_how_far_to_fold() -> None:
    assert turns_to_summarise([20] * 6, 100, 0, target_tokens=90) == 2


@pytest.mark.parametrize(
    ("counts", "budget", "keep_recent", "target"),
    [([10], 0, 0, None), ([10], 100, -1, None), ([-1], 100, 0, None), ([10], 100, 0, 101)],
)
def test_invalid_arguments_are_refused(
    counts: list[int], budget: int, keep_recent: int, target: int | None
) -> None:
    with pytest.raises(ValueError):
        turns_to_summarise(counts, budget, keep_recent, target_tokens=target)
