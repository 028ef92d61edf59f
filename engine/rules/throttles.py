"""Per-member and per-channel rate limits, with messages that say when to try again."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.rules.guard import RateLimited, Where
from engine.safety import RateLimiter


@dataclass(frozen=True)
class RateLimits:
    """How much one member or channel may do per minute."""

    commands_per_minute: int = 20
    turns_per_minute: int = 6
    narrations_per_minute: int = 6


class Throttles:
    """The rate limiters of one process; each check raises RateLimited when over its limit."""

    def __init__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        limits = limits or RateLimits()
        self._commands = RateLimiter(limits.commands_per_minute, 60.0, clock=clock)
        self._turns = RateLimiter(limits.turns_per_minute, 60.0, clock=clock)
        self._narrations = RateLimiter(limits.narrations_per_minute, 60.0, clock=clock)

    @staticmethod
    def _refuse(wait: float, what: str, rule: str, where: Where) -> RateLimited:
        seconds = max(1, math.ceil(wait))
        return RateLimited(f"{what} Try again in {seconds} s.", rule=rule, where=where)

    def command(self, where: Where) -> None:
        """Count a member's command."""
        wait = self._commands.hit((where.guild_id, where.user_id))
        if wait is not None:
            raise self._refuse(wait, "You are using commands too quickly.", "rate:commands", where)

    def turn(self, where: Where) -> None:
        """Count a member's turn."""
        wait = self._turns.hit((where.guild_id, where.user_id))
        if wait is not None:
            raise self._refuse(wait, "You are writing turns too quickly.", "rate:turns", where)

    def narration(self, where: Where) -> None:
        """Count a narrator passage asked for in a channel."""
        wait = self._narrations.hit(where.channel_id)
        if wait is not None:
            raise self._refuse(
                wait, "The narrator has spoken a lot here lately.", "rate:narrations", where
            )
