"""Errors raised by the job queue.

Refusals (busy, full) are worded so front-ends can show them to players; an unreachable
queue is also an ``OperatorError``, worded for the person hosting the bot.
"""

from __future__ import annotations

from engine.errors import OperatorError
from engine.protocol.errors import JobRejected as JobRejected


class QueueError(Exception):
    """Base class of job queue errors."""


class SessionBusy(QueueError):
    """The session already has a job in flight (at most one per session)."""

    def __init__(self, session_id: int, job_id: str | None = None) -> None:
        super().__init__(
            "The narrator is still working on this story; wait for it to finish, then try again."
        )
        self.session_id = session_id
        self.job_id = job_id


class QueueFull(QueueError):
    """The queue holds as many waiting and running jobs as it is allowed."""

    def __init__(self, in_flight: int, limit: int) -> None:
        super().__init__(
            f"The narrator is busy: {in_flight} stories are waiting, try again in a moment."
        )
        self.in_flight = in_flight
        self.limit = limit


class QueueUnavailable(QueueError, OperatorError):
    """The queue's server cannot be reached."""

    def __init__(self, url: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"Cannot reach the job queue at {url}{detail}. Check that Redis is running "
            "there and that TALEWEAVER_QUEUE_URL points to it."
        )
        self.url = url


class QueueClosed(QueueError):
    """The queue was used after close()."""

    def __init__(self) -> None:
        super().__init__("The job queue is closed.")


class JobCancelled(Exception):
    """The story no longer wants the job (undone, skipped, ended): it stops, never retried."""

    def __init__(self) -> None:
        super().__init__("cancelled: the story no longer wants this passage")
