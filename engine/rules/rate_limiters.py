"""Where rate limits keep their count: in this process, or in Redis for every bot process.

Several bot processes (or shards) behind one Redis queue must enforce one limit, so
with ``redis://`` the sliding windows live in Redis sorted sets, timed by the Redis
server's clock; with ``memory://`` they stay in this process's memory.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.queue.redis_connection import close_redis_client, redis_client
from engine.safety import RateLimiter

log = logging.getLogger(__name__)


class SlidingWindow(Protocol):
    """At most ``limit`` hits per key in any window of ``per_seconds`` seconds."""

    async def hit(self, key: str) -> float | None:
        """Record a hit and return None, or return the seconds to wait and record nothing."""
        ...


class LocalWindow:
    """A sliding window kept in this process."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def hit(self, key: str) -> float | None:
        """Record a hit and return None, or return the seconds to wait and record nothing."""
        return self._limiter.hit(key)


# KEYS: the window's sorted set. ARGV: limit, window ms, a unique member suffix.
# Returns -1 when the hit is recorded, else the milliseconds to wait.
# Like RateLimiter, a refused hit is not recorded, so waiting the answer lets one in.
_HIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now_ms)
end
redis.call('ZADD', KEYS[1], now_ms, now_ms .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
"""


class RedisWindow:
    """A sliding window in Redis, shared by every process using the same key prefix."""

    def __init__(self, client: Redis, name: str, limit: int, per_seconds: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        self._client = client
        self._name = name
        self.limit = limit
        self.per_seconds = per_seconds
        self._script = client.register_script(_HIT)

    async def hit(self, key: str) -> float | None:
        """Record a hit and return None, or return the seconds to wait and record nothing.

        When Redis cannot be reached the hit is let through: a limit must not stop a
        story that the database can still serve.
        """
        try:
            wait_ms = await self._script(
                keys=[f"{self._name}:{key}"],
                args=[self.limit, int(self.per_seconds * 1000), secrets.token_hex(6)],
            )
        except (RedisError, OSError) as error:
            log.warning("rate limit %s not checked, Redis unavailable: %s", self._name, error)
            return None
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000


WindowFactory = Callable[[str, int, float], SlidingWindow]
"""Builds the window named NAME allowing LIMIT hits per SECONDS."""


class RedisWindows:
    """Open sliding windows in one Redis database under a key prefix; close them together."""

    def __init__(self, url: str, *, prefix: str = "taleweaver") -> None:
        self._client = redis_client(url, decode_responses=False, socket_timeout=5.0)
        self._prefix = prefix

    def __call__(self, name: str, limit: int, per_seconds: float) -> SlidingWindow:
        """Return the shared window NAME."""
        return RedisWindow(self._client, f"{self._prefix}:rate:{name}", limit, per_seconds)

    async def close(self) -> None:
        """Close the Redis connection."""
        await close_redis_client(self._client)
