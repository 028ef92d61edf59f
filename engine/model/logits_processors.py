"""Per-row logits rules: banned phrases and n-gram repeats within a continuation."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

log = logging.getLogger(__name__)


def phrase_variants(phrase: str) -> list[str]:
    """Return the spellings of ``phrase`` to ban: as given, lower, capitalized, upper case.

    Each spelling comes bare and after a space, since BPE vocabularies spell a word
    differently at the start of a text and after a space.
    """
    phrase = phrase.strip()
    if not phrase:
        return []
    lower = phrase.lower()
    cases = (phrase, lower, phrase[0].upper() + phrase[1:], lower[0].upper() + lower[1:])
    variants: list[str] = []
    for word in (*cases, phrase.upper()):
        for spelling in (word, f" {word}"):
            if spelling not in variants:
                variants.append(spelling)
    return variants


def banned_token_sequences(tokenizer: Any, phrases: Iterable[str]) -> list[list[int]]:
    """Return the token sequences (as ``bad_words_ids`` expects) that spell ``phrases``."""
    sequences: list[list[int]] = []
    for phrase in phrases:
        for spelling in phrase_variants(phrase):
            token_ids = list(tokenizer(spelling, add_special_tokens=False)["input_ids"])
            if token_ids and token_ids not in sequences:
                sequences.append(token_ids)
    return sequences


def _rows_per_request(rows: int, requests: int) -> int:
    # Beam search hands the processors batch * num_beams rows, beams of one request adjacent.
    return max(1, rows // max(1, requests))


class BannedSequencesProcessor(LogitsProcessor):
    """Forbid each request's banned token sequences in its own rows only.

    Works like transformers' ``bad_words_ids`` but per request, so requests with
    different banned phrases can still share one batch.
    """

    def __init__(self, per_request: Sequence[Sequence[Sequence[int]]]) -> None:
        self.per_request = [[list(sequence) for sequence in seqs] for seqs in per_request]

    @property
    def is_empty(self) -> bool:
        """Return whether no request bans anything."""
        return not any(self.per_request)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set the final token of every banned sequence whose prefix was just written to -inf."""
        rows_per_request = _rows_per_request(int(input_ids.shape[0]), len(self.per_request))
        longest = max((len(s) for seqs in self.per_request for s in seqs), default=1)
        tails = input_ids[:, max(0, input_ids.shape[1] - (longest - 1)) :].tolist()
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for row, tail in enumerate(tails):
            request = min(row // rows_per_request, len(self.per_request) - 1)
            for sequence in self.per_request[request]:
                prefix = sequence[:-1]
                if not prefix or tail[len(tail) - len(prefix) :] == prefix:
                    mask[row, sequence[-1]] = True
        return scores.masked_fill(mask, -float("inf"))  # type: ignore[return-value]


class ContinuationNoRepeatNGram(LogitsProcessor):
    """Forbid repeating an n-gram within the generated continuation.

    transformers' ``no_repeat_ngram_size`` also counts the prompt, which would stop
    the narrator from ever writing a character's full name or a phrase from the
    story so far again; this looks only at the tokens generated after the prompt.
    """

    def __init__(self, ngram_size: int, prompt_length: int) -> None:
        if ngram_size < 1:
            raise ValueError("ngram_size must be at least 1")
        self.ngram_size = ngram_size
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Set tokens that would complete an already generated n-gram to -inf."""
        n = self.ngram_size
        generated = input_ids[:, self.prompt_length :]
        if generated.shape[1] < n - 1 or generated.shape[1] == 0:
            return scores
        mask = torch.zeros_like(scores, dtype=torch.bool)
        for row, tokens in enumerate(generated.tolist()):
            context = tokens[len(tokens) - (n - 1) :] if n > 1 else []
            for start in range(len(tokens) - n + 1):
                if tokens[start : start + n - 1] == context:
                    mask[row, tokens[start + n - 1]] = True
        return scores.masked_fill(mask, -float("inf"))  # type: ignore[return-value]
