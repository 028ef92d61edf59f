"""Decide when the rolling summary must absorb old turns, and how many."""

from __future__ import annotations

from collections.abc import Sequence


def turns_to_summarise(
    turn_token_counts: Sequence[int],
    budget_tokens: int,
    keep_recent: int,
    *,
    target_tokens: int | None = None,
) -> int:
    """Return how many of the oldest unsummarised turns to fold into the summary.

    ``turn_token_counts`` are the sizes of the unsummarised turns, oldest first. Nothing
    is folded while their total stays within ``budget_tokens``. Once it exceeds the
    budget, the oldest turns are folded until the rest is within ``target_tokens``
    (default: half the budget, so summaries run in batches rather than after every
    turn), but the newest ``keep_recent`` turns are never folded.
    """
    if budget_tokens < 1:
        raise ValueError("budget_tokens must be at least 1")
    if keep_recent < 0:
        raise ValueError("keep_recent must not be negative")
    target = budget_tokens // 2 if target_tokens is None else target_tokens
    if not 0 <= target <= budget_tokens:
        raise ValueError("target_tokens must be between 0 and budget_tokens")
    if any(count < 0 for count in turn_token_counts):
        raise ValueError("token counts must not be negative")

    remaining = sum(turn_token_counts)
    if remaining <= budget_tokens:
        return 0
    foldable = max(0, len(turn_token_counts) - keep_recent)
    folded = 0
    while folded < foldable and remaining > target:
        remaining -= turn_token_counts[folded]
        folded += 1
    return folded
