"""Adapt :class:`StopPolicy` to transformers' per-row ``StoppingCriteria``.

Kept apart from ``stopping.py`` so that the text rules stay importable without torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from engine.worker.model.stopping import StopPolicy

log = logging.getLogger(__name__)

ProgressHook = Callable[[int, str], None]


def cut_at_end_tokens(token_ids: Sequence[int], end_token_ids: Collection[int]) -> list[int]:
    """Return the generated tokens before the first end-of-sequence or padding token."""
    for position, token_id in enumerate(token_ids):
        if token_id in end_token_ids:
            return list(token_ids[:position])
    return list(token_ids)


def decode_generated(
    tokenizer: Any, token_ids: Sequence[int], end_token_ids: Collection[int]
) -> str:
    """Decode generated tokens up to the end token, keeping special tokens so markers show."""
    kept = cut_at_end_tokens(token_ids, end_token_ids)
    return str(tokenizer.decode(kept, skip_special_tokens=False))


class StopPolicyCriteria(StoppingCriteria):
    """Stop each batch row on its own once its decoded continuation reaches a stop point.

    Rows are grouped per request in order (beam search gives each request several
    consecutive rows, and so do several candidates). ``on_progress(request_index,
    raw_text)`` is called every ``progress_every`` tokens with each request's first row
    while it runs.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_length: int,
        policies: Sequence[StopPolicy],
        *,
        end_token_ids: Collection[int] = (),
        on_progress: ProgressHook | None = None,
        progress_every: int = 4,
    ) -> None:
        if not policies:
            raise ValueError("at least one stop policy is needed")
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.policies = tuple(policies)
        self.end_token_ids = frozenset(end_token_ids)
        self.on_progress = on_progress
        self.progress_every = max(1, progress_every)

    def decode_row(self, token_ids: Sequence[int]) -> str:
        """Decode one row's generated tokens, keeping special tokens so markers show."""
        return decode_generated(self.tokenizer, token_ids, self.end_token_ids)

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any
    ) -> torch.BoolTensor:
        """Return one flag per row: True where that row's continuation is complete."""
        rows = int(input_ids.shape[0])
        rows_per_request = max(1, rows // len(self.policies))
        generated = input_ids[:, self.prompt_length :]
        step = int(generated.shape[1])
        report = self.on_progress is not None and step % self.progress_every == 0
        done = [False] * rows
        for row, token_ids in enumerate(generated.tolist()):
            if token_ids and token_ids[-1] in self.end_token_ids:
                continue  # ended by EOS, or already finished and padded
            request_index = min(row // rows_per_request, len(self.policies) - 1)
            text = self.decode_row(token_ids)
            done[row] = self.policies[request_index].should_stop(text)
            first_of_request = row % rows_per_request == 0
            if report and first_of_request and not done[row] and self.on_progress is not None:
                self.on_progress(request_index, text)
        flags = torch.tensor(done, dtype=torch.bool, device=input_ids.device)
        return flags  # type: ignore[return-value]
