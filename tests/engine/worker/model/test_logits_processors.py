from __future__ import annotations

import pytest
import torch

from engine.worker.model.loading import LoadedModel
from engine.worker.model.logits_processors import (
    BannedSequencesProcessor,
    ContinuationNoRepeatNGram,
    banned_token_sequences,
    phrase_variants,
)

VOCAB = 10
BLOCKED = float("-inf")


def blocked_tokens(scores: torch.Tensor) -> list[list[int]]:
    return [torch.nonzero(row == BLOCKED).flatten().tolist() for row in scores]


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("dragon", ["dragon", " dragon", "Dragon", " Dragon", "DRAGON", " DRAGON"]),
        (
            "  Red Knight ",
            [
                "Red Knight",
                " Red Knight",
                "red knight",
                " red knight",
                "Red knight",
                " Red knight",
                "RED KNIGHT",
                " RED KNIGHT",
            ],
        ),
        ("", []),
        ("   ", []),
    ],
)
def test_phrase_variants_cover_spacing_and_case(phrase: str, expected: list[str]) -> None:
    assert phrase_variants(phrase) == expected


def test_banned_sequences_are_tokenized_without_special_tokens(tiny_model: LoadedModel) -> None:
    sequences = banned_token_sequences(tiny_model.tokenizer, ["dragon", ""])

    assert [tiny_model.tokenizer.decode(s) for s in sequences] == phrase_variants("dragon")


def test_single_token_ban_blocks_that_token_in_its_request_rows_only() -> None:
    processor = BannedSequencesProcessor([[[7]], []])
    input_ids = torch.tensor([[1, 2], [1, 2]])

    scores = processor(input_ids, torch.zeros(2, VOCAB))  # type: ignore[arg-type]

    assert blocked_tokens(scores) == [[7], []]


def test_multi_token_ban_blocks_the_last_token_only_after_its_prefix() -> None:
    processor = BannedSequencesProcessor([[[3, 4, 5]], [[3, 4, 5]]])
    input_ids = torch.tensor([[9, 3, 4], [3, 4, 9]])

    scores = processor(input_ids, torch.zeros(2, VOCAB))  # type: ignore[arg-type]

    assert blocked_tokens(scores) == [[5], []]


def test_beam_rows_follow_their_request() -> None:
    processor = BannedSequencesProcessor([[[1]], [[2]]])
    input_ids = torch.zeros(4, 3, dtype=torch.long)  # 2 requests x 2 beams

    scores = processor(input_ids, torch.zeros(4, VOCAB))  # type: ignore[arg-type]

    assert blocked_tokens(scores) == [[1], [1], [2], [2]]


@pytest.mark.parametrize(
    ("generated", "ngram_size", "blocked"),
    [
        ([5, 6, 7, 5], 2, [6]),
        ([5, 6, 7, 5, 6], 3, [7]),
        ([5, 6, 7], 3, []),
        ([5, 6], 1, [5, 6]),
        ([], 2, []),
    ],
)
def test_no_repeat_ngram_looks_at_the_continuation_only(
    generated: list[int], ngram_size: int, blocked: list[int]
) -> None:
    prompt = [5, 6, 7, 8, 5]  # "5 6" and "6 7" already occur in the prompt
    processor = ContinuationNoRepeatNGram(ngram_size, prompt_length=len(prompt))
    input_ids = torch.tensor([prompt + generated])

    scores = processor(input_ids, torch.zeros(1, VOCAB))  # type: ignore[arg-type]

    assert blocked_tokens(scores) == [sorted(blocked)]
