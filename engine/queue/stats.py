"""What a queue holds right now, as the inspector and the metrics report it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueStats:
    """How much work a queue holds right now."""

    waiting: int
    """Jobs no worker has taken yet."""
    running: int
    """Jobs handed to a worker and not finished (or waiting for their retry)."""
    oldest_job_age_s: float | None
    """Age of the oldest job in flight, waiting or running; None when there is none."""
    dead_letters: int
    """Jobs set aside after too many deliveries."""
