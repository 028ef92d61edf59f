"""The worker loop with a streaming processor: jobs join as room frees, each published alone."""

from __future__ import annotations

import asyncio
import threading
import time

from engine.protocol import new_job_id
from engine.queue import GenerationJob, MemoryQueue, QueueConfig
from engine.queue.errors import JobCancelled
from engine.queue.interfaces import OutcomeCallback, ProgressCallback
from engine.queue.jobs import JobFailed
from engine.worker.loop import WorkerLoop

from support.protocol import narrate_request
from support.queue_events import completed_events


class TimedProcessor:
    """Finish each job after the seconds its session id names (tenths), in threads."""

    streaming = True

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.running = 0
        self.most_running = 0
        self.cancelled = False
        self._lock = threading.Lock()

    def room(self) -> int:
        with self._lock:
            return self.rows - self.running

    def submit(
        self, job: GenerationJob, on_progress: ProgressCallback, on_done: OutcomeCallback
    ) -> None:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)

        def work() -> None:
            on_progress(job.job_id, "Once")
            time.sleep(job.session_id / 10)
            with self._lock:
                self.running -= 1
            if not self.cancelled:
                on_done(f"tale of {job.session_id}")

        threading.Thread(target=work, daemon=True).start()

    def __call__(self, jobs, on_progress):  # type: ignore[no-untyped-def]
        raise AssertionError("a streaming processor is never given whole batches")

    def cancel_all(self) -> None:
        self.cancelled = True


def job(tenths: int) -> GenerationJob:
    return GenerationJob(new_job_id(), tenths, narrate_request())


async def test_a_short_job_is_published_before_a_long_one_that_started_first() -> None:
    queue = MemoryQueue(QueueConfig())
    processor = TimedProcessor(rows=4)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    await queue.enqueue(job(15))
    await asyncio.sleep(0.3)  # the long job is running
    await queue.enqueue(job(1))

    order = [event.session_id for event in await completed_events(queue, 2)]

    assert order == [1, 15]
    loop.stop()
    await asyncio.wait_for(running, 5)
    await queue.close()


async def test_no_more_jobs_run_than_the_processor_has_room_for() -> None:
    queue = MemoryQueue(QueueConfig())
    processor = TimedProcessor(rows=2)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    for session in range(1, 7):
        await queue.enqueue(job(session))
    running = asyncio.create_task(loop.run())

    done = await completed_events(queue, 6)

    assert sorted(event.session_id for event in done) == [1, 2, 3, 4, 5, 6]
    assert processor.most_running == 2
    loop.stop()
    await asyncio.wait_for(running, 5)
    await queue.close()


async def test_stopping_finishes_and_publishes_the_jobs_started() -> None:
    queue = MemoryQueue(QueueConfig())
    processor = TimedProcessor(rows=4)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    await queue.enqueue(job(5))
    await asyncio.sleep(0.2)

    loop.stop()
    await asyncio.wait_for(running, 5)

    assert [event.session_id for event in await completed_events(queue, 1)] == [5]
    await queue.close()


async def test_cancelling_hands_the_running_jobs_back() -> None:
    queue = MemoryQueue(QueueConfig())
    processor = TimedProcessor(rows=4)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    stuck = job(50)
    await queue.enqueue(stuck)
    await asyncio.sleep(0.3)

    running.cancel()
    await asyncio.gather(running, return_exceptions=True)

    assert processor.cancelled
    assert await queue.position(stuck.job_id) == 1  # waiting again, for any worker
    await queue.close()


class CancellableProcessor(TimedProcessor):
    """A timed processor whose jobs stop when cancelled, reporting JobCancelled."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.submitted: list[str] = []
        self.started = threading.Event()
        self.stopped: list[str] = []
        self._stop = threading.Event()
        self._dones: dict[str, OutcomeCallback] = {}

    def submit(
        self, job: GenerationJob, on_progress: ProgressCallback, on_done: OutcomeCallback
    ) -> None:
        self.submitted.append(job.job_id)
        self.started.set()
        self._dones[job.job_id] = on_done
        super().submit(job, on_progress, lambda outcome: None)  # holds a row for its time

    def cancel(self, job_id: str) -> bool:
        on_done = self._dones.pop(job_id, None)
        if on_done is None:
            return False
        self.stopped.append(job_id)
        on_done(JobCancelled())
        return True


async def test_a_cancelled_job_stops_running_or_never_starts_and_is_not_retried() -> None:
    queue = MemoryQueue(QueueConfig())
    processor = CancellableProcessor(rows=1)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1, cancel_check_s=0.05)
    running_job, waiting_job = job(30), job(31)
    await queue.enqueue(running_job)
    await queue.enqueue(waiting_job)
    runner = asyncio.create_task(loop.run())
    assert await asyncio.to_thread(processor.started.wait, 5)
    await queue.cancel(waiting_job.job_id)  # not started: the worker has one row
    await queue.cancel(running_job.job_id)

    finals = []
    async for event in queue.events():
        if isinstance(event, JobFailed):
            finals.append(event)
            await queue.ack(event)
        if len(finals) == 2:
            break

    assert {f.job_id for f in finals} == {running_job.job_id, waiting_job.job_id}
    assert all("cancelled" in f.reason and not f.dead_lettered for f in finals)
    assert processor.stopped == [running_job.job_id]
    assert processor.submitted == [running_job.job_id]  # the other never started
    loop.stop()
    await asyncio.wait_for(runner, 5)
    await queue.close()
