"""Measure rendered prompts against a token budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ChatMessages = list[dict[str, str]]
TokenCounter = Callable[[str], int]
ChatRenderer = Callable[[ChatMessages], str]


class PromptTooLargeError(ValueError):
    """The parts of a prompt that cannot be trimmed do not fit the model's window."""


@dataclass(frozen=True)
class TokenBudget:
    """Render chat messages with the model's template and check them against a limit."""

    count_tokens: TokenCounter
    render_chat: ChatRenderer
    limit: int

    @classmethod
    def for_window(
        cls,
        *,
        count_tokens: TokenCounter,
        render_chat: ChatRenderer,
        context_window: int,
        reserve_tokens: int,
    ) -> TokenBudget:
        """Return the budget left in ``context_window`` after reserving room for the reply."""
        if reserve_tokens < 0:
            raise ValueError("reserve_tokens must not be negative")
        if context_window - reserve_tokens < 1:
            raise ValueError(
                f"context_window ({context_window}) must exceed reserve_tokens "
                f"({reserve_tokens}) to leave room for a prompt"
            )
        return cls(count_tokens, render_chat, context_window - reserve_tokens)

    def measure(self, messages: ChatMessages) -> tuple[str, int]:
        """Return the rendered prompt and its size in tokens."""
        text = self.render_chat(messages)
        return text, self.count_tokens(text)

    def fits(self, messages: ChatMessages) -> bool:
        """Tell whether the rendered messages stay within the limit."""
        return self.measure(messages)[1] <= self.limit


def largest_fitting(upper: int, fits: Callable[[int], bool]) -> int:
    """Return the largest ``k`` in ``0..upper`` with ``fits(k)``, given that ``fits(0)`` holds.

    Binary search: it needs only O(log upper) renders, and whatever ``k`` it returns
    was measured to fit even if token counts are not perfectly monotonic.
    """
    if upper <= 0 or fits(upper):
        return max(upper, 0)
    known_fit, known_misfit = 0, upper
    while known_misfit - known_fit > 1:
        middle = (known_fit + known_misfit) // 2
        if fits(middle):
            known_fit = middle
        else:
            known_misfit = middle
    return known_fit
