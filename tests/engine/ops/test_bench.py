from __future__ import annotations

from pathlib import Path

import pytest

from engine.ops.bench import GenerationBenchReport, benchmark_generation, story_context
from engine.settings import Settings
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.processor import DEFAULT_RESAMPLE_ROUNDS

from support.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def bench_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2048 positions so the real narrator prompt fits with room to generate.
    return build_tiny_model(tmp_path_factory.mktemp("bench-tiny"), context=2048)


@pytest.fixture(scope="module")
def bench_model(bench_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(
        str(bench_model_dir),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("bench-cache"),
    )


async def test_benchmark_reports_every_concurrency_level(
    bench_model: LoadedModel, bench_model_dir: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    settings = Settings(
        model=str(bench_model_dir), quantization="none", device="cpu", cache_dir=tmp_path
    )
    report = await benchmark_generation(
        settings,
        concurrency=(2, 4),
        max_new_tokens=8,
        progress=lines.append,
        model=bench_model,
        busy_batch=4,
    )
    assert isinstance(report, GenerationBenchReport)
    assert report.quantization == "none" and report.device.startswith("cpu")
    assert report.single_stream_tps > 0
    assert set(report.aggregate_tps) == set(report.speedup) == {2, 4}
    assert all(tps > 0 for tps in report.aggregate_tps.values())
    assert all(speedup > 0 for speedup in report.speedup.values())
    # Tokens are counted as generated: at most what was asked for in each sampling
    # round (a job whose passage was junk is sampled again).
    assert 0 < report.aggregate_tokens[4] <= 4 * 8 * (1 + DEFAULT_RESAMPLE_ROUNDS)
    assert 0 < report.ttft_while_busy_s <= report.late_job_total_s
    table = report.format()
    assert "| 2 |" in table and "| 4 |" in table
    assert "tokens/s" in table
    assert any("Warming up" in line for line in lines)
    assert any("4 sessions" in line for line in lines)


async def test_invalid_concurrency_is_rejected(bench_model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await benchmark_generation(Settings(device="cpu"), concurrency=(), model=bench_model)


def test_sessions_get_distinct_story_contexts() -> None:
    contexts = [story_context(i) for i in range(16)]
    assert len({c.title for c in contexts}) == 16


def test_stop_rules_can_be_switched_off_for_full_length_jobs() -> None:
    from engine.ops.bench import _without_stop_rules
    from engine.worker.model.stopping import StopPolicy

    text = "The tide turns.\n\nMira: I open the door.\n<|im_start|>user"
    assert StopPolicy(max_paragraphs=5, player_names=("Mira",)).should_stop(text)
    assert not _without_stop_rules(StopPolicy(max_paragraphs=5)).should_stop(text)
