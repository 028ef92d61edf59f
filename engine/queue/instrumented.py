"""A worker's queue end and batch processor, measured for Prometheus and tagged in logs.

Both wrap what a ``WorkerLoop`` is given, so the loop itself knows nothing of metrics:
the processor wrapper times batches and counts jobs in flight, the queue wrapper
times each job's first partial text and counts how jobs end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.queue.interfaces import (
    BatchOutcome,
    BatchProcessor,
    Delivery,
    JobOutcome,
    OutcomeCallback,
    ProgressCallback,
    StreamingProcessor,
    WorkerQueue,
)
from engine.queue.jobs import GenerationJob
from engine.telemetry.logs import log_context
from engine.telemetry.metrics import (
    GENERATION_SECONDS,
    TIME_TO_FIRST_TEXT,
    TOKENS_PER_SECOND,
    WORKER_BATCH_SIZE,
    WORKER_JOBS,
    WORKER_JOBS_IN_FLIGHT,
    generated_token_count,
)


class InstrumentedProcessor:
    """Run a batch processor, measuring batch size, generation time and jobs in flight."""

    def __init__(self, process_batch: BatchProcessor) -> None:
        self._process_batch = process_batch
        self._lock = threading.Lock()
        self._in_flight = 0
        self.streaming = bool(getattr(process_batch, "streaming", False))

    def room(self) -> int:
        """Return how many more jobs the wrapped streaming processor takes now."""
        return self._streaming_processor().room()

    def submit(
        self, job: GenerationJob, on_progress: ProgressCallback, on_done: OutcomeCallback
    ) -> None:
        """Start a job on the wrapped streaming processor, timing it until it ends."""
        self._count(1)
        started = time.monotonic()

        def done(outcome: JobOutcome) -> None:
            self._count(-1)
            GENERATION_SECONDS.labels(job.kind).observe(time.monotonic() - started)
            on_done(outcome)

        try:
            self._streaming_processor().submit(job, on_progress, done)
        except BaseException:
            self._count(-1)
            raise

    def cancel(self, job_id: str) -> bool:
        """Stop one job of the wrapped streaming processor; False when it cannot."""
        cancel = getattr(self._streaming_processor(), "cancel", None)
        return bool(cancel(job_id)) if callable(cancel) else False

    def cancel_all(self) -> None:
        """Stop every job of the wrapped streaming processor."""
        self._streaming_processor().cancel_all()
        with self._lock:
            self._in_flight = 0
            WORKER_JOBS_IN_FLIGHT.set(0)

    def _streaming_processor(self) -> StreamingProcessor:
        inner = self._process_batch
        if not self.streaming or not isinstance(inner, StreamingProcessor):
            raise TypeError("the wrapped processor takes whole batches only")
        return inner

    @property
    def jobs_in_flight(self) -> int:
        """Return how many jobs this processor is generating now."""
        return self._in_flight

    def __call__(
        self, jobs: list[GenerationJob], on_progress: ProgressCallback
    ) -> Sequence[BatchOutcome]:
        """Process one batch (in the worker's thread) and record how it went."""
        WORKER_BATCH_SIZE.observe(len(jobs))
        self._count(len(jobs))
        tokens_before = generated_token_count()
        started = time.monotonic()
        try:
            outcomes = self._process_batch(jobs, on_progress)
        finally:
            self._count(-len(jobs))
        elapsed = time.monotonic() - started
        for job in jobs:
            GENERATION_SECONDS.labels(job.kind).observe(elapsed)
        tokens = generated_token_count() - tokens_before
        if tokens > 0 and elapsed > 0:
            TOKENS_PER_SECOND.set(tokens / elapsed)
        return outcomes

    def _count(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            WORKER_JOBS_IN_FLIGHT.set(self._in_flight)


class InstrumentedWorkerQueue(WorkerQueue):
    """A worker queue end that records first-text latency and how each job ended."""

    def __init__(self, inner: WorkerQueue) -> None:
        self._inner = inner
        self._first_text_seen: set[str] = set()

    @property
    def name(self) -> str:
        """Return the worker's consumer name (``in-process`` for memory://)."""
        return str(getattr(self._inner, "name", "in-process"))

    async def fetch(self, max_jobs: int, wait_s: float) -> list[Delivery]:
        """Take up to max_jobs jobs, waiting up to wait_s for the first one."""
        return await self._inner.fetch(max_jobs, wait_s)

    async def complete(
        self, delivery: Delivery, text: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        """Publish the job's text and retire it; False when the job was no longer ours."""
        with _about(delivery):
            done = await self._inner.complete(delivery, text, meta)
        WORKER_JOBS.labels("completed" if done else "taken_over").inc()
        self._first_text_seen.discard(delivery.job.job_id)
        return done

    async def fail(self, delivery: Delivery, reason: str, *, retry: bool = True) -> None:
        """Give the job back for a retry, or fail it for good after max_deliveries."""
        with _about(delivery):
            await self._inner.fail(delivery, reason, retry=retry)
        WORKER_JOBS.labels("failed").inc()
        self._first_text_seen.discard(delivery.job.job_id)

    async def progress(self, delivery: Delivery, text: str) -> None:
        """Publish partial text; the first one of a job times its wait for text."""
        job = delivery.job
        if job.job_id not in self._first_text_seen:
            self._first_text_seen.add(job.job_id)
            TIME_TO_FIRST_TEXT.observe(max(0.0, time.time() - job.enqueued_at))
        await self._inner.progress(delivery, text)

    async def cancelled(self, job_ids: Sequence[str]) -> set[str]:
        """Return which of JOB_IDS producers cancelled."""
        return await self._inner.cancelled(job_ids)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand unfinished jobs back so another worker can take them at once."""
        await self._inner.release(deliveries)
        if deliveries:
            WORKER_JOBS.labels("released").inc(len(deliveries))
        for delivery in deliveries:
            self._first_text_seen.discard(delivery.job.job_id)

    async def close(self) -> None:
        """Close the wrapped queue end."""
        await self._inner.close()


def _about(delivery: Delivery) -> Any:
    return log_context(story_id=delivery.job.session_id, job_id=delivery.job.job_id)
