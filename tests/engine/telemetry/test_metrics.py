"""The /metrics endpoint: served when a port is set, listing every metric the README names."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.discord.http_metrics import discord_http_trace
from engine.ops.metrics_sampler import OperationsSampler, count_database_errors
from engine.queue import GenerationJob, MemoryQueue, ProgressCallback
from engine.queue.inspection import MemoryQueueInspector
from engine.queue.instrumented import InstrumentedProcessor, InstrumentedWorkerQueue
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.telemetry.metrics import count_generated_tokens, serve_metrics, start_metrics_endpoint
from engine.worker.loop import WorkerLoop
from storage.database import create_engine, create_session_factory

from support.protocol import narrate_request
from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, started

README = Path(__file__).resolve().parents[3] / "README.md"


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        body = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def _taleweaver_metric_names() -> set[str]:
    return {
        family.name
        for family in REGISTRY.collect()
        if family.name.startswith("taleweaver_")
    }


def test_the_endpoint_serves_every_metric_and_the_readme_lists_them_all() -> None:
    with serve_metrics("127.0.0.1", 0) as endpoint:
        assert endpoint is not None and endpoint.port > 0
        scraped = _scrape(endpoint.port)
    assert "taleweaver_queue_depth" in scraped
    assert "process_cpu_seconds_total" in scraped or "python_info" in str(scraped)
    documented = set(re.findall(r"`(taleweaver_[a-z_]+)`", README.read_text()))
    # Counters are collected under their name without _total.
    defined = {
        name + "_total" if f"{name}_total" in documented else name
        for name in _taleweaver_metric_names()
    }
    assert defined == documented


def test_no_port_serves_nothing() -> None:
    with serve_metrics("127.0.0.1", None) as endpoint:
        assert endpoint is None


def test_a_busy_port_is_an_error() -> None:
    first = start_metrics_endpoint("127.0.0.1", 0)
    try:
        with pytest.raises(OSError), serve_metrics("127.0.0.1", first.port):
            pass
    finally:
        first.close()


class _Narrator:
    """A batch processor that reports progress and counts the tokens it 'generates'."""

    def __call__(
        self, jobs: list[GenerationJob], on_progress: ProgressCallback
    ) -> Sequence[tuple[str, str | Exception]]:
        for job in jobs:
            on_progress(job.job_id, "The sea")
        time.sleep(0.05)
        count_generated_tokens(10 * len(jobs))
        return [(job.job_id, "The sea stirs.") for job in jobs]


async def test_a_worker_measures_batches_first_text_tokens_and_outcomes() -> None:
    queue = MemoryQueue()
    before = {
        "batches": _value("taleweaver_worker_batch_size_count"),
        "first_text": _value("taleweaver_time_to_first_text_seconds_count"),
        "completed": _value("taleweaver_worker_jobs_total", {"outcome": "completed"}),
        "generation": _value("taleweaver_generation_seconds_count", {"kind": "narrate"}),
        "tokens": _value("taleweaver_generated_tokens_total"),
    }
    processor = InstrumentedProcessor(_Narrator())
    loop = WorkerLoop(InstrumentedWorkerQueue(queue), processor, progress_interval_s=0.0)
    for session_id in (1, 2, 3):
        await queue.enqueue(GenerationJob(f"j{session_id}", session_id, narrate_request()))
    assert await loop.run_once(wait_s=1.0) == 3
    assert _value("taleweaver_worker_batch_size_count") == before["batches"] + 1
    assert _value("taleweaver_worker_batch_size_sum") >= 3
    assert _value("taleweaver_time_to_first_text_seconds_count") == before["first_text"] + 3
    assert (
        _value("taleweaver_worker_jobs_total", {"outcome": "completed"})
        == before["completed"] + 3
    )
    assert (
        _value("taleweaver_generation_seconds_count", {"kind": "narrate"})
        == before["generation"] + 3
    )
    assert _value("taleweaver_generated_tokens_total") == before["tokens"] + 30
    assert 0 < _value("taleweaver_tokens_per_second") <= 30 / 0.05
    assert processor.jobs_in_flight == 0 and _value("taleweaver_worker_jobs_in_flight") == 0
    await queue.close()


async def test_the_sampler_sets_queue_and_story_gauges(session_factory) -> None:  # type: ignore[no-untyped-def]
    from engine.story import StoryService

    service = StoryService.create(session_factory)
    await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "I open the door.")
    queue = MemoryQueue()
    await queue.enqueue(GenerationJob("waiting", 9, narrate_request()))
    sampler = OperationsSampler(session_factory, MemoryQueueInspector("memory://", queue))
    await sampler.sample()
    assert _value("taleweaver_queue_depth") == 1
    assert _value("taleweaver_queue_jobs_running") == 0
    assert _value("taleweaver_queue_oldest_job_age_seconds") >= 0
    assert _value("taleweaver_workers_alive") == 1
    assert _value("taleweaver_stories", {"state": "active"}) == 1
    assert _value("taleweaver_narrations_pending", {"state": "active"}) == 1
    assert _value("taleweaver_narrations_pending", {"state": "paused"}) == 0
    await queue.close()


async def test_database_errors_are_counted_by_class(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    count_database_errors(engine)
    before = _value("taleweaver_database_errors_total", {"kind": "OperationalError"})
    try:
        async with create_session_factory(engine)() as db:
            with pytest.raises(OperationalError):
                await db.execute(text("SELECT * FROM no_such_table"))
    finally:
        await engine.dispose()
    after = _value("taleweaver_database_errors_total", {"kind": "OperationalError"})
    assert after == before + 1


async def test_discord_429s_and_failed_posts_are_counted(unused_tcp_port: int) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.json_response(
            {"retry_after": 0.1, "global": False},
            status=429,
            headers={"X-RateLimit-Scope": "user"},
        )

    async def forbidden(request: web.Request) -> web.Response:
        return web.json_response({"code": 50013, "message": "Missing Permissions"}, status=403)

    app = web.Application()
    app.router.add_post("/api/v10/channels/1/messages", forbidden)
    app.router.add_patch("/api/v10/channels/1/messages/2", limited)
    app.router.add_get("/api/v10/channels/1", forbidden)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    base = f"http://127.0.0.1:{unused_tcp_port}/api/v10"
    limits_before = _value("taleweaver_discord_rate_limits_total", {"scope": "user"})
    failed_before = _value("taleweaver_discord_failed_posts_total", {"status": "403"})
    try:
        async with aiohttp.ClientSession(trace_configs=[discord_http_trace()]) as http:
            for method, path in [
                ("POST", "/channels/1/messages"),
                ("PATCH", "/channels/1/messages/2"),
                ("GET", "/channels/1"),  # not a post: a 403 here is no failed post
            ]:
                async with http.request(method, base + path) as response:
                    await response.read()
    finally:
        await runner.cleanup()
    assert _value("taleweaver_discord_rate_limits_total", {"scope": "user"}) == limits_before + 1
    assert _value("taleweaver_discord_failed_posts_total", {"status": "403"}) == failed_before + 1


async def test_the_bot_runtime_serves_metrics_when_a_port_is_set(tmp_path: Path) -> None:
    listener = RecordingListener()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'rt.db'}",
        queue_url=f"memory://metrics-{uuid.uuid4().hex}",
        metrics_port=1,  # replaced below: any free port
    )
    settings = settings.model_copy(update={"metrics_port": 0})

    async def processor() -> _Narrator:
        return _Narrator()

    completed = _value("taleweaver_worker_jobs_total", {"outcome": "completed"})
    runtime = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, processor_factory=processor
    )
    try:
        assert runtime.metrics_port is not None
        await started(runtime.story, ALICE, BOB)
        await runtime.table.write_turn(CHANNEL, ALICE, "I open the door.")
        await listener.wait_for(lambda: listener.stored, seconds=30)
        scraped = await asyncio.to_thread(_scrape, runtime.metrics_port)
        assert scraped['taleweaver_worker_jobs_total{outcome="completed"}'] >= completed + 1
        assert 'taleweaver_stories{state="lobby"}' in scraped
        assert "taleweaver_queue_depth" in scraped
    finally:
        port = runtime.metrics_port
        await runtime.close()
    assert runtime.metrics_port is None
    with pytest.raises(OSError):
        await asyncio.to_thread(_scrape, port)
