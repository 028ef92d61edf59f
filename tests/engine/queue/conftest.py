"""Fixtures for queue tests: the real Redis (skip, or fail with CI=true), backends, event logs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.queue import (
    FinalEvent,
    JobEvent,
    JobProgress,
    JobQueue,
    MemoryQueue,
    QueueConfig,
    RedisJobQueue,
    RedisWorkerQueue,
    WorkerQueue,
)

REDIS_URL = os.environ.get("TALEWEAVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Short timings so crash recovery is seen within seconds.
FAST_LIMITS: dict[str, Any] = {
    "heartbeat_s": 0.2,
    "visibility_timeout_s": 0.6,
    "block_s": 0.1,
    "max_deliveries": 3,
    "max_in_flight": 16,
}


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.RedisError as error:
        message = f"Redis is not reachable at {REDIS_URL}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"taleweaver-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


TEARDOWN_S = 10.0


class EventLog:
    """Collect a producer's events in a background task."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.events: list[JobEvent] = []
        self._arrivals: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.queue.events():
            self.events.append(event)
            self._arrivals.put_nowait(event)

    async def next_event(self, within_s: float = 5.0) -> JobEvent:
        return await asyncio.wait_for(self._arrivals.get(), within_s)

    async def next_final(self, within_s: float = 5.0) -> FinalEvent:
        async with asyncio.timeout(within_s):
            while True:
                event = await self._arrivals.get()
                if not isinstance(event, JobProgress):
                    return event

    async def next_progress(self, within_s: float = 5.0) -> JobProgress:
        async with asyncio.timeout(within_s):
            while True:
                event = await self._arrivals.get()
                if isinstance(event, JobProgress):
                    return event

    async def no_final_within(self, seconds: float) -> bool:
        try:
            await self.next_final(seconds)
        except TimeoutError:
            return True
        return False

    def finals(self) -> list[FinalEvent]:
        return [event for event in self.events if not isinstance(event, JobProgress)]

    async def stop(self) -> None:
        self._task.cancel()
        # Bounded: a read cut off inside redis-py has been seen to linger once in many runs;
        # teardown must not hang the suite on it (the test's own assertions already ran).
        # asyncio.wait neither cancels nor waits past its timeout (wait_for would do both).
        await asyncio.wait({self._task}, timeout=TEARDOWN_S)


class Backend:
    """Open producer and worker ends of one queue implementation; close them all at the end."""

    def __init__(self, name: str, url: str, prefix: str) -> None:
        self.name = name
        self.url = url
        self.prefix = prefix
        self.memory: MemoryQueue | None = None
        self._opened: list[JobQueue | WorkerQueue] = []
        self._logs: list[EventLog] = []

    def config(self, **overrides: Any) -> QueueConfig:
        return QueueConfig(**{**FAST_LIMITS, "key_prefix": self.prefix, **overrides})

    async def producer(self, **overrides: Any) -> JobQueue:
        if self.name == "memory":
            return self._memory(**overrides)
        queue = await RedisJobQueue.connect(self.url, self.config(**overrides))
        self._opened.append(queue)
        return queue

    async def worker(self, **overrides: Any) -> WorkerQueue:
        if self.name == "memory":
            return self._memory(**overrides)
        queue = await RedisWorkerQueue.connect(self.url, self.config(**overrides))
        self._opened.append(queue)
        return queue

    async def restart_producer(self, old: JobQueue, log: EventLog) -> JobQueue:
        """Drop the producer's event iteration; for Redis also its connection (a new process)."""
        await log.stop()
        if self.name == "memory":
            return old  # an in-process queue dies with its process; restart = new iteration
        await old.close()
        return await self.producer()

    async def dead_letter_count(self) -> int:
        if self.memory is not None:
            return len(self.memory.dead_letters)
        client = redis.asyncio.Redis.from_url(self.url)
        try:
            return int(await client.xlen(f"{self.prefix}:dead"))
        finally:
            await client.aclose()

    def watch(self, queue: JobQueue) -> EventLog:
        log = EventLog(queue)
        self._logs.append(log)
        return log

    def _memory(self, **overrides: Any) -> MemoryQueue:
        if self.memory is None:
            self.memory = MemoryQueue(self.config(**overrides))
            self._opened.append(self.memory)
        return self.memory

    async def close(self) -> None:
        for log in self._logs:
            await log.stop()
        for queue in self._opened:
            await asyncio.wait({asyncio.ensure_future(queue.close())}, timeout=TEARDOWN_S)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
    else:
        url, prefix = "memory://", "unused"
    opened = Backend(request.param, url, prefix)
    yield opened
    await opened.close()


class RedisEnds:
    """Open Redis queue ends with a given config; close them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._queues: list[RedisJobQueue | RedisWorkerQueue] = []
        self._logs: list[EventLog] = []

    async def producer(self, config: QueueConfig) -> RedisJobQueue:
        queue = await RedisJobQueue.connect(self.url, config)
        self._queues.append(queue)
        return queue

    async def worker(self, config: QueueConfig) -> RedisWorkerQueue:
        queue = await RedisWorkerQueue.connect(self.url, config)
        self._queues.append(queue)
        return queue

    def watch(self, queue: JobQueue) -> EventLog:
        log = EventLog(queue)
        self._logs.append(log)
        return log

    async def close(self) -> None:
        for log in self._logs:
            await log.stop()
        for queue in self._queues:
            await queue.close()


@pytest.fixture
async def redis_ends(redis_url: str, key_prefix: str) -> AsyncIterator[RedisEnds]:
    # Depends on key_prefix so the ends close before their keys are deleted.
    opened = RedisEnds(redis_url)
    yield opened
    await opened.close()
