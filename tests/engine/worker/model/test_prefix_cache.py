"""The prefix cache: a story's next prompt reads only what its previous prompt did not."""

from __future__ import annotations

import pytest
import torch
from prometheus_client import REGISTRY

from engine.worker.model.continuous import ContinuousGenerator
from engine.worker.model.generator import BatchGenerator
from engine.worker.model.loading import LoadedModel
from engine.worker.model.prefix_cache import PrefixCache

from support.generation import request


def layers(tokens: int, fill: float = 1.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.full((1, 2, tokens, 4), fill), torch.full((1, 2, tokens, 4), -fill))] * 3


def test_the_longest_shared_beginning_is_returned_cut_to_its_length() -> None:
    cache = PrefixCache(min_tokens=2)
    cache.keep([1, 2, 3, 4, 5], layers(5))
    cache.keep([1, 2, 9, 9], layers(4, fill=2.0))

    length, found = cache.longest_prefix([1, 2, 3, 4, 7, 8])

    assert length == 4
    assert found is not None and found[0][0].shape == (1, 2, 4, 4)
    assert float(found[0][0][0, 0, 0, 0]) == 1.0  # the first prompt's keys


def test_a_prompt_never_reuses_its_own_last_token() -> None:
    cache = PrefixCache(min_tokens=2)
    cache.keep([1, 2, 3, 4], layers(4))

    length, _ = cache.longest_prefix([1, 2, 3, 4])

    assert length == 3  # the last token is read again, for the logits of the next


def test_short_shared_beginnings_are_not_worth_it() -> None:
    cache = PrefixCache(min_tokens=3)
    cache.keep([1, 2, 3, 4], layers(4))

    assert cache.longest_prefix([1, 2, 7, 8]) == (0, None)
    assert cache.stats().hits == 0 and cache.stats().lookups == 1


def test_the_oldest_prompts_leave_when_the_budget_is_full() -> None:
    one = sum(k.numel() * 4 + v.numel() * 4 for k, v in layers(4))
    cache = PrefixCache(budget_bytes=2 * one, min_tokens=2)
    cache.keep([1, 1, 1, 1], layers(4))
    cache.keep([2, 2, 2, 2], layers(4))
    cache.longest_prefix([1, 1, 1, 5])  # used: the newest now
    cache.keep([3, 3, 3, 3], layers(4))

    assert cache.longest_prefix([1, 1, 1, 9])[0] == 3
    assert cache.longest_prefix([2, 2, 2, 9])[0] == 0  # evicted
    assert cache.stats().kept_prompts == 2 and cache.stats().kept_bytes == 2 * one


def test_kept_layers_are_copies_the_caller_cannot_spoil() -> None:
    cache = PrefixCache(min_tokens=2)
    original = layers(4)
    cache.keep([1, 2, 3, 4], original)
    original[0][0].fill_(7.0)

    _, found = cache.longest_prefix([1, 2, 3, 9])
    assert found is not None
    found[0][0].fill_(8.0)

    _, again = cache.longest_prefix([1, 2, 3, 9])
    assert again is not None and float(again[0][0][0, 0, 0, 0]) == 1.0


@pytest.fixture(scope="module")
def batch(tiny_model: LoadedModel) -> BatchGenerator:
    return BatchGenerator(tiny_model, partial_every=2)


STORY = (
    "The keeper climbed the stair of the old lighthouse, lamp in hand, while the sea "
    "threw itself at the rocks below and the gulls cried over the bay."
)


def test_a_continued_prompt_reads_only_its_new_tokens_and_writes_the_same(
    batch: BatchGenerator,
) -> None:
    warm = ContinuousGenerator(batch, max_rows=4, kv_budget_tokens=4096)
    cold = ContinuousGenerator(
        batch, max_rows=4, kv_budget_tokens=4096, prefix_cache=PrefixCache(budget_bytes=0)
    )
    try:
        first = request("turn1", STORY)
        second = request("turn2", STORY + " Then the door below opened, and")
        warm.generate_batch([first])
        read_before = warm.prefill_tokens
        hits_before = hits()

        [continued] = warm.generate_batch([second])
        [fresh] = cold.generate_batch([second])
    finally:
        warm.stop()
        cold.stop()

    stats = warm.prefix_cache.stats()
    prompt = len(batch.encode_prompt(second.prompt, second.sampling.max_new_tokens))
    assert stats.hits == 1
    assert warm.prefill_tokens - read_before < prompt // 2
    assert stats.reused_tokens + (warm.prefill_tokens - read_before) == prompt
    assert continued.raw_text == fresh.raw_text
    assert hits() == hits_before + 1  # counted for /metrics too


def hits() -> float:
    labels = {"result": "hit"}
    return REGISTRY.get_sample_value("taleweaver_prefix_cache_lookups_total", labels) or 0.0
