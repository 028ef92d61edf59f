"""`taleweaver bench e2e` at a tiny scale: real Redis, a real `taleweaver worker` process."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from engine.ops.bench_e2e import CLAIM_KEY, RedisClaim, benchmark_e2e, with_database
from engine.settings import Settings

from support.tiny_model import build_tiny_model


def test_a_redis_url_names_another_database_of_the_same_server() -> None:
    assert with_database("redis://:pw@host:6379/0", 14) == "redis://:pw@host:6379/14"
    assert with_database("rediss://host", 3) == "rediss://host/3"


async def test_turns_reach_the_narrator_through_redis_and_a_worker_process(
    tmp_path: Path, redis_url: str
) -> None:
    model_dir = build_tiny_model(tmp_path / "tiny", context=4096)
    settings = Settings(
        model=str(model_dir),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path / "cache",
        narrator_candidates=1,
        queue_url=redis_url,
    )
    lines: list[str] = []
    # One job in the queue at a time: the second story's first request meets a full queue.
    report = await benchmark_e2e(
        settings,
        stories=(1, 2),
        turns=1,
        max_batch=2,
        max_in_flight=1,
        worker_ready_s=180,
        progress=lines.append,
    )
    data = json.loads(json.dumps(report.to_json()))
    assert data["model"] == str(model_dir) and data["device"] == "cpu"
    assert data["quantization"] == "none" and data["candidates"] == 1
    assert data["max_in_flight"] == 1 and data["worker_max_batch"] == 2
    assert set(data["rounds"]) == {"1", "2"}
    for stories, figures in data["rounds"].items():
        assert figures["narrations"] == int(stories), figures
        assert figures["failed"] == 0 and figures["other_refusals"] == 0
        first, passage = figures["first_text_s"], figures["passage_s"]
        assert 0 <= first["p50"] <= first["p95"]
        assert first["p50"] <= passage["p50"] <= passage["p95"]
        assert figures["max_queue_depth"] <= 1 and figures["queue_bounded"] is True
    assert data["rounds"]["1"]["queue_full_answers"] == 0
    assert data["rounds"]["1"]["turns_that_met_a_full_queue"] == 0
    # Two stories ask at once and the queue holds one job: the other is told the narrator
    # is busy, asks again, and is answered.
    assert data["rounds"]["2"]["queue_full_answers"] >= 1
    assert data["rounds"]["2"]["turns_that_met_a_full_queue"] == 1
    table = report.format()
    assert "| 2 | 2 |" in table
    assert any("ready" in line for line in lines)
    # The run's Redis database is left as it was found: empty.
    client = redis.Redis.from_url(with_database(redis_url, int(report.redis.rsplit("/", 1)[1])))
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


async def test_a_database_holding_keys_is_never_claimed(redis_url: str) -> None:
    first = await RedisClaim.take(redis_url)
    second = await RedisClaim.take(redis_url)
    try:
        assert first.url != second.url
        assert first.url != redis_url and second.url != redis_url
        client = redis.Redis.from_url(first.url)
        try:
            assert client.get(CLAIM_KEY) is not None
        finally:
            client.close()
    finally:
        await second.release()
        await first.release()
