"""Read-only look at a queue: depth, running jobs, oldest job, dead letters, live workers.

It never joins a consumer group or moves a read position, so `taleweaver status` and
the metrics sampler can look at a queue the bot and the workers are using.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.queue.config import QueueConfig
from engine.queue.errors import QueueUnavailable
from engine.queue.memory_queue import MemoryQueue
from engine.queue.presence import WorkerPresence, read_presences
from engine.queue.redis_connection import (
    WORKERS_GROUP,
    StreamKeys,
    close_redis_client,
    redact_url,
    redis_client,
)
from engine.queue.stats import QueueStats


class QueueInspector(ABC):
    """Look at one queue without taking part in it."""

    url: str

    @property
    def in_process(self) -> bool:
        """Tell whether the queue and its worker live inside one process (memory://)."""
        return False

    @abstractmethod
    async def stats(self) -> QueueStats:
        """Return the queue's depth, running jobs, oldest job and dead letters."""

    @abstractmethod
    async def workers(self) -> list[WorkerPresence]:
        """Return the workers whose heartbeat is alive."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class RedisQueueInspector(QueueInspector):
    """Inspect the Redis Streams queue through its own connection."""

    def __init__(self, url: str, config: QueueConfig | None = None) -> None:
        self.url = redact_url(url)
        self.config = config or QueueConfig()
        self._keys = StreamKeys(self.config.key_prefix)
        self._client = redis_client(url, socket_timeout=5.0)

    async def stats(self) -> QueueStats:
        """Return the queue's depth, running jobs, oldest job and dead letters."""
        keys = self._keys
        with self._reachable():
            pipe = self._client.pipeline(transaction=False)
            pipe.xlen(keys.jobs)
            pipe.xrange(keys.jobs, "-", "+", count=1)
            pipe.xlen(keys.dead)
            pipe.time()
            in_flight, first, dead, (seconds, micros) = await pipe.execute()
            running = await self._running()
        oldest = None
        if first:
            # A stream entry's id starts with the Redis server's clock in ms when it was added.
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            oldest = max(0.0, (now_ms - int(first[0][0].split("-")[0])) / 1000)
        running = min(running, int(in_flight))
        return QueueStats(int(in_flight) - running, running, oldest, int(dead))

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            raise QueueUnavailable(self.url, error) from error

    async def _running(self) -> int:
        try:
            summary: Any = await self._client.xpending(self._keys.jobs, WORKERS_GROUP)
        except ResponseError as error:
            if str(error).startswith("NOGROUP"):  # no worker or producer ever opened it
                return 0
            raise
        return int(summary["pending"])

    async def workers(self) -> list[WorkerPresence]:
        """Return the workers whose heartbeat is alive."""
        with self._reachable():
            return await read_presences(self._client, self.config)

    async def close(self) -> None:
        """Close the connection."""
        await close_redis_client(self._client)


class MemoryQueueInspector(QueueInspector):
    """Inspect an in-process queue; from another process there is nothing to see."""

    def __init__(self, url: str, queue: MemoryQueue | None) -> None:
        self.url = url
        self._queue = queue

    @property
    def in_process(self) -> bool:
        """Tell that the queue and its worker live inside the bot or terminal process."""
        return True

    async def stats(self) -> QueueStats:
        """Return the stats of the queue when it is open in this process, else all zero."""
        if self._queue is None:
            return QueueStats(0, 0, None, 0)
        return self._queue.stats(time.time())

    async def workers(self) -> list[WorkerPresence]:
        """Return nothing: an in-process worker has no heartbeat."""
        return []

    async def close(self) -> None:
        """Nothing to release: the queue belongs to whoever opened it."""
