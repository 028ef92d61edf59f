"""taleweaver bench load: many stories at once, with and without the narrator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bot.cli import main
from engine.ops.bench_load import (
    BENCH_GUILD,
    Latency,
    LoadBenchError,
    _percentile,
    benchmark_load,
    fixed_narrator,
)
from engine.queue.jobs import GenerationJob
from engine.settings import Settings
from engine.story import StoryService
from storage.database import create_engine, create_session_factory

from support.protocol import narrate_request
from support.stories import ALICE, BOB, GUILD, started


async def test_both_rounds_play_every_turn_and_leave_no_story_behind(database_url: str) -> None:
    engine = create_engine(database_url)
    service = StoryService.create(create_session_factory(engine))
    try:
        mine = await started(service, ALICE, BOB)  # a real server's story, left alone
        report = await benchmark_load(Settings(database_url=database_url), stories=3, turns=4)

        plain, narrated = report.rounds
        assert (plain.narrator, narrated.narrator) == (False, True)
        for r in report.rounds:
            assert r.turns == 12 and r.refused == 0
            assert r.turns_per_s > 0 and r.cpu_ms_per_turn > 0
            t = r.turn_latency
            assert 0 < t.p50_ms <= t.p95_ms <= t.p99_ms <= t.max_ms
        assert plain.passages == 0 and plain.passage_latency is None
        assert narrated.passages == 12
        assert narrated.passage_latency is not None
        # A passage is stored after its turn was: it takes longer than the turn's call.
        assert narrated.passage_latency.p50_ms >= narrated.turn_latency.p50_ms

        assert await service.queries.list_sessions(BENCH_GUILD) == []
        assert [s.id for s in await service.queries.list_sessions(GUILD)] == [mine.id]
    finally:
        await engine.dispose()


async def test_the_bench_refuses_a_turn_count_the_rate_limits_cannot_carry(
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(LoadBenchError):
        await benchmark_load(settings, stories=1, turns=101)


def test_the_fixed_narrator_answers_every_job_at_once_with_varied_passages() -> None:
    answer = fixed_narrator()
    jobs = [GenerationJob(f"job-{n}", n, narrate_request()) for n in range(8)]
    outcomes = answer(jobs, lambda job_id, text: None)
    assert [job_id for job_id, _ in outcomes] == [j.job_id for j in jobs]
    texts = [text for _, text in outcomes]
    assert all(isinstance(t, str) and t.endswith(".") for t in texts)
    assert len(set(texts)) == len(texts)


@pytest.mark.parametrize(
    ("share", "expected"), [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0), (1.0, 100.0)]
)
def test_percentiles_are_nearest_rank(share: float, expected: float) -> None:
    assert _percentile([float(v) for v in range(100, 0, -1)], share) == expected


def test_latency_is_reported_in_milliseconds() -> None:
    latency = Latency.of([0.001, 0.002, 0.010])
    assert (latency.p50_ms, latency.max_ms) == (2.0, 10.0)
    assert math.isnan(Latency.of([]).p50_ms)


def test_the_cli_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
    argv = ["bench", "load", "--stories", "2", "--turns", "2", "--no-narrator", "--json"]
    assert main([*argv, "--database-url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stories"] == 2 and report["turns_per_story"] == 2
    [plain] = report["rounds"]
    assert plain["narrator"] is False and plain["turns"] == 4
    assert set(plain["turn_latency"]) == {"p50_ms", "p95_ms", "p99_ms", "max_ms"}


async def test_a_pause_spaces_each_storys_turns(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    report = await benchmark_load(settings, stories=2, turns=3, narrator=False, pause_s=0.2)
    [plain] = report.rounds
    assert report.pause_s == 0.2 and plain.turns == 6
    assert plain.wall_s >= 0.4, "two pauses between each story's three turns"
    assert "0.2 s between a story's turns" in report.format()
