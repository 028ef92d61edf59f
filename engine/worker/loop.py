"""Feed batches of jobs from the queue to a batch processor running in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time

from engine.protocol.errors import JobRejected
from engine.queue.errors import JobCancelled, QueueClosed, QueueUnavailable
from engine.queue.interfaces import (
    BatchProcessor,
    Delivery,
    GeneratedText,
    JobOutcome,
    StreamingProcessor,
    WorkerQueue,
)
from engine.worker.fair_share import DEFAULT_LOOKAHEAD, FairShare

log = logging.getLogger(__name__)

PUBLISH_WINDOW_S = 30.0
"""How long a batch's outcomes are retried when the queue cannot take them (a restart)."""
CANCEL_CHECK_S = 0.5
"""How often a streaming worker asks the queue which of its running jobs were cancelled."""


class WorkerLoop:
    """Collect jobs into batches, run them off the event loop, publish the outcomes.

    With a streaming processor (``streaming`` True: the model worker's), jobs are not
    batched here at all: each job is fetched as soon as the processor has room, joins
    its continuously batched decode loop at the next step, and is published the moment
    it ends, whatever the others are doing. When rows free, the worker claims up to
    ``lookahead`` jobs more than it has room for, starts those of the servers it served
    longest ago (engine.worker.fair_share), so one server's burst cannot starve another's
    story, and hands the rest straight back to the queue, where any worker may take them.
    """

    def __init__(
        self,
        queue: WorkerQueue,
        process_batch: BatchProcessor,
        *,
        max_batch: int = 8,
        batch_window_s: float = 0.05,
        fetch_wait_s: float = 1.0,
        progress_interval_s: float = 0.3,
        publish_window_s: float = PUBLISH_WINDOW_S,
        lookahead: int = DEFAULT_LOOKAHEAD,
        cancel_check_s: float = CANCEL_CHECK_S,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._queue = queue
        self._process_batch = process_batch
        self._max_batch = max_batch
        self._batch_window_s = batch_window_s
        self._fetch_wait_s = fetch_wait_s
        self._progress_interval_s = progress_interval_s
        self._publish_window_s = publish_window_s
        self._lookahead = max(0, lookahead)
        self._fair_share = FairShare()
        self._cancel_check_s = cancel_check_s
        self._stopping = False
        self._drained = asyncio.Event()

    def stop(self) -> None:
        """Ask run() to return after the batch in progress is finished and published."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the loop gracefully (Unix, main thread only)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)

    async def run(self) -> None:
        """Process jobs until stop() or the queue closes.

        On cancellation, hand the running jobs back and re-raise.
        """
        processor = self._process_batch
        if getattr(processor, "streaming", False) and isinstance(processor, StreamingProcessor):
            await self._run_streaming(processor)
            return
        outages = 0
        while not self._stopping:
            try:
                await self.run_once()
                outages = 0
            except QueueClosed:
                break
            except QueueUnavailable as error:
                outages += 1
                log.warning("job queue unavailable (%s); retrying", error)
                await asyncio.sleep(min(5.0, 0.1 * 2**outages))
        log.info("worker loop stopped")

    async def _run_streaming(self, processor: StreamingProcessor) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Queue[tuple[Delivery, JobOutcome, float]] = asyncio.Queue()
        in_flight: dict[str, Delivery] = {}
        forwarder = _ProgressForwarder(self._queue, [], loop, self._progress_interval_s)
        publisher = asyncio.create_task(self._publish_finished(finished, in_flight, forwarder))
        outages = 0
        next_cancel_check = 0.0
        try:
            while not self._stopping:
                if in_flight and time.monotonic() >= next_cancel_check:
                    next_cancel_check = time.monotonic() + self._cancel_check_s
                    await self._stop_cancelled(processor, in_flight)
                room = min(processor.room(), self._max_batch - len(in_flight))
                if room <= 0:
                    await asyncio.sleep(0.02)
                    continue
                try:
                    wait_s = self._fetch_wait_s if not in_flight else 0.05
                    deliveries = await self._queue.fetch(room + self._lookahead, wait_s)
                    outages = 0
                except QueueClosed:
                    break
                except QueueUnavailable as error:
                    outages += 1
                    log.warning("job queue unavailable (%s); retrying", error)
                    await asyncio.sleep(min(5.0, 0.1 * 2**outages))
                    continue
                if self._stopping:
                    await self._queue.release(deliveries)
                    break
                start, rest = self._fair_share.choose(deliveries, room)
                if rest:
                    await self._hand_back(rest)
                unwanted = await self._cancelled(start)
                if unwanted:
                    # Cancelled before they started: they end at once, generating nothing.
                    outcomes: dict[str, JobOutcome] = {
                        d.job.job_id: JobCancelled() for d in unwanted
                    }
                    await self._publish_all(unwanted, outcomes, {"batch_size": 0})
                    start = [d for d in start if d not in unwanted]
                for delivery in start:
                    in_flight[delivery.job.job_id] = delivery
                    forwarder.add(delivery)
                    started = time.monotonic()

                    def done(
                        outcome: JobOutcome, delivery: Delivery = delivery, started: float = started
                    ) -> None:
                        elapsed = time.monotonic() - started
                        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                            loop.call_soon_threadsafe(
                                finished.put_nowait, (delivery, outcome, elapsed)
                            )

                    processor.submit(delivery.job, forwarder.report, done)
            # Stopping: the jobs started are finished and published first.
            while in_flight and not publisher.done():
                self._drained.clear()
                drained = asyncio.ensure_future(self._drained.wait())
                await asyncio.wait({drained, publisher}, return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
        except asyncio.CancelledError:
            await asyncio.to_thread(processor.cancel_all)
            await self._queue.release(list(in_flight.values()))
            raise
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            forwarder.abandon()
        log.info("worker loop stopped")

    async def _cancelled(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Return the DELIVERIES whose jobs producers cancelled (none when it cannot tell)."""
        if not deliveries:
            return []
        try:
            ids = await self._queue.cancelled([d.job.job_id for d in deliveries])
        except (QueueClosed, QueueUnavailable) as error:
            log.warning("could not read cancelled jobs (%s)", error)
            return []
        return [d for d in deliveries if d.job.job_id in ids]

    async def _stop_cancelled(
        self, processor: StreamingProcessor, in_flight: dict[str, Delivery]
    ) -> None:
        """Stop running jobs producers cancelled; they end as failures, never retried."""
        cancel = getattr(processor, "cancel", None)
        if not callable(cancel):
            return
        for delivery in await self._cancelled(list(in_flight.values())):
            if cancel(delivery.job.job_id):
                log.info("job %s cancelled while running", delivery.job.job_id)

    async def _hand_back(self, deliveries: list[Delivery]) -> None:
        """Return claimed jobs not started now to the queue, for the next free row anywhere."""
        try:
            await self._queue.release(deliveries)
        except (QueueClosed, QueueUnavailable) as error:
            # Their claims lapse instead, and the queue hands them out again after that.
            log.warning("could not hand back %d job(s) (%s)", len(deliveries), error)

    async def _publish_finished(
        self,
        finished: asyncio.Queue[tuple[Delivery, JobOutcome, float]],
        in_flight: dict[str, Delivery],
        forwarder: _ProgressForwarder,
    ) -> None:
        while True:
            delivery, outcome, seconds = await finished.get()
            job_id = delivery.job.job_id
            forwarder.discard(job_id)
            meta: dict[str, object] = {
                "batch_size": len(in_flight),
                "generation_s": round(seconds, 3),
            }
            await self._publish_all([delivery], {job_id: outcome}, meta)
            in_flight.pop(job_id, None)
            if not in_flight:
                self._drained.set()

    async def run_once(self, wait_s: float | None = None) -> int:
        """Collect one batch (waiting up to wait_s for its first job), process it, publish it.

        Return the number of jobs in the batch.
        """
        deliveries = await self._collect(self._fetch_wait_s if wait_s is None else wait_s)
        if not deliveries:
            return 0
        if self._stopping:
            await self._queue.release(deliveries)
            return 0
        try:
            await self._process(deliveries)
        except asyncio.CancelledError:
            await self._queue.release(deliveries)
            raise
        return len(deliveries)

    async def _collect(self, wait_s: float) -> list[Delivery]:
        # No prefetch while a batch runs: jobs that arrive meanwhile stay in the
        # queue, where an idle worker can take them, or join our next batch.
        batch = await self._queue.fetch(self._max_batch, wait_s)
        try:
            window_ends = time.monotonic() + self._batch_window_s
            while batch and len(batch) < self._max_batch and not self._stopping:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                batch += await self._queue.fetch(self._max_batch - len(batch), remaining)
        except asyncio.CancelledError:
            await self._queue.release(batch)
            raise
        return batch

    async def _process(self, deliveries: list[Delivery]) -> None:
        jobs = [delivery.job for delivery in deliveries]
        forwarder = _ProgressForwarder(
            self._queue, deliveries, asyncio.get_running_loop(), self._progress_interval_s
        )
        started = time.monotonic()
        try:
            outcomes = dict(await asyncio.to_thread(self._process_batch, jobs, forwarder.report))
        except asyncio.CancelledError:
            forwarder.abandon()
            raise
        except Exception as error:  # the whole batch failed; each job may be retried
            log.exception("batch of %d job(s) failed", len(jobs))
            outcomes = {job.job_id: error for job in jobs}
        await forwarder.finish()
        meta: dict[str, object] = {
            "batch_size": len(jobs),
            "generation_s": round(time.monotonic() - started, 3),
        }
        await self._publish_all(deliveries, outcomes, meta)

    async def _publish_all(
        self,
        deliveries: list[Delivery],
        outcomes: dict[str, GeneratedText | str | Exception],
        meta: dict[str, object],
    ) -> None:
        """Publish every job's outcome, retrying through a queue outage for a while.

        One failed publish does not stop the others. What still cannot be published when
        the window closes is handed back (or, with the queue unreachable, simply no longer
        renewed), so the jobs are generated again instead of being held forever.
        """
        window_ends = time.monotonic() + self._publish_window_s
        unpublished: list[Delivery] = []
        for delivery in deliveries:
            outcome = outcomes.get(delivery.job.job_id)
            attempt = 0
            while True:
                try:
                    await self._publish(delivery, outcome, meta)
                    break
                except Exception as error:
                    attempt += 1
                    if self._stopping or time.monotonic() >= window_ends:
                        log.error(
                            "could not publish the outcome of job %s: %s; handing it back",
                            delivery.job.job_id,
                            error,
                        )
                        unpublished.append(delivery)
                        break
                    log.warning(
                        "could not publish the outcome of job %s (%s); retrying",
                        delivery.job.job_id,
                        error,
                    )
                    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        if unpublished:
            try:
                await self._queue.release(unpublished)
            except Exception as error:
                log.warning("could not hand back %d job(s): %s", len(unpublished), error)

    async def _publish(
        self,
        delivery: Delivery,
        outcome: GeneratedText | str | Exception | None,
        meta: dict[str, object],
    ) -> None:
        if isinstance(outcome, str):
            outcome = GeneratedText(outcome)
        if isinstance(outcome, GeneratedText):
            extra: dict[str, object] = {"delivery_count": delivery.delivery_count}
            if outcome.alternatives:
                extra["alternatives"] = list(outcome.alternatives)
            await self._queue.complete(delivery, outcome.text, {**meta, **extra})
        elif outcome is None:
            await self._queue.fail(delivery, "the batch processor returned no text for this job")
        else:
            reason = f"{type(outcome).__name__}: {outcome}"
            final = isinstance(outcome, (JobRejected, JobCancelled))
            await self._queue.fail(delivery, reason, retry=not final)


class _ProgressForwarder:
    """Carry throttled progress from the processor's thread to the queue, in order."""

    def __init__(
        self,
        queue: WorkerQueue,
        deliveries: list[Delivery],
        loop: asyncio.AbstractEventLoop,
        interval_s: float,
    ) -> None:
        self._queue = queue
        self._deliveries = {delivery.job.job_id: delivery for delivery in deliveries}
        self._loop = loop
        self._interval_s = interval_s
        self._last_sent: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._pending: asyncio.Queue[tuple[Delivery, str] | None] = asyncio.Queue()
        self._sender = loop.create_task(self._send_all())

    def add(self, delivery: Delivery) -> None:
        """Forward progress of one more job."""
        with self._lock:
            self._deliveries[delivery.job.job_id] = delivery

    def discard(self, job_id: str) -> None:
        """Forward no more progress of a finished job."""
        with self._lock:
            self._deliveries.pop(job_id, None)
            self._last_sent.pop(job_id, None)

    def report(self, job_id: str, text: str) -> None:
        """Forward partial text unless this job reported less than an interval ago."""
        with self._lock:
            delivery = self._deliveries.get(job_id)
        if delivery is None or self._closed:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last_sent.get(job_id, float("-inf")) < self._interval_s:
                return
            self._last_sent[job_id] = now
        try:
            self._loop.call_soon_threadsafe(self._pending.put_nowait, (delivery, text))
        except RuntimeError:  # the loop closed while an abandoned batch still runs
            self._closed = True

    async def finish(self) -> None:
        """Send what is queued, then stop (progress must not trail the final result)."""
        self._closed = True
        self._pending.put_nowait(None)
        await self._sender

    def abandon(self) -> None:
        """Drop queued progress and stop at once."""
        self._closed = True
        self._sender.cancel()

    async def _send_all(self) -> None:
        while (item := await self._pending.get()) is not None:
            try:
                await self._queue.progress(*item)
            except Exception as error:  # progress is best-effort
                log.warning("could not publish progress of job %s: %s", item[0].job.job_id, error)
