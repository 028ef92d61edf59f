"""Per-member and per-channel rate limits, with messages that say when to try again."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.rules.guard import RateLimited, Where
from engine.rules.rate_limiters import LocalWindow, RedisWindows, WindowFactory
from engine.safety import RateLimiter
from engine.telemetry.metrics import RATE_LIMIT_REFUSALS


@dataclass(frozen=True)
class RateLimits:
    """How much one member or channel may do per minute."""

    commands_per_minute: int = 20
    turns_per_minute: int = 6
    narrations_per_minute: int = 6


class Throttles:
    """The rate limiters of the bot; each check raises RateLimited when over its limit.

    By default they count in this process; ``Throttles.shared`` counts in Redis, so
    every bot process using that Redis enforces one limit.
    """

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        windows: WindowFactory | None = None,
    ) -> None:
        limits = limits or RateLimits()

        def local(name: str, limit: int, per_seconds: float) -> LocalWindow:
            return LocalWindow(RateLimiter(limit, per_seconds, clock=clock))

        make = windows or local
        self._commands = make("commands", limits.commands_per_minute, 60.0)
        self._turns = make("turns", limits.turns_per_minute, 60.0)
        self._narrations = make("narrations", limits.narrations_per_minute, 60.0)
        self._redis: RedisWindows | None = None

    @classmethod
    def shared(
        cls, redis_url: str, limits: RateLimits | None = None, *, prefix: str = "taleweaver"
    ) -> Throttles:
        """Return throttles whose counts live in Redis, shared by every bot process."""
        redis = RedisWindows(redis_url, prefix=prefix)
        throttles = cls(limits, windows=redis)
        throttles._redis = redis
        return throttles

    async def close(self) -> None:
        """Release the Redis connection of shared throttles."""
        if self._redis is not None:
            await self._redis.close()

    @staticmethod
    def _refuse(wait: float, what: str, rule: str, where: Where) -> RateLimited:
        RATE_LIMIT_REFUSALS.labels(rule).inc()
        seconds = max(1, math.ceil(wait))
        return RateLimited(f"{what} Try again in {seconds} s.", rule=rule, where=where)

    async def command(self, where: Where) -> None:
        """Count a member's command."""
        wait = await self._commands.hit(f"{where.guild_id}:{where.user_id}")
        if wait is not None:
            raise self._refuse(wait, "You are using commands too quickly.", "rate:commands", where)

    async def turn(self, where: Where) -> None:
        """Count a member's turn."""
        wait = await self._turns.hit(f"{where.guild_id}:{where.user_id}")
        if wait is not None:
            raise self._refuse(wait, "You are writing turns too quickly.", "rate:turns", where)

    async def narration(self, where: Where) -> None:
        """Count a narrator passage asked for in a channel."""
        wait = await self._narrations.hit(str(where.channel_id))
        if wait is not None:
            raise self._refuse(
                wait, "The narrator has spoken a lot here lately.", "rate:narrations", where
            )
