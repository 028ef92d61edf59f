"""Continuous batching: requests join a running decode loop, leave it on their own, and
sample exactly what they would sample alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from engine.protocol.sampling import SamplingSettings
from engine.worker.model.continuous import ContinuousGenerator
from engine.worker.model.generator import BatchGenerator, GenerationRequest, GenerationResult
from engine.worker.model.loading import LoadedModel

from support.generation import GREEDY, OPEN_ENDED, PROMPTS, SAMPLED, request

LONG = SamplingSettings(
    temperature=0, max_new_tokens=60, repetition_penalty=1.0, no_repeat_ngram_size=0
)


@pytest.fixture(scope="module")
def batch(tiny_model: LoadedModel) -> BatchGenerator:
    return BatchGenerator(tiny_model, partial_every=2)


@pytest.fixture
def continuous(batch: BatchGenerator) -> Iterator[ContinuousGenerator]:
    generator = ContinuousGenerator(batch, max_rows=8, kv_budget_tokens=4096, prefill_chunk=4)
    yield generator
    generator.stop()


class Finished:
    """Collect results from the decode thread, in the order they end."""

    def __init__(self) -> None:
        self.results: list[GenerationResult] = []
        self.changed = threading.Condition()

    def __call__(self, result: GenerationResult) -> None:
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def wait(self, count: int, seconds: float = 60.0) -> list[GenerationResult]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.results) >= count, seconds)
            return list(self.results)


def test_each_request_gets_what_it_gets_alone(
    continuous: ContinuousGenerator, batch: BatchGenerator
) -> None:
    requests = [request(f"r{i}", prompt) for i, prompt in enumerate(PROMPTS)]

    together = continuous.generate_batch(requests)
    alone = [batch.generate_batch([r])[0] for r in requests]

    assert [r.request_id for r in together] == ["r0", "r1", "r2"]
    assert [r.raw_text for r in together] == [r.raw_text for r in alone]
    assert [r.new_tokens for r in together] == [r.new_tokens for r in alone]


def test_a_seeded_request_samples_the_same_text_whatever_runs_beside_it(
    continuous: ContinuousGenerator,
) -> None:
    alone = continuous.generate_batch([request("a", PROMPTS[1], SAMPLED)], seed=5)[0]
    finished = Finished()
    for index, prompt in enumerate(PROMPTS):
        continuous.submit(request(f"other{index}", prompt, SAMPLED), on_done=finished)
    continuous.submit(request("a", PROMPTS[1], SAMPLED), on_done=finished, seed=5)

    beside = next(r for r in finished.wait(4) if r.request_id == "a")

    assert beside.raw_text == alone.raw_text


def test_a_late_request_joins_the_running_batch_and_ends_first(
    continuous: ContinuousGenerator,
) -> None:
    finished = Finished()
    partials: list[tuple[str, float]] = []
    continuous.submit(request("long", PROMPTS[1], LONG), on_done=finished)
    while continuous.steps < 5:  # the long request is decoding
        time.sleep(0.01)
    steps_before = continuous.steps
    continuous.submit(
        request("late", PROMPTS[0]),
        on_done=finished,
        on_partial=lambda rid, _text: partials.append((rid, time.perf_counter())),
    )

    order = [r.request_id for r in finished.wait(2)]

    assert order == ["late", "long"]
    assert any(rid == "late" for rid, _ in partials)  # it streamed while the other ran
    late = finished.results[0]
    # It needed about its own tokens' worth of steps, not the long request's remainder.
    assert late.new_tokens == GREEDY.max_new_tokens
    assert continuous.steps - steps_before < LONG.max_new_tokens


def test_rows_with_different_settings_share_the_loop(continuous: ContinuousGenerator) -> None:
    greedy_alone = continuous.generate_batch([request("g", PROMPTS[2])])[0]

    mixed = continuous.generate_batch(
        [request("s", PROMPTS[2], SAMPLED), request("g", PROMPTS[2], GREEDY)], seed=1
    )

    assert mixed[1].raw_text == greedy_alone.raw_text
    assert mixed[0].new_tokens == SAMPLED.max_new_tokens


def test_a_ban_applies_only_to_its_own_row(
    continuous: ContinuousGenerator, favour_dragon: int
) -> None:
    free, banned = continuous.generate_batch(
        [request("free", PROMPTS[0]), request("banned", PROMPTS[0], banned=("dragon",))]
    )

    assert "dragon" in free.raw_text
    assert "dragon" not in banned.raw_text.lower()


def test_candidates_of_a_request_each_carry_their_likelihood(
    continuous: ContinuousGenerator,
) -> None:
    four = GenerationRequest("c", PROMPTS[1], SAMPLED, OPEN_ENDED, candidates=4)

    [result] = continuous.generate_batch([four], seed=3)

    assert len(result.candidates) == 4
    assert len({c.raw_text for c in result.candidates}) > 1
    assert all(c.mean_logprob < 0 for c in result.candidates)
    assert result.new_tokens == sum(c.new_tokens for c in result.candidates)


def test_room_shrinks_with_work_and_comes_back(batch: BatchGenerator) -> None:
    generator = ContinuousGenerator(batch, max_rows=3, kv_budget_tokens=4096)
    try:
        assert generator.room() == 3
        finished = Finished()
        generator.submit(request("a", PROMPTS[0], LONG), on_done=finished)
        generator.submit(request("b", PROMPTS[1], LONG), on_done=finished)
        assert generator.room() == 1
        finished.wait(2)
        assert generator.room() == 3
    finally:
        generator.stop()


def test_the_key_value_budget_bounds_admission(batch: BatchGenerator) -> None:
    generator = ContinuousGenerator(batch, max_rows=16, kv_budget_tokens=100)
    try:
        finished = Finished()
        generator.submit(request("a", PROMPTS[1], LONG), on_done=finished)  # ~70 tokens
        generator.submit(request("b", PROMPTS[1], LONG), on_done=finished)
        assert generator.room() == 0
        finished.wait(2)
        assert generator.room() == 16
    finally:
        generator.stop()


def test_a_failing_step_fails_its_requests_and_the_loop_goes_on(
    continuous: ContinuousGenerator, tiny_model: LoadedModel
) -> None:
    def explode(_module: Any, _inputs: Any, _output: torch.Tensor) -> None:
        raise RuntimeError("device lost")

    handle = tiny_model.model.lm_head.register_forward_hook(explode)
    try:
        [failed] = continuous.generate_batch([request("x", PROMPTS[0])])
    finally:
        handle.remove()
    [after] = continuous.generate_batch([request("y", PROMPTS[0])])

    assert failed.finish_reason == "error"
    assert after.finish_reason != "error" and after.new_tokens > 0


def test_a_cancelled_request_leaves_at_the_next_step_and_frees_its_rows(
    batch: BatchGenerator,
) -> None:
    generator = ContinuousGenerator(batch, max_rows=8, kv_budget_tokens=4096, prefill_chunk=4)
    try:
        finished = Finished()
        four = GenerationRequest("doomed", PROMPTS[1], LONG, OPEN_ENDED, candidates=4)
        generator.submit(four, on_done=finished)
        generator.submit(request("kept", PROMPTS[0], LONG), on_done=finished)
        generator.submit(request("waiting", PROMPTS[2], LONG), on_done=finished)
        while generator.steps < 3:  # both running requests are decoding
            time.sleep(0.01)
        assert generator.room() == 2
        assert generator.cancel("doomed")
        assert generator.cancel("waiting")  # whether still reading its prompt or decoding
        assert not generator.cancel("unknown")
        steps = generator.steps
        first, second = finished.wait(2)[:2]
        assert {first.request_id, second.request_id} == {"doomed", "waiting"}
        assert {first.finish_reason, second.finish_reason} == {"cancelled"}
        assert generator.steps - steps <= 2
        assert generator.room() == 7  # only the kept request holds a row
        [kept] = finished.wait(3)[2:]
        assert kept.request_id == "kept" and kept.new_tokens == LONG.max_new_tokens
        assert not generator.cancel("kept")  # over already
        assert generator.room() == 8
    finally:
        generator.stop()
