"""Fault drills: Redis killed and restarted under running stories, nothing restarted by hand.

Each drill runs its own redis-server on a free port (tests/support/redis_drill.py), the
real engine on SQLite (StoryRuntime with its narration supervisor) and a worker loop on
the real Redis queue. Each asserts that every story ends with exactly one narrator
passage, no player sees a raw error, and that it is over within RECOVERY_S of Redis
coming back.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine.actors import Actor
from engine.queue import QueueConfig
from engine.queue.redis_queue import RedisWorkerQueue
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.worker.loop import WorkerLoop
from storage.models import NarratorCadence, TurnKind

from support.recording import RecordingListener
from support.redis_drill import ThrowawayRedis
from support.stories import GUILD, MOD

RECOVERY_S = 60.0
LIMITS = {
    "heartbeat_s": 0.5,
    "visibility_timeout_s": 2.0,
    "block_s": 0.2,
    "redeliver_s": 2.0,
    "max_in_flight": 32,
}


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[ThrowawayRedis]:
    try:
        server = ThrowawayRedis(persistent=request.param)
    except FileNotFoundError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        pytest.skip(str(error))
    server.start()
    yield server
    server.stop()


class GatedProcessor:
    """Text for each job, after the test opens the gate; counts the batches it ran."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.generated: list[str] = []

    def __call__(self, jobs, on_progress):  # type: ignore[no-untyped-def]
        self.started.set()
        self.gate.wait(30)
        self.generated.extend(job.job_id for job in jobs)
        return [(job.job_id, f"The lamp flares over tale {job.session_id}.") for job in jobs]


@pytest.fixture
async def runtime(redis_server: ThrowawayRedis, tmp_path: Path) -> AsyncIterator[StoryRuntime]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'drill.db'}",
        queue_url=redis_server.url,
        narrator_check_interval_s=1.0,
    )
    listener = RecordingListener()
    rt = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, queue_limits=LIMITS
    )
    rt.listener = listener  # type: ignore[attr-defined]
    await rt.configs.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
    yield rt
    await rt.close()


@pytest.fixture
async def worker(redis_server: ThrowawayRedis) -> AsyncIterator[tuple[WorkerLoop, GatedProcessor]]:
    queue = await RedisWorkerQueue.connect(redis_server.url, QueueConfig(**LIMITS))
    processor = GatedProcessor()
    loop = WorkerLoop(queue, processor, max_batch=8, fetch_wait_s=0.5)
    task = asyncio.create_task(loop.run())
    yield loop, processor
    processor.gate.set()
    loop.stop()
    await asyncio.wait_for(task, 10)
    await queue.close()


async def start_stories(rt: StoryRuntime, count: int) -> list[int]:
    """Start COUNT two-player stories and write each one's first turn (narrator due)."""
    ids = []
    for index in range(count):
        channel = 1000 + index
        host, guest = Actor(10 + 2 * index, f"Host{index}"), Actor(11 + 2 * index, f"Guest{index}")
        await rt.story.lifecycle.start(
            guild_id=GUILD,
            channel_id=channel,
            actor=host,
            title=f"Tale {index}",
            genre="fantasy",
            premise="A lighthouse keeper finds a door in the sea.",
        )
        await rt.story.lifecycle.join(channel, guest)
        view = await rt.story.lifecycle.begin(channel, host)
        written = await rt.table.write_turn(channel, host, "The keeper opens the door.")
        assert written.narrator is not None and written.narrator.refusal is None
        ids.append(view.id)
    return ids


async def narrator_turns(rt: StoryRuntime, ids: list[int]) -> dict[int, int]:
    counts = {}
    for story_id in ids:
        turns = await rt.story.queries.turns(story_id)
        counts[story_id] = sum(1 for turn in turns if turn.kind == TurnKind.NARRATOR)
    return counts


async def settled_within(rt: StoryRuntime, ids: list[int], seconds: float) -> float:
    """Wait until no story is pending; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        pending = [s for s in ids if (await rt.story.queries.get(s)).narrator_pending]
        if not pending:
            took = time.monotonic() - started
            print(f"all {len(ids)} stories settled {took:.1f} s after the fault")
            return took
        await asyncio.sleep(0.25)
    raise AssertionError(f"stories still pending after {seconds} s: {pending}")


def assert_no_raw_errors(rt: StoryRuntime) -> None:
    for _, reason in rt.listener.failures:  # type: ignore[attr-defined]
        assert "redis" not in reason.lower() and "Error" not in reason, reason


@pytest.mark.parametrize("redis_server", [True], indirect=True, ids=["append-only"])
async def test_redis_killed_while_a_worker_publishes_its_batch(
    redis_server: ThrowawayRedis, runtime: StoryRuntime, worker
) -> None:
    _, processor = worker
    processor.gate.clear()
    ids = await start_stories(runtime, 4)
    assert await asyncio.to_thread(processor.started.wait, 15)

    redis_server.kill()  # the batch finishes while Redis is down: every publish fails
    processor.gate.set()
    await asyncio.sleep(1.0)
    redis_server.start()
    took = await settled_within(runtime, ids, RECOVERY_S)

    await asyncio.sleep(1.0)  # room for a duplicate to show up
    assert await narrator_turns(runtime, ids) == {story: 1 for story in ids}, took
    assert runtime.listener.failures == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("redis_server", [False], indirect=True, ids=["no-persistence"])
async def test_redis_restarted_empty_with_narrations_queued(
    redis_server: ThrowawayRedis, runtime: StoryRuntime, worker
) -> None:
    _, processor = worker
    processor.gate.clear()
    ids = await start_stories(runtime, 12)
    assert await asyncio.to_thread(processor.started.wait, 15)  # 8 running, 4 waiting

    redis_server.restart(down_s=0.5)  # every job, claim and slot is gone
    processor.gate.set()
    took = await settled_within(runtime, ids, RECOVERY_S)

    await asyncio.sleep(1.0)
    assert await narrator_turns(runtime, ids) == {story: 1 for story in ids}, took
    assert_no_raw_errors(runtime)
    assert runtime.listener.failures == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("redis_server", [False], indirect=True, ids=["no-persistence"])
async def test_redis_down_for_good_hands_every_turn_back_with_a_message(
    redis_server: ThrowawayRedis, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'down.db'}",
        queue_url=redis_server.url,
        narrator_check_interval_s=0.5,
        narrator_requeues=2,
    )
    listener = RecordingListener()
    rt = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, queue_limits=LIMITS
    )
    try:
        await rt.configs.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
        ids = await start_stories(rt, 3)
        redis_server.kill()  # no worker ever runs them, and Redis never comes back

        await settled_within(rt, ids, RECOVERY_S)

        assert sorted(session.id for session, _ in listener.failures) == sorted(ids)
        rt.listener = listener  # type: ignore[attr-defined]
        assert_no_raw_errors(rt)
    finally:
        await rt.close()
