"""The bot with the real Redis queue and a separate model worker loop, as deployed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis

from engine.narrator.coordinator import NarrationListener
from engine.queue import open_worker_queue
from engine.runtime import StoryRuntime
from engine.story.deadlines import TimeoutListener
from engine.worker.loop import WorkerLoop
from storage.models import TurnKind

from conftest import service_missing

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

REDIS_URL = os.environ.get("TALEWEAVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Short waits on Redis so the bot and the worker stop promptly at the end.
QUEUE_TIMINGS: dict[str, Any] = {"heartbeat_s": 0.2, "visibility_timeout_s": 1.0, "block_s": 0.1}


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """Return a key prefix of this test's own; delete its keys afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        service_missing(f"Redis at {REDIS_URL}", exc)
    prefix = f"taleweaver-e2e:{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def model_worker(table: StoryTable, key_prefix: str) -> AsyncIterator[WorkerLoop]:
    """Run a worker loop with the tiny model on the Redis queue, beside the bot."""
    queue = await open_worker_queue(
        REDIS_URL, key_prefix=key_prefix, worker_name="e2e-worker", **QUEUE_TIMINGS
    )
    loop = WorkerLoop(queue, table.narrator())
    task = asyncio.create_task(loop.run(), name="e2e-model-worker")
    try:
        yield loop
    finally:
        loop.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await queue.close()


async def test_a_round_is_narrated_through_redis_by_a_separate_worker(
    table: StoryTable, key_prefix: str, model_worker: WorkerLoop
) -> None:
    settings = table.settings(queue_url=REDIS_URL)

    async def open_runtime(
        listener: NarrationListener, on_timeout: TimeoutListener
    ) -> StoryRuntime:
        return await StoryRuntime.open(
            settings,
            listener=listener,
            on_timeout=on_timeout,
            clock=table.clock,
            queue_limits={"key_prefix": key_prefix, **QUEUE_TIMINGS},
        )

    async with table.running(runtime_factory=open_runtime) as bot:
        assert bot.runtime._worker is None, "the bot runs no model of its own"
        await table.short_passages()
        await table.start_story("alice", "bob", "cara")
        for writer, following in (("alice", "bob"), ("bob", "cara")):
            turn = await table.say(writer, f"{writer.title()} rows toward the lighthouse.")
            passage = await table.passage(after=turn)
            await table.ping(following, after=passage)
        turns = await table.turns()
        assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR] * 2
        assert [t.discord_message_id for t in turns if t.kind == TurnKind.NARRATOR] == [
            m.id for m in table.bot_messages() if m.custom_ids()
        ]
    ids = [table.user(name).id for name in ("bob", "cara")]
    assert [users for _, users in table.audit_mentions()] == [[ids[0]], [ids[1]]]
