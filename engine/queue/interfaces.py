"""The two ends of the job queue: the producer (story engine) and the workers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from engine.queue.jobs import GenerationJob, JobEvent

ProgressCallback = Callable[[str, str], None]
"""Called from the processor's thread with (job_id, partial text)."""


@dataclass(frozen=True)
class GeneratedText:
    """A job's text, with the runners-up a story may use instead (best first)."""

    text: str
    alternatives: tuple[str, ...] = ()


JobOutcome = GeneratedText | str | Exception
"""A job's final text, or the exception that ended it."""
BatchOutcome = tuple[str, JobOutcome]
"""(job_id, final text or the exception that ended this job)."""
BatchProcessor = Callable[[list[GenerationJob], ProgressCallback], Sequence[BatchOutcome]]
"""Generate text for a batch of jobs; runs in a worker thread, never on the event loop."""
OutcomeCallback = Callable[[JobOutcome], None]
"""Called once with a streamed job's outcome, from the processor's own thread."""


@runtime_checkable
class StreamingProcessor(Protocol):
    """A processor that takes jobs one at a time while others run (continuous batching).

    ``streaming`` is True when it does (a wrapper may say False for what it wraps).
    """

    streaming: bool

    def room(self) -> int:
        """Return how many more jobs may be submitted now (0 = full: leave them queued)."""

    def submit(
        self, job: GenerationJob, on_progress: ProgressCallback, on_done: OutcomeCallback
    ) -> None:
        """Start a job; ON_DONE gets its outcome when it ends (never on the event loop)."""

    def cancel_all(self) -> None:
        """Stop generating every job submitted (they were handed back to the queue)."""


@dataclass(frozen=True)
class Delivery:
    """A job handed to one worker: the job, how often it was handed out, and its entry id."""

    job: GenerationJob
    delivery_count: int
    entry_id: str


class JobQueue(ABC):
    """Producer side: submit jobs, follow their position, receive their events."""

    @abstractmethod
    async def enqueue(self, job: GenerationJob) -> int:
        """Queue a job and return its position (1 = next).

        Raise SessionBusy when the session already has a job in flight and
        QueueFull when the global limit of waiting and running jobs is reached.
        """

    @abstractmethod
    async def position(self, job_id: str) -> int | None:
        """Return the job's position: 1 = next, 0 = being generated, None = not queued."""

    @abstractmethod
    def events(self) -> AsyncIterator[JobEvent]:
        """Yield progress and final events until the queue is closed.

        Final events are delivered at least once: each new iteration first yields
        the final events delivered before but not yet acknowledged.
        """

    @abstractmethod
    async def ack(self, event: JobEvent) -> None:
        """Acknowledge a stored final event and free its session's slot (no-op for progress)."""

    async def cancel(self, job_id: str) -> None:  # noqa: B027 - optional, best effort
        """Tell workers the job is no longer wanted (a story undid, skipped or ended it).

        Unstarted, it never starts; running, it stops at the next step. Its final event (a
        failure, never retried) still comes. Best effort: a queue that cannot cancel lets
        the job run to its end.
        """

    @abstractmethod
    async def close(self) -> None:
        """Release connections; pending iterations of events() end."""


class WorkerQueue(ABC):
    """Worker side: take jobs, report progress, publish results or failures."""

    @abstractmethod
    async def fetch(self, max_jobs: int, wait_s: float) -> list[Delivery]:
        """Take up to max_jobs jobs, waiting up to wait_s for the first one.

        Raise QueueClosed once the queue is closed.
        """

    @abstractmethod
    async def complete(
        self, delivery: Delivery, text: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        """Publish the job's text and retire it; False when the job was no longer ours."""

    @abstractmethod
    async def fail(self, delivery: Delivery, reason: str, *, retry: bool = True) -> None:
        """Give the job back for a retry, or fail it for good after max_deliveries.

        With ``retry=False`` the job fails at once and is not dead-lettered.
        """

    @abstractmethod
    async def progress(self, delivery: Delivery, text: str) -> None:
        """Publish partial text of a running job (best-effort)."""

    @abstractmethod
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand unfinished jobs back so another worker can take them at once."""

    async def cancelled(self, job_ids: Sequence[str]) -> set[str]:
        """Return which of JOB_IDS producers cancelled (none, for a queue that cannot)."""
        return set()

    @abstractmethod
    async def close(self) -> None:
        """Stop renewing claims and release connections."""
