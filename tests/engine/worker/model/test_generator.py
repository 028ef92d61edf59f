from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.worker.model.generator import BatchGenerator, GenerationRequest, GenerationResult
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.model.stopping import StopPolicy

from support.generation import GREEDY, OPEN_ENDED, PROMPTS, SAMPLED, request


@pytest.fixture(scope="module")
def generator(tiny_model: LoadedModel) -> BatchGenerator:
    return BatchGenerator(tiny_model, partial_every=2)


def test_batch_returns_one_result_per_request_in_request_order(
    generator: BatchGenerator,
) -> None:
    requests = [
        request("first", PROMPTS[0], GREEDY),
        request("second", PROMPTS[1], SAMPLED),
        request("third", PROMPTS[2], GREEDY),
    ]

    results = generator.generate_batch(requests, seed=0)

    assert [r.request_id for r in results] == ["first", "second", "third"]
    for req, result in zip(requests, results, strict=True):
        assert result.finish_reason in {"stop", "length"}
        assert 0 < result.new_tokens <= req.sampling.max_new_tokens
        assert result.raw_text
        assert result.seconds > 0


def test_left_padded_batch_matches_each_prompt_alone(generator: BatchGenerator) -> None:
    requests = [request(str(i), prompt) for i, prompt in enumerate(PROMPTS)]

    batched = generator.generate_batch(requests)
    alone = [generator.generate_batch([r])[0] for r in requests]

    assert [r.raw_text for r in batched] == [r.raw_text for r in alone]


@pytest.mark.parametrize("max_new_tokens", [8, 21])
def test_max_new_tokens_is_respected(generator: BatchGenerator, max_new_tokens: int) -> None:
    settings = GREEDY.model_copy(update={"max_new_tokens": max_new_tokens})
    requests = [request(str(i), prompt, settings) for i, prompt in enumerate(PROMPTS)]

    results = generator.generate_batch(requests)

    for result in results:
        assert result.new_tokens <= max_new_tokens
        if result.finish_reason == "length":
            assert result.new_tokens == max_new_tokens


def test_on_partial_reports_growing_text_for_every_request(generator: BatchGenerator) -> None:
    partials: dict[str, list[str]] = {}
    settings = SAMPLED.model_copy(update={"max_new_tokens": 24})
    requests = [request(str(i), prompt, settings) for i, prompt in enumerate(PROMPTS)]

    results = generator.generate_batch(
        requests, lambda rid, text: partials.setdefault(rid, []).append(text), seed=1
    )

    for result in results:
        texts = partials[result.request_id]
        assert len(texts) >= 2
        for shorter, longer in itertools.pairwise(texts):
            assert longer.startswith(shorter)
            assert len(longer) > len(shorter)


def test_failing_on_partial_does_not_stop_generation(
    generator: BatchGenerator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_request_id: str, _text: str) -> None:
        raise RuntimeError("listener is gone")

    results = generator.generate_batch([request("a", PROMPTS[0])], broken)

    assert results[0].finish_reason in {"stop", "length"}
    assert "on_partial failed" in caplog.text


def test_without_a_ban_the_biased_model_writes_the_phrase(
    generator: BatchGenerator, favour_dragon: int
) -> None:
    result = generator.generate_batch([request("a", "The village")])[0]

    assert "dragon" in result.raw_text


@pytest.mark.parametrize("phrase", ["dragon", "Dragon", " dragon "])
def test_banned_phrase_is_never_generated(
    generator: BatchGenerator, favour_dragon: int, phrase: str
) -> None:
    requests = [request(str(i), prompt, banned=(phrase,)) for i, prompt in enumerate(PROMPTS)]
    requests.append(request("sampled", "The village", SAMPLED, banned=(phrase,)))

    results = generator.generate_batch(requests, seed=3)

    for result in results:
        assert "dragon" not in result.raw_text.lower()
        assert result.new_tokens > 0


def test_ban_applies_only_to_the_request_that_asked_for_it(
    generator: BatchGenerator, favour_dragon: int
) -> None:
    banned, free = generator.generate_batch(
        [request("banned", "The village", banned=("dragon",)), request("free", "The village")]
    )

    assert "dragon" not in banned.raw_text
    assert "dragon" in free.raw_text


def test_same_seed_reproduces_sampled_text(generator: BatchGenerator) -> None:
    requests = [request(str(i), prompt, SAMPLED) for i, prompt in enumerate(PROMPTS)]

    first = generator.generate_batch(requests, seed=42)
    second = generator.generate_batch(requests, seed=42)

    assert [r.raw_text for r in first] == [r.raw_text for r in second]


def test_beam_search_returns_a_result(generator: BatchGenerator) -> None:
    beams = GREEDY.model_copy(update={"num_beams": 2})

    results = generator.generate_batch(
        [request("a", PROMPTS[0], beams), request("b", PROMPTS[1], beams)]
    )

    assert [r.request_id for r in results] == ["a", "b"]
    assert all(0 < r.new_tokens <= beams.max_new_tokens for r in results)


def test_stop_policy_cuts_each_row_on_its_own(
    generator: BatchGenerator, favour_dragon: int
) -> None:
    stop_at_second_dragon = StopPolicy(markers=(" dragon dragon",), stop_at_any_speaker=False)
    settings = GREEDY.model_copy(update={"max_new_tokens": 30})

    early, late = generator.generate_batch(
        [
            GenerationRequest("early", PROMPTS[0], settings, stop_at_second_dragon),
            GenerationRequest("late", PROMPTS[0], settings, OPEN_ENDED),
        ]
    )

    assert (early.finish_reason, early.new_tokens, early.text) == ("stop", 2, "")
    assert (late.finish_reason, late.new_tokens) == ("length", 30)


def test_prompt_longer_than_the_context_keeps_its_end(
    generator: BatchGenerator, tiny_model: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    long_prompt = " ".join(PROMPTS * 40)
    assert tiny_model.count_tokens(long_prompt) > tiny_model.context_window

    result = generator.generate_batch([request("long", long_prompt)])[0]

    assert result.finish_reason in {"stop", "length"}
    assert "keeping its end" in caplog.text


def test_model_failure_becomes_an_error_result(
    generator: BatchGenerator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(generator.loaded.model, "generate", explode)

    results = generator.generate_batch([request("a", PROMPTS[0]), request("b", PROMPTS[1])])

    assert [(r.request_id, r.finish_reason, r.text) for r in results] == [
        ("a", "error", ""),
        ("b", "error", ""),
    ]
    assert "out of memory" in caplog.text


def test_results_are_frozen(generator: BatchGenerator) -> None:
    result = generator.generate_batch([request("a", PROMPTS[0])])[0]

    with pytest.raises(AttributeError):
        result.text = "changed"  # type: ignore[misc]
    assert isinstance(result, GenerationResult)


def test_plain_chat_format_is_used_without_a_template(generator: BatchGenerator) -> None:
    prompt = generator.render_chat(
        [
            {"role": "system", "content": "You narrate."},
            {"role": "user", "content": "Mira: I knock."},
        ]
    )

    assert prompt == "System: You narrate.\n\nUser: Mira: I knock.\n\nNarrator:"


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny_model: LoadedModel) -> None:
    tokenizer = tiny_model.tokenizer
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with_template = LoadedModel(
        model=tiny_model.model,
        tokenizer=tokenizer,
        device="cpu",
        quantization="none",
        context_window=tiny_model.context_window,
        has_chat_template=True,
        source=tiny_model.source,
    )
    tokenizer.chat_template = template
    try:
        prompt = with_template.render_chat([{"role": "user", "content": "Hello"}])
    finally:
        tokenizer.chat_template = None

    assert prompt == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"


def test_count_tokens_counts_without_special_tokens(generator: BatchGenerator) -> None:
    assert generator.count_tokens("") == 0
    assert generator.count_tokens("The dragon") == 2


@pytest.mark.parametrize("quantization", ["nf4", "int8"])
def test_quantized_tiny_model_generates(
    tiny_model_dir: Path,
    tmp_path: Path,
    quantization: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loaded = load_model(
        str(tiny_model_dir), quantization=quantization, device="cpu", cache_dir=tmp_path
    )
    generator = BatchGenerator(loaded)

    results = generator.generate_batch([request(str(i), p) for i, p in enumerate(PROMPTS)])

    assert loaded.quantization == quantization
    assert getattr(loaded.model, "is_quantized", False)
    assert all(0 < r.new_tokens <= GREEDY.max_new_tokens for r in results)
    assert "cast" not in caplog.text  # bitsandbytes' per-call int8 warning is filtered


def test_candidates_share_one_prompt_read_and_match_separate_greedy_rows(
    generator: BatchGenerator,
) -> None:
    separate = generator.generate_batch([request(f"r{i}", p) for i, p in enumerate(PROMPTS)])
    shared = generator.generate_batch(
        [
            GenerationRequest(f"r{i}", p, GREEDY, OPEN_ENDED, candidates=3)
            for i, p in enumerate(PROMPTS)
        ]
    )

    for alone, together in zip(separate, shared, strict=True):
        assert len(together.candidates) == 3
        assert {c.raw_text for c in together.candidates} == {alone.raw_text}
        assert together.text == alone.text
        assert together.new_tokens == 3 * alone.new_tokens


def test_sampled_candidates_differ_and_carry_their_likelihood(generator: BatchGenerator) -> None:
    [result] = generator.generate_batch(
        [GenerationRequest("r", PROMPTS[1], SAMPLED, OPEN_ENDED, candidates=4)], seed=3
    )

    texts = {c.raw_text for c in result.candidates}
    assert len(texts) > 1
    for c in result.candidates:
        assert c.new_tokens > 0
        assert -30.0 < c.mean_logprob < 0.0


def test_likelihood_is_the_models_own_probability_of_the_greedy_tokens(
    generator: BatchGenerator, tiny_model: LoadedModel
) -> None:
    [result] = generator.generate_batch([request("r", PROMPTS[0])])
    [candidate] = result.candidates
    # Greedy decoding picks the likeliest token each step: its log-probability is the
    # step's largest; replay the steps with plain forward passes.
    ids = tiny_model.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    picked = []
    with torch.inference_mode():
        for _ in range(candidate.new_tokens):
            log_probs = torch.log_softmax(tiny_model.model(ids).logits[0, -1].float(), dim=-1)
            best = int(log_probs.argmax())
            picked.append(float(log_probs[best]))
            ids = torch.cat([ids, torch.tensor([[best]])], dim=1)

    assert candidate.mean_logprob == pytest.approx(sum(picked) / len(picked), abs=1e-3)
