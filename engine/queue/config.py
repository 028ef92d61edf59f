"""Limits and timings shared by every queue implementation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueConfig:
    """Validated queue limits; build it from keyword arguments of ``open_queue``."""

    max_in_flight: int = 32
    """Most jobs waiting or running at once; more gives QueueFull."""
    max_deliveries: int = 3
    """Times a job is handed to a worker before it is dead-lettered."""
    heartbeat_s: float = 5.0
    """How often a worker renews its claim on the jobs it is running."""
    visibility_timeout_s: float | None = None
    """Silence after which a running job is taken over (default: 3 heartbeats).

    It is also the delay before a failed job is retried.
    """
    session_slot_ttl_s: float = 6 * 3600
    """Safety net: a session's in-flight slot expires after this even if never released."""
    progress_maxlen: int = 1000
    """Progress events kept for a slow producer; older ones are dropped."""
    key_prefix: str = "taleweaver"
    """Prefix of every Redis key the queue uses."""
    producer_name: str = "bot"
    """Consumer name of the producer; keep it stable so a restart finds unacknowledged results."""
    worker_name: str | None = None
    """Consumer name of a worker (default: host, process id and a random suffix)."""
    block_s: float = 1.0
    """Longest single wait on Redis, so close() and stop requests are noticed."""
    redeliver_s: float = 15.0
    """How often final events delivered but not acknowledged (their result could not be
    stored, e.g. while the database was down) are offered again."""

    def __post_init__(self) -> None:
        for name in ("max_in_flight", "max_deliveries", "progress_maxlen"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("heartbeat_s", "session_slot_ttl_s", "block_s", "redeliver_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.visibility_timeout_s is not None and self.visibility_timeout_s <= self.heartbeat_s:
            raise ValueError("visibility_timeout_s must be longer than heartbeat_s")
        if not self.key_prefix:
            raise ValueError("key_prefix must not be empty")

    @property
    def visibility_timeout(self) -> float:
        """Return the effective visibility timeout in seconds."""
        if self.visibility_timeout_s is None:
            return 3 * self.heartbeat_s
        return self.visibility_timeout_s
