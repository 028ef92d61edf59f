from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from bot.cli import main
from engine.ops.bench import (
    GenerationBenchReport,
    benchmark_generation,
    percentile,
    render_prompt,
)
from engine.ops.bench_peer import INSTALL_HINT, PeerUnavailable, peer_gguf, run_llama_cpp
from engine.ops.bench_stories import bench_contexts, load_bench_stories, split_sentences
from engine.ops.quality_set import NARRATOR, load_story_set
from engine.protocol.context import StoryContext
from engine.settings import Settings
from engine.worker.model.loading import LoadedModel, load_model

from support.tiny_model import build_tiny_model

JSON_KEYS = {
    "model",
    "quantization",
    "device",
    "threads",
    "prompt_tokens_p50",
    "single_stream_tps",
    "aggregate_tps",
    "peer",
    "late_job_first_text_s",
    "ratio_16_vs_peer",
}


@pytest.fixture(scope="module")
def bench_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The tiny tokenizer cuts the bench prompts into over 2,000 short tokens; a small
    # window makes the worker drop older turns, so the test reads about half of that.
    return build_tiny_model(tmp_path_factory.mktemp("bench-tiny"), context=1024)


@pytest.fixture(scope="module")
def bench_settings(bench_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        model=str(bench_model_dir),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("bench-cache"),
    )


@pytest.fixture(scope="module")
def bench_model(bench_settings: Settings) -> LoadedModel:
    return load_model(
        bench_settings.model, quantization="none", device="cpu", cache_dir=bench_settings.cache_dir
    )


@pytest.fixture(scope="module")
def contexts(bench_settings: Settings) -> list[StoryContext]:
    return asyncio.run(bench_contexts(bench_settings))


def test_bench_stories_reach_the_narrator_as_stories_under_way(
    contexts: list[StoryContext],
) -> None:
    stories = load_bench_stories()
    assert len(contexts) == len(stories) == len(load_story_set()) == 16
    for story, context in zip(stories, contexts, strict=True):
        assert context.title == story.opening.title
        assert context.summary == story.summary
        assert context.lore, f"{story.key}: the recent turns trigger lore"
        assert 6 <= len(context.recent_turns) <= 12
        # The summary covers the older turns; the round before the set's turns and the
        # set's own turns are the recent ones, in order, narrator passages included.
        recent = [(t.author, t.text) for t in context.recent_turns]
        assert recent == [(t.author, t.text) for t in story.script()]
        assert any(t.is_narrator for t in context.recent_turns)
        assert context.next_player == story.next_turns[0].author


def test_the_summary_is_split_over_the_older_turns_in_rotation_order() -> None:
    for story in load_bench_stories():
        older = story.older_turns()
        assert [t.author for t in older] == [*story.opening.players, NARRATOR]
        assert " ".join(t.text for t in older) == " ".join(split_sentences(story.summary))
    assert split_sentences('Mr. Pell came. "Why?" she asked. Done!') == [
        "Mr. Pell came.",
        '"Why?" she asked.',
        "Done!",
    ]


async def test_generate_json_has_the_documented_keys_and_realistic_prompts(
    bench_settings: Settings,
    bench_model: LoadedModel,
    contexts: list[StoryContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def played(settings: Settings) -> list[StoryContext]:
        return contexts  # played once for the module above

    monkeypatch.setattr("engine.ops.bench.bench_contexts", played)
    lines: list[str] = []
    # Late jobs arrive while a batch of 2 runs: the figures' shape, not their size.
    report = await benchmark_generation(
        bench_settings, max_new_tokens=8, busy_batch=2, progress=lines.append, model=bench_model
    )
    assert isinstance(report, GenerationBenchReport)
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == JSON_KEYS
    assert data["model"] == bench_settings.model
    assert data["quantization"] == "none" and data["device"] == "cpu"
    assert isinstance(data["threads"], int) and data["threads"] >= 1
    # Prompt tokens as the worker's tokenizer counts the prompt the worker renders.
    counts = [
        len(
            bench_model.tokenizer(render_prompt(bench_model, c, 8), add_special_tokens=False)[
                "input_ids"
            ]
        )
        for c in contexts
    ]
    assert data["prompt_tokens_p50"] == sorted(counts)[len(counts) // 2 - 1]
    assert data["prompt_tokens_p50"] >= 200
    assert report.prompt_tokens_max == max(counts)
    assert set(data["aggregate_tps"]) == {"1", "4", "8", "16"}
    assert all(isinstance(v, float) and v > 0 for v in data["aggregate_tps"].values())
    assert data["aggregate_tps"]["1"] == data["single_stream_tps"] > 0
    assert data["peer"] is None and data["ratio_16_vs_peer"] is None
    assert len(report.late_first_text_s) == 8
    late = data["late_job_first_text_s"]
    assert set(late) == {"p50", "p95"} and 0 < late["p50"] <= late["p95"]
    # Tokens are counted as generated: at most what the jobs asked for (and sampled
    # again when a passage was junk), never nothing.
    assert 0 < report.aggregate_tokens[16] <= 16 * 8 * 3
    assert report.most_running[16] >= 2
    table = report.format()
    assert "| 16 |" in table and "batch of 2" in table and "first streamed text p50" in table
    assert any("Late job 8/8" in line for line in lines)


async def test_invalid_concurrency_is_rejected(bench_model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await benchmark_generation(Settings(device="cpu"), concurrency=(), model=bench_model)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 9)], 0.95) == 8.0
    assert math.isnan(percentile([], 0.5))


def test_peer_without_llama_cpp_says_how_to_install_it_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    assert main(["bench", "generate", "--peer", "llama-cpp"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [f"error: {INSTALL_HINT}"]
    assert "pip install -e '.[bench]'" in INSTALL_HINT


def test_peer_needs_the_models_own_gguf_file(bench_settings: Settings) -> None:
    with pytest.raises(PeerUnavailable, match="GGUF"):
        peer_gguf(bench_settings)


def _bundled_gguf() -> Path | None:
    try:
        return peer_gguf(Settings())
    except PeerUnavailable:
        return None


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or _bundled_gguf() is None,
    reason="needs llama-cpp-python (pip install -e '.[bench]') and the bundled model",
)
def test_llama_cpp_peer_runs_the_prompt_text_on_the_bundled_gguf() -> None:
    gguf = _bundled_gguf()
    assert gguf is not None
    prompt = (
        "<|im_start|>system\nYou are the narrator of a story.<|im_end|>\n"
        "<|im_start|>user\nMira climbs the lighthouse stairs.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    lines: list[str] = []
    report = run_llama_cpp(
        gguf,
        [prompt, prompt.replace("Mira", "Tom")],
        warmup=prompt,
        longest_prompt_tokens=64,
        max_new_tokens=8,
        temperature=0.8,
        top_p=0.95,
        top_k=40,
        repeat_penalty=1.1,
        threads=1,
        seed=3,
        progress=lines.append,
    )
    assert report.jobs == 2 and 0 < report.tokens <= 16
    assert report.single_stream_tps > 0
    # The role markers are read as the special tokens they are, not as plain text.
    assert all(tokens < 40 for tokens in report.prompt_tokens)
    assert len(lines) == 2
