"""An in-process sliding-window rate limiter."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

# Forgotten keys (users who went quiet) are dropped after this many hits.
_SWEEP_EVERY = 1024


class RateLimiter:
    """Allow at most ``limit`` hits per key in any window of ``per_seconds`` seconds."""

    def __init__(
        self, limit: int, per_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        self.limit = limit
        self.per_seconds = per_seconds
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def hit(self, key: Hashable) -> float | None:
        """Record a hit and return None, or return the seconds to wait and record nothing.

        A refused hit does not count, so someone who waits the returned time is let in.
        """
        with self._lock:
            now = self._clock()
            hits = self._hits.setdefault(key, deque())
            self._forget_old(hits, now)
            if len(hits) >= self.limit:
                return hits[0] + self.per_seconds - now
            hits.append(now)
            self._since_sweep += 1
            if self._since_sweep >= _SWEEP_EVERY:
                self._sweep(now)
            return None

    def _forget_old(self, hits: deque[float], now: float) -> None:
        while hits and hits[0] <= now - self.per_seconds:
            hits.popleft()

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        for key in list(self._hits):
            self._forget_old(self._hits[key], now)
            if not self._hits[key]:
                del self._hits[key]
