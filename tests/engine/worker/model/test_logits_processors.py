from __future__ import annotations

import pytest
import torch

from engine.worker.model.loading import LoadedModel
from engine.worker.model.logits_processors import (
    BannedSequencesProcessor,
    ContinuationNoRepeatNGram,
    NewNamePenalty,
    TokenVocabulary,
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


# Token ids:        0        1      2       3      4      5      6      7       8
NAME_VOCABULARY = [b" Mira", b" M", b"ira", b" Am", b"ar", b" The", b" the", b"Am", b" Ira"]


def penalised_tokens(tail: list[int], known: frozenset[str] | None) -> set[int]:
    vocabulary = TokenVocabulary(NAME_VOCABULARY)
    processor = NewNamePenalty(vocabulary, [known], 5.0, top_k=len(NAME_VOCABULARY))
    scores = torch.zeros((1, len(NAME_VOCABULARY)))
    out = processor(torch.tensor([[6, *tail]]), scores)
    return {i for i in range(len(NAME_VOCABULARY)) if out[0, i] < 0}


def test_new_capitalised_words_are_penalised_and_known_ones_are_not() -> None:
    penalised = penalised_tokens([], frozenset({"Mira", "The"}))

    # " Am" and " Ira" start unknown names; " M" may still become "Mira", and "Am"
    # only continues the lower-case word before it.
    assert penalised == {3, 8}


def test_a_known_name_cannot_be_continued_into_an_unknown_one() -> None:
    # After " M": "ira" makes "Mira" (known); "ar" would make "Mar".
    assert penalised_tokens([1], frozenset({"Mira"})) >= {4}
    assert 2 not in penalised_tokens([1], frozenset({"Mira"}))


def test_requests_without_known_words_are_left_alone() -> None:
    assert penalised_tokens([], None) == set()
