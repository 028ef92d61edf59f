"""Redis client, key layout and consumer groups shared by both Redis queue ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.queue import redis_scripts
from engine.queue.config import QueueConfig
from engine.queue.errors import QueueUnavailable
from engine.telemetry.metrics import QUEUE_ERRORS

log = logging.getLogger(__name__)

WORKERS_GROUP = "workers"
PRODUCERS_GROUP = "producers"

T = TypeVar("T")


@dataclass(frozen=True)
class StreamKeys:
    """Name every Redis key of one queue under a common prefix."""

    prefix: str

    @property
    def jobs(self) -> str:
        """Return the stream of jobs in flight (waiting or running), read by ``workers``."""
        return f"{self.prefix}:jobs"

    @property
    def results(self) -> str:
        """Return the stream of final events, read by ``producers``."""
        return f"{self.prefix}:results"

    @property
    def progress(self) -> str:
        """Return the capped stream of progress events, read by ``producers``."""
        return f"{self.prefix}:progress"

    @property
    def dead(self) -> str:
        """Return the stream of dead-lettered jobs."""
        return f"{self.prefix}:dead"

    @property
    def job_entries(self) -> str:
        """Return the hash from job id to its entry id in the jobs stream."""
        return f"{self.prefix}:job-entries"

    def session_slot(self, session_id: int) -> str:
        """Return the key holding the id of the session's job in flight."""
        return f"{self.prefix}:session:{session_id}"

    def cancelled(self, job_id: str) -> str:
        """Return the key that is set while a job is cancelled (it expires on its own)."""
        return f"{self.prefix}:cancelled:{job_id}"


def redis_client(
    url: str, *, decode_responses: bool = True, socket_timeout: float | None = None
) -> Redis:
    """Open a Redis client that survives a server restart.

    redis-py's ``from_url`` retries nothing: after Redis restarts, the first command on
    each pooled connection fails with "Connection closed by server". Retrying connection
    errors (a few times, backing off up to a second) reconnects instead, and the health
    check pings connections idle for a while before they are used.
    """
    return Redis.from_url(
        url,
        decode_responses=decode_responses,
        socket_connect_timeout=5.0,
        socket_timeout=socket_timeout,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
    )


async def close_redis_client(client: Redis) -> None:
    """Close a client from ``redis_client`` without letting its retries reconnect.

    A blocking read cut short by the close fails with a connection error; with retries
    still on, it would open a fresh connection that nobody closes.
    """
    pool = client.connection_pool
    # Each connection holds its own copy of the retry policy, read again after each
    # failure: a call in progress on it stops retrying too.
    for connection in (*pool._available_connections, *pool._in_use_connections):
        connection.retry.update_retries(0)
    pool.connection_kwargs["retry"] = Retry(NoBackoff(), 0)
    await client.aclose()


def redact_url(url: str) -> str:
    """Return the URL with its password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return url
    userinfo, host = netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}{slash}{path}"


def _reraise_swallowed_cancellation() -> None:
    # redis-py can turn a cancellation that lands during a blocking XREADGROUP
    # into an empty reply (seen with redis-py 8.1 on Python 3.11); without this
    # a cancelled reader loop would keep running.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


class RedisConnection:
    """Own one Redis client for a queue end and translate outages into QueueUnavailable."""

    def __init__(self, url: str, config: QueueConfig) -> None:
        self.url = redact_url(url)
        self.config = config
        self.keys = StreamKeys(config.key_prefix)
        self.client = redis_client(url)
        self.enqueue_script = self.client.register_script(redis_scripts.ENQUEUE)
        self.position_script = self.client.register_script(redis_scripts.POSITION)
        self.finish_script = self.client.register_script(redis_scripts.FINISH)
        self.renew_script = self.client.register_script(redis_scripts.RENEW)
        self.release_script = self.client.register_script(redis_scripts.RELEASE)
        self.ack_script = self.client.register_script(redis_scripts.ACK)

    @contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn connection failures inside the block into QueueUnavailable."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            QUEUE_ERRORS.labels("unavailable").inc()
            raise QueueUnavailable(self.url, error) from error

    async def open(self) -> None:
        """Check that Redis answers and create the consumer groups."""
        with self.reachable():
            await self.client.ping()
            await self.ensure_groups()

    async def ensure_groups(self) -> None:
        """Create the streams and consumer groups that do not exist yet."""
        keys = self.keys
        for stream, group, start in (
            (keys.jobs, WORKERS_GROUP, "0"),
            (keys.results, PRODUCERS_GROUP, "0"),
            (keys.progress, PRODUCERS_GROUP, "$"),
        ):
            try:
                await self.client.xgroup_create(stream, group, start, mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def with_groups(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a call, recreating the groups once if Redis lost them (e.g. after FLUSHALL)."""
        with self.reachable():
            try:
                result = await call()
            except ResponseError as error:
                # NOGROUP: the stream is gone; UNBLOCKED: it was deleted during a blocking read.
                if not str(error).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                log.warning("queue streams at %s were missing; recreating them", self.url)
                await self.ensure_groups()
                result = await call()
        _reraise_swallowed_cancellation()
        return result

    async def close(self) -> None:
        """Close the client and its connections."""
        await close_redis_client(self.client)
