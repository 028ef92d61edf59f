"""A minimum interval between edits of one message, with an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable

MonotonicClock = Callable[[], float]


class EditThrottle:
    """Tell how long to wait before the next edit so edits are at least INTERVAL apart."""

    def __init__(self, interval: float, clock: MonotonicClock = time.monotonic) -> None:
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.interval = interval
        self._clock = clock
        self._last: float | None = None

    def wait_time(self) -> float:
        """Return the seconds until an edit is allowed (0 when it is allowed now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval - self._clock())

    def mark(self) -> None:
        """Record that an edit happened now."""
        self._last = self._clock()
