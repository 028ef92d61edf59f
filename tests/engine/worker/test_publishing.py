"""A worker publishes every outcome of a batch, even when the queue fails some publishes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.protocol import new_job_id
from engine.queue import GenerationJob, MemoryQueue, QueueConfig
from engine.queue.errors import QueueUnavailable
from engine.queue.interfaces import Delivery, WorkerQueue
from engine.worker.loop import WorkerLoop

from support.protocol import narrate_request
from support.queue_events import completed_events


class FlakyPublishing(WorkerQueue):
    """A worker end whose first publishes fail, as during a Redis restart."""

    def __init__(self, inner: MemoryQueue, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.released: list[str] = []

    async def fetch(self, max_jobs: int, wait_s: float) -> list[Delivery]:
        return await self.inner.fetch(max_jobs, wait_s)

    async def complete(
        self, delivery: Delivery, text: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise QueueUnavailable("redis://queue:6379/0", ConnectionError("closed by server"))
        return await self.inner.complete(delivery, text, meta)

    async def fail(self, delivery: Delivery, reason: str, *, retry: bool = True) -> None:
        await self.inner.fail(delivery, reason, retry=retry)

    async def progress(self, delivery: Delivery, text: str) -> None:
        await self.inner.progress(delivery, text)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        self.released.extend(delivery.job.job_id for delivery in deliveries)
        await self.inner.release(deliveries)

    async def close(self) -> None:
        await self.inner.close()


def jobs(count: int) -> list[GenerationJob]:
    return [GenerationJob(new_job_id(), session, narrate_request()) for session in range(count)]


def echo(batch, on_progress):  # type: ignore[no-untyped-def]
    return [(job.job_id, f"text for story {job.session_id}") for job in batch]


async def test_a_failed_publish_is_retried_and_the_rest_of_the_batch_still_published() -> None:
    queue = MemoryQueue(QueueConfig())
    flaky = FlakyPublishing(queue, failures=3)
    batch = jobs(4)
    for job in batch:
        await queue.enqueue(job)

    assert await WorkerLoop(flaky, echo, max_batch=4).run_once(wait_s=1) == 4
    finals = await completed_events(queue, 4)

    assert sorted(event.session_id for event in finals) == [0, 1, 2, 3]
    assert flaky.released == []
    await queue.close()


async def test_outcomes_that_cannot_be_published_in_the_window_are_handed_back() -> None:
    queue = MemoryQueue(QueueConfig())
    flaky = FlakyPublishing(queue, failures=1000)
    batch = jobs(3)
    for job in batch:
        await queue.enqueue(job)

    loop = WorkerLoop(flaky, echo, max_batch=3, publish_window_s=0.3)
    assert await loop.run_once(wait_s=1) == 3

    assert sorted(flaky.released) == sorted(job.job_id for job in batch)
    # Handed back, not held: another worker (or this one) generates them again.
    flaky.failures = 0
    assert await loop.run_once(wait_s=1) == 3
    assert len(await completed_events(queue, 3)) == 3
    await queue.close()
