"""Worker heartbeats: each Redis worker says who it is every few seconds, with a TTL.

A worker writes ``P:worker:<name>`` (JSON, expiring after three heartbeats) and
deletes it when it stops, so the keys that exist are the workers alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from types import TracebackType

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.queue.config import QueueConfig
from engine.queue.redis_connection import StreamKeys, close_redis_client, redis_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerPresence:
    """One worker as its heartbeat describes it."""

    worker_id: str
    host: str
    pid: int
    model: str
    quantization: str
    device: str
    max_batch: int
    started_at: float
    last_seen: float
    running_jobs: int = 0

    @classmethod
    def of_this_process(
        cls, worker_id: str, *, model: str, quantization: str, device: str, max_batch: int
    ) -> WorkerPresence:
        """Describe the worker running in this process, seen now."""
        now = time.time()
        return cls(
            worker_id=worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            model=model,
            quantization=quantization,
            device=device,
            max_batch=max_batch,
            started_at=now,
            last_seen=now,
        )

    def to_json(self) -> str:
        """Encode the presence for Redis."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> WorkerPresence:
        """Decode a presence written by to_json (ValueError when it is not one)."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a worker heartbeat is not a JSON object")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"not a worker heartbeat: {error}") from None


def presence_key(keys: StreamKeys, worker_id: str) -> str:
    """Return the Redis key of one worker's heartbeat."""
    return f"{keys.prefix}:worker:{worker_id}"


async def read_presences(client: Redis, config: QueueConfig) -> list[WorkerPresence]:
    """Return the workers whose heartbeat has not expired, by id."""
    keys = StreamKeys(config.key_prefix)
    names = sorted([name async for name in client.scan_iter(match=presence_key(keys, "*"))])
    if not names:
        return []
    found = []
    for name, raw in zip(names, await client.mget(names), strict=True):
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            found.append(WorkerPresence.from_json(str(raw)))
        except ValueError as error:
            log.warning("ignoring unreadable worker heartbeat %s: %s", name, error)
    return found


class WorkerBeacon:
    """Publish a worker's heartbeat until the block ends, then withdraw it."""

    def __init__(
        self,
        url: str,
        presence: WorkerPresence,
        *,
        config: QueueConfig | None = None,
        running_jobs: Callable[[], int] = lambda: 0,
    ) -> None:
        self.config = config or QueueConfig()
        self._client = redis_client(url)
        self._presence = presence
        self._running_jobs = running_jobs
        self._key = presence_key(StreamKeys(self.config.key_prefix), presence.worker_id)
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Write the heartbeat once (it expires after three heartbeat intervals)."""
        self._presence = replace(
            self._presence, last_seen=time.time(), running_jobs=self._running_jobs()
        )
        ttl_ms = max(1, int(3 * self.config.heartbeat_s * 1000))
        await self._client.set(self._key, self._presence.to_json(), px=ttl_ms)

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except (RedisError, OSError) as error:
                log.warning("could not publish the worker's heartbeat: %s", error)
            await asyncio.sleep(self.config.heartbeat_s)

    async def __aenter__(self) -> WorkerBeacon:
        self._task = asyncio.create_task(self._beat_forever(), name="worker-heartbeat")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.withdraw()

    async def withdraw(self) -> None:
        """Delete the heartbeat (the worker is gone at once) and close the connection."""
        try:
            await self._client.delete(self._key)
        except (RedisError, OSError) as error:
            log.warning("could not withdraw the worker's heartbeat: %s", error)
        await close_redis_client(self._client)
