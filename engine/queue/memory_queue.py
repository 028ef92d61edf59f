"""In-process queue for the embedded default ``memory://``: same semantics as Redis, no server."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.queue.config import QueueConfig
from engine.queue.errors import QueueClosed, QueueFull, SessionBusy
from engine.queue.interfaces import Delivery, JobQueue, WorkerQueue
from engine.queue.jobs import (
    FinalEvent,
    GenerationJob,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgress,
    MalformedRequest,
    decode_job,
    encode_job,
)
from engine.queue.stats import QueueStats

log = logging.getLogger(__name__)
# Cancelled job ids remembered; a worker asks about its running jobs within a second.
CANCEL_MARKS_KEPT = 4096


@dataclass(frozen=True)
class DeadLetter:
    """A job set aside after too many deliveries, kept for inspection."""

    job: GenerationJob
    reason: str
    delivery_count: int


@dataclass
class _Entry:
    job: GenerationJob
    seq: int
    delivery_count: int = 0
    running: bool = False
    available_at: float = 0.0


class _Signal:
    """Wake every current waiter; waiters re-check their condition afterwards."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def pulse(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, limit_s: float | None) -> None:
        # Registered before the first suspension, so a pulse cannot slip past.
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, limit_s)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


class MemoryQueue(JobQueue, WorkerQueue):
    """Serve both queue ends inside one process (asyncio, single event loop)."""

    def __init__(
        self, config: QueueConfig | None = None, on_close: Callable[[], None] | None = None
    ) -> None:
        self.config = config or QueueConfig()
        self._on_close = on_close
        self._entries: dict[str, _Entry] = {}  # in flight, in enqueue order
        self._session_slots: dict[int, str] = {}
        self._seq = itertools.count(1)
        self._outbox: deque[JobEvent] = deque()
        self._progress_in_outbox = 0
        self._unacked: dict[str, FinalEvent] = {}
        self._dead_letters: list[DeadLetter] = []
        # Jobs producers cancelled, newest last (the oldest forgotten past the limit).
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._jobs_changed = _Signal()
        self._events_changed = _Signal()
        self._closed = False

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Return the jobs dead-lettered so far."""
        return list(self._dead_letters)

    def stats(self, now: float) -> QueueStats:
        """Return how many jobs wait, run and were dead-lettered, and the oldest job's age."""
        running = sum(1 for entry in self._entries.values() if entry.running)
        oldest = min((entry.job.enqueued_at for entry in self._entries.values()), default=None)
        return QueueStats(
            waiting=len(self._entries) - running,
            running=running,
            oldest_job_age_s=None if oldest is None else max(0.0, now - oldest),
            dead_letters=len(self._dead_letters),
        )

    # producer side

    async def enqueue(self, job: GenerationJob) -> int:
        """Queue a job and return its position (1 = next)."""
        if self._closed:
            raise QueueClosed()
        encode_job(job)  # refuse what the Redis queue could not carry either
        holder = self._session_slots.get(job.session_id)
        if holder is not None:
            raise SessionBusy(job.session_id, holder)
        if len(self._entries) >= self.config.max_in_flight:
            raise QueueFull(len(self._entries), self.config.max_in_flight)
        self._entries[job.job_id] = _Entry(job, next(self._seq))
        self._session_slots[job.session_id] = job.job_id
        self._jobs_changed.pulse()
        return self._position_of(job.job_id) or 1

    async def position(self, job_id: str) -> int | None:
        """Return the job's position: 1 = next, 0 = being generated, None = not queued."""
        return self._position_of(job_id)

    async def events(self) -> AsyncIterator[JobEvent]:
        """Yield progress and final events until the queue is closed."""
        for final in list(self._unacked.values()):
            yield final
        offered_at = time.monotonic()
        while not self._closed:
            if time.monotonic() - offered_at >= self.config.redeliver_s:
                # Events are handled one at a time, so what is still unacknowledged
                # now could not be stored: offer it again.
                for final in list(self._unacked.values()):
                    yield final
                offered_at = time.monotonic()
            while self._outbox and not self._closed:
                event = self._outbox.popleft()
                if not isinstance(event, JobProgress):
                    self._unacked[event.job_id] = event
                    yield event
                    continue
                self._progress_in_outbox -= 1
                if event.job_id in self._entries:  # else it finished; its final event follows
                    yield event
            await self._events_changed.wait(self.config.redeliver_s if self._unacked else None)

    async def cancel(self, job_id: str) -> None:
        """Mark the job cancelled for the workers."""
        self._cancelled[job_id] = None
        while len(self._cancelled) > CANCEL_MARKS_KEPT:
            self._cancelled.popitem(last=False)

    async def cancelled(self, job_ids: Sequence[str]) -> set[str]:
        """Return which of JOB_IDS producers cancelled."""
        return {job_id for job_id in job_ids if job_id in self._cancelled}

    async def ack(self, event: JobEvent) -> None:
        """Acknowledge a stored final event and free its session's slot."""
        if isinstance(event, JobProgress):
            return
        self._unacked.pop(event.job_id, None)
        if self._session_slots.get(event.session_id) == event.job_id:
            del self._session_slots[event.session_id]

    # worker side

    async def fetch(self, max_jobs: int, wait_s: float) -> list[Delivery]:
        """Take up to max_jobs jobs, waiting up to wait_s for the first one."""
        deadline = time.monotonic() + wait_s
        while not self._closed:
            taken = self._take_available(max_jobs)
            if taken:
                return taken
            now = time.monotonic()
            if now >= deadline:
                return []
            await self._jobs_changed.wait(min(deadline, self._next_retry_at()) - now)
        raise QueueClosed()

    async def complete(
        self, delivery: Delivery, text: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        """Publish the job's text and retire it; False when the job was no longer ours."""
        if not self._is_current(delivery):
            log.warning("job %s is no longer ours; dropping its result", delivery.job.job_id)
            return False
        job = delivery.job
        completed = JobCompleted(job.job_id, job.session_id, job.kind, text, dict(meta or {}))
        self._retire(job, completed)
        return True

    async def fail(self, delivery: Delivery, reason: str, *, retry: bool = True) -> None:
        """Give the job back for a retry, or fail it for good after max_deliveries."""
        if not self._is_current(delivery):
            return
        job = delivery.job
        if retry and delivery.delivery_count < self.config.max_deliveries:
            entry = self._entries[job.job_id]
            entry.running = False
            entry.available_at = time.monotonic() + self.config.visibility_timeout
            log.info("job %s failed (%s); retrying later", job.job_id, reason)
            self._jobs_changed.pulse()
            return
        self._fail_for_good(self._entries[job.job_id], reason, dead_letter=retry)

    async def progress(self, delivery: Delivery, text: str) -> None:
        """Publish partial text of a running job (dropped when the producer lags far behind)."""
        lagging = self._progress_in_outbox >= self.config.progress_maxlen
        if lagging or not self._is_current(delivery):
            return
        job = delivery.job
        self._progress_in_outbox += 1
        self._emit(JobProgress(job.job_id, job.session_id, text))

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand unfinished jobs back so another worker can take them at once."""
        for delivery in deliveries:
            if self._is_current(delivery):
                entry = self._entries[delivery.job.job_id]
                entry.running = False
                entry.delivery_count -= 1  # a release is not a failed attempt
                entry.available_at = 0.0
        self._jobs_changed.pulse()

    async def close(self) -> None:
        """Close both ends; waiting fetches and event iterations end."""
        if self._closed:
            return
        self._closed = True
        self._jobs_changed.pulse()
        self._events_changed.pulse()
        if self._on_close is not None:
            self._on_close()

    # internals

    def _position_of(self, job_id: str) -> int | None:
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        if entry.running:
            return 0
        return 1 + sum(
            1 for other in self._entries.values() if not other.running and other.seq < entry.seq
        )

    def _take_available(self, max_jobs: int) -> list[Delivery]:
        now = time.monotonic()
        taken: list[Delivery] = []
        for entry in list(self._entries.values()):
            if len(taken) >= max_jobs:
                break
            if entry.running or entry.available_at > now:
                continue
            entry.delivery_count += 1
            if entry.delivery_count > self.config.max_deliveries:
                self._fail_for_good(entry, "handed out too often without finishing", True)
                continue
            try:
                # Read it as a worker behind Redis would, so both queues fail the same jobs.
                decode_job(encode_job(entry.job))
            except MalformedRequest as error:
                log.error("job %s failed without retry: %s", entry.job.job_id, error)
                self._fail_for_good(entry, f"JobRejected: {error.reason}", dead_letter=False)
                continue
            entry.running = True
            taken.append(Delivery(entry.job, entry.delivery_count, str(entry.seq)))
        return taken

    def _next_retry_at(self) -> float:
        delayed = [e.available_at for e in self._entries.values() if not e.running]
        return min(delayed, default=float("inf"))

    def _is_current(self, delivery: Delivery) -> bool:
        entry = self._entries.get(delivery.job.job_id)
        return (
            entry is not None
            and entry.running
            and str(entry.seq) == delivery.entry_id
            and entry.delivery_count == delivery.delivery_count
        )

    def _fail_for_good(self, entry: _Entry, reason: str, dead_letter: bool) -> None:
        job = entry.job
        if dead_letter:
            log.warning(
                "job %s dead-lettered after %d deliveries: %s",
                job.job_id,
                entry.delivery_count,
                reason,
            )
            self._dead_letters.append(DeadLetter(job, reason, entry.delivery_count))
            if self._session_slots.get(job.session_id) == job.job_id:
                del self._session_slots[job.session_id]
        self._retire(job, JobFailed(job.job_id, job.session_id, job.kind, reason, dead_letter))

    def _retire(self, job: GenerationJob, final: FinalEvent) -> None:
        del self._entries[job.job_id]
        self._emit(final)
        self._jobs_changed.pulse()

    def _emit(self, event: JobEvent) -> None:
        self._outbox.append(event)
        self._events_changed.pulse()
