"""`taleweaver status`: what it reports, and when it says something needed is down."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from engine.ops.status import check_status
from engine.queue import GenerationJob, open_queue, open_worker_queue
from engine.queue.presence import WorkerBeacon, WorkerPresence
from engine.story import StoryService
from storage.migrate import head_revision, upgrade

from support.protocol import narrate_request
from support.stories import ALICE, BOB, CHANNEL, started

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


async def _stories(sessions: async_sessionmaker[AsyncSession]) -> None:
    service = StoryService.create(sessions)
    await started(service, ALICE, BOB)  # active, narrator due after Alice writes
    await service.turns.submit_turn(CHANNEL, ALICE, "I open the door.")
    await started(service, BOB, channel=CHANNEL + 1, begin=False)  # lobby
    await started(service, ALICE, channel=CHANNEL + 2)
    await service.lifecycle.pause(CHANNEL + 2, ALICE)


async def test_a_migrated_database_with_stories_is_healthy_and_counted(
    database_url: str, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await _stories(session_factory)
    report = await check_status(database_url, "memory://")
    assert report.healthy, report.problems
    assert report.database.revision == head_revision() and report.database.at_head
    assert report.stories is not None
    assert report.stories.by_state == {"lobby": 1, "active": 1, "paused": 1, "ended": 0}
    assert report.stories.narrations_pending == {"lobby": 0, "active": 1, "paused": 0, "ended": 0}
    assert report.queue.in_process
    assert "1 waiting for the narrator" in report.format()


async def test_a_missing_sqlite_file_is_down_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing.db"
    report = await check_status(f"sqlite+aiosqlite:///{path}", "memory://")
    assert not report.healthy
    assert report.problems == ["the database is unreachable"]
    assert "run `taleweaver migrate`" in report.format()
    assert not path.exists()


async def test_a_database_behind_the_newest_migration_is_unhealthy(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await upgrade(url, "0002")
    report = await check_status(url, "memory://")
    assert report.problems == [f"the database is at revision 0002, not {head_revision()}"]


async def test_an_unreachable_postgres_is_down_without_its_password() -> None:
    url = "postgresql+asyncpg://story:db-secret@127.0.0.1:1/stories"
    report = await check_status(url, "memory://", timeout_s=5)
    assert report.problems == ["the database is unreachable"]
    text = report.format() + json.dumps(report.to_dict())
    assert "db-secret" not in text and "story:***@127.0.0.1:1" in text


async def test_an_unreachable_queue_matters_only_when_needed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"
    await upgrade(url)
    down = await check_status(url, UNREACHABLE_REDIS)
    assert down.problems == ["the queue is unreachable"]
    assert "DOWN" in down.format()
    only_db = await check_status(url, UNREACHABLE_REDIS, needs=("database",))
    assert only_db.healthy


def _job(session_id: int) -> GenerationJob:
    return GenerationJob(f"job-{session_id}", session_id, narrate_request())


async def test_redis_depth_running_oldest_job_dead_letters_and_workers(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"
    await upgrade(db)
    limits = {"key_prefix": key_prefix, "max_deliveries": 1, "heartbeat_s": 0.2}
    producer = await open_queue(redis_url, **limits)
    worker = await open_worker_queue(redis_url, worker_name="w-1", **limits)
    try:
        empty = await check_status(db, redis_url, needs=("queue",), queue_limits=limits)
        assert empty.healthy
        assert empty.queue.stats is not None and empty.queue.stats.oldest_job_age_s is None
        for session_id in (1, 2, 3):
            await producer.enqueue(_job(session_id))
        [first] = await worker.fetch(1, 1.0)
        [second] = await worker.fetch(1, 1.0)
        await worker.fail(second, "the model broke")  # max_deliveries=1: dead-lettered
        await asyncio.sleep(0.05)
        nobody = await check_status(db, redis_url, needs=("workers",), queue_limits=limits)
        assert nobody.problems == ["no worker is alive"]
        stats = nobody.queue.stats
        assert stats is not None
        assert (stats.waiting, stats.running, stats.dead_letters) == (1, 1, 1)
        assert stats.oldest_job_age_s is not None and 0.05 <= stats.oldest_job_age_s < 30

        presence = WorkerPresence.of_this_process(
            "w-1", model="smollm2-135m", quantization="nf4", device="cpu", max_batch=8
        )
        config = worker.config  # type: ignore[attr-defined]
        async with WorkerBeacon(redis_url, presence, config=config, running_jobs=lambda: 1):
            await asyncio.sleep(0.1)
            alive = await check_status(
                db, redis_url, needs=("workers", "host-worker"), queue_limits=limits
            )
        assert alive.healthy, alive.problems
        [seen] = alive.queue.workers
        assert (seen.worker_id, seen.host, seen.model, seen.device, seen.max_batch) == (
            "w-1", socket.gethostname(), "smollm2-135m", "cpu", 8
        )
        assert seen.running_jobs == 1
        data = alive.to_dict()
        assert data["queue"]["workers"][0]["quantization"] == "nf4"
        assert 0 <= data["queue"]["workers"][0]["seconds_since_seen"] < 5
        assert "w-1  host" in alive.format()
        gone = await check_status(db, redis_url, needs=("workers",), queue_limits=limits)
        assert gone.problems == ["no worker is alive"], "a stopped worker withdraws at once"
        assert first.job.job_id == "job-1"
    finally:
        await worker.close()
        await producer.close()


async def test_a_heartbeat_expires_when_its_worker_dies(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"
    await upgrade(db)
    limits = {"key_prefix": key_prefix, "heartbeat_s": 0.1}
    worker = await open_worker_queue(redis_url, worker_name="w-2", **limits)
    presence = WorkerPresence.of_this_process(
        "w-2", model="m", quantization="none", device="cpu", max_batch=1
    )
    beacon = WorkerBeacon(redis_url, presence, config=worker.config)  # type: ignore[attr-defined]
    try:
        await beacon.beat()  # one heartbeat, then silence, as from a killed process
        seen = await check_status(db, redis_url, needs=("workers",), queue_limits=limits)
        assert [w.worker_id for w in seen.queue.workers] == ["w-2"]
        await asyncio.sleep(0.45)
        dead = await check_status(db, redis_url, needs=("workers",), queue_limits=limits)
        assert dead.queue.workers == []
        assert dead.problems == ["no worker is alive"]
    finally:
        await beacon.withdraw()
        await worker.close()


def test_the_command_prints_json_and_exits_1_when_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["healthy"] is False and data["database"]["reachable"] is False
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "status    healthy (needs: database, queue)"
    monkeypatch.setenv("TALEWEAVER_QUEUE_URL", UNREACHABLE_REDIS)
    from engine.settings import reset_settings

    reset_settings()
    assert main(["status", "--need", "database"]) == 0
    assert main(["status", "--need", "database,queue"]) == 1
    with pytest.raises(SystemExit):
        main(["status", "--need", "everything"])
