from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from bot.cli import main
from engine.ops.bench_quality import benchmark_quality, perplexity
from engine.ops.quality_set import load_held_out, load_story_set
from engine.rules.genres import GENRE_KEYS
from engine.settings import Settings
from engine.worker.model import loading
from engine.worker.model.loading import load_model

from support.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def quality_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 2048 positions so the real narrator prompts of the story set fit.
    return build_tiny_model(tmp_path_factory.mktemp("quality-tiny"), context=2048)


def test_story_set_covers_every_genre_with_a_few_player_turns() -> None:
    stories = load_story_set()

    assert len(stories) >= 12
    assert set(Counter(s.genre for s in stories)) == set(GENRE_KEYS)
    assert len({s.key for s in stories}) == len(stories)
    for story in stories:
        players = [t for t in story.turns if not t.is_narrator]
        assert 3 <= len(players) <= 6
        assert {t.author for t in players} <= set(story.players)
        assert story.lore and story.premise
        context = story.context()
        assert context.next_player in story.players
        assert story.request().sampling.max_sentences >= 1


def test_held_out_text_is_many_passages_of_prose() -> None:
    passages = load_held_out()

    assert len(passages) == 200
    assert all(len(p.split()) >= 4 and not p.startswith("#") for p in passages)


def test_perplexity_weights_each_text_by_its_tokens(
    quality_model_dir: Path, tmp_path: Path
) -> None:
    loaded = load_model(
        str(quality_model_dir), quantization="none", device="cpu", cache_dir=tmp_path
    )
    short, long = (
        "The dragon slept.",
        "Mira opened the creaking door of the lighthouse and the wind howled.",
    )
    n_short = len(loaded.tokenizer(short)["input_ids"]) - 1
    n_long = len(loaded.tokenizer(long)["input_ids"]) - 1

    both = perplexity(loaded, [short, long])

    expected = math.exp(
        (
            n_short * math.log(perplexity(loaded, [short]))
            + n_long * math.log(perplexity(loaded, [long]))
        )
        / (n_short + n_long)
    )
    assert both == pytest.approx(expected, rel=1e-4)
    assert both > 1.0


def test_benchmark_reports_modes_and_passage_rates(
    quality_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a CPU with bf16 in hardware, where nf4 keeps its other weights in bf16 (on
    # other CPUs they stay fp32 and the tiny model's memory would not tell the modes apart).
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    settings = Settings(
        model=str(quality_model_dir), quantization="nf4", device="cpu", cache_dir=tmp_path
    )
    lines: list[str] = []

    report = benchmark_quality(
        settings,
        modes=["none", "nf4"],
        seeds=[1],
        candidates=2,
        stories_limit=3,
        progress=lines.append,
    )

    assert [m.quantization for m in report.modes] == ["none", "nf4"]
    none, nf4 = report.modes
    assert none.perplexity_held_out > 1 and nf4.perplexity_held_out > 1
    assert nf4.memory_mb < none.memory_mb
    assert none.tokens_per_s > 0
    passages = report.passages
    assert passages is not None and passages.stories == 3 and passages.candidates == 2
    assert all(0.0 <= passages.rates[k] <= 1.0 for k in ("usable", "on_scene", "empty"))
    assert passages.best_of_n_s > 0 and passages.single_s > 0
    data = report.to_dict()
    assert data["modes"][1]["perplexity_vs_none"] == pytest.approx(
        nf4.perplexity_held_out / none.perplexity_held_out - 1, abs=1e-3
    )
    assert "| nf4 |" in report.format()
    assert any("passages: seed 1" in line for line in lines)


def test_cli_prints_json_for_the_modes_alone(
    quality_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TALEWEAVER_MODEL", str(quality_model_dir))
    monkeypatch.setenv("TALEWEAVER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TALEWEAVER_DEVICE", "cpu")

    assert main(["bench", "quality", "--modes", "none", "--no-passages", "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert [m["quantization"] for m in data["modes"]] == ["none"]
    assert data["passages"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "q4"], "unknown quantization mode 'q4'"),
        (["--candidates", "0"], "--candidates must be between 1 and 16"),
        (["--stories", "0"], "--stories must be at least 1"),
    ],
)
def test_cli_refuses_bad_options_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "quality", *args]) == 2
    assert message in capsys.readouterr().err
