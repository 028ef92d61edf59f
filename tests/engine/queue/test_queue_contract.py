"""Behaviour shared by the in-process and the Redis queue."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest

from engine.protocol import NarrateRequest, SamplingSettings, new_job_id
from engine.queue import (
    GenerationJob,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRejected,
    QueueFull,
    SessionBusy,
)
from engine.worker.loop import WorkerLoop
from tests.engine.worker.test_streaming_loop import TimedProcessor

from support.protocol import narrate_request, story_context


def make_job(session_id: int, hero: str = "Ada") -> GenerationJob:
    return GenerationJob(new_job_id(), session_id, narrate_request(hero))


def echo_batch(jobs, on_progress):
    for job in jobs:
        on_progress(job.job_id, "Once")
    return [
        (job.job_id, f"Once upon a time, {job.request.context.next_player} set out.")
        for job in jobs
    ]


def job_with_title(session_id: int, title: object) -> GenerationJob:
    """Return a job whose context's title is not a string (as no typed producer would send)."""
    context = replace(story_context(), title=title)
    return GenerationJob(new_job_id(), session_id, NarrateRequest(context, SamplingSettings()))


async def test_completed_job_reaches_the_producer_and_is_acked(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(1)

    assert await producer.enqueue(job) == 1
    assert await WorkerLoop(worker, echo_batch).run_once(wait_s=2) == 1
    final = await events.next_final()

    assert isinstance(final, JobCompleted)
    assert (final.job_id, final.session_id, final.kind) == (job.job_id, 1, "narrate")
    assert final.text == "Once upon a time, Ada set out."
    assert final.meta["batch_size"] == 1
    assert final.meta["delivery_count"] == 1
    assert await producer.position(job.job_id) is None
    await producer.ack(final)
    assert await producer.enqueue(make_job(1)) == 1


async def test_second_job_for_a_busy_session_is_refused_until_the_result_is_acked(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    first = make_job(7)
    await producer.enqueue(first)

    with pytest.raises(SessionBusy) as busy:
        await producer.enqueue(make_job(7))
    assert busy.value.job_id == first.job_id
    assert "still working on this story" in str(busy.value)

    await WorkerLoop(worker, echo_batch).run_once(wait_s=2)
    final = await events.next_final()
    with pytest.raises(SessionBusy):  # the result is not stored yet
        await producer.enqueue(make_job(7))

    await producer.ack(final)
    assert await producer.enqueue(make_job(7)) == 1


async def test_full_queue_raises_queue_full_with_the_number_of_waiting_stories(backend):
    producer = await backend.producer(max_in_flight=2)
    await producer.enqueue(make_job(1))
    await producer.enqueue(make_job(2))

    with pytest.raises(QueueFull) as full:
        await producer.enqueue(make_job(3))

    assert (full.value.in_flight, full.value.limit) == (2, 2)
    assert str(full.value) == (
        "The narrator is busy: 2 stories are waiting, try again in a moment."
    )


async def test_positions_count_the_waiting_jobs_ahead(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    jobs = [make_job(session) for session in (1, 2, 3)]

    assert [await producer.enqueue(job) for job in jobs] == [1, 2, 3]
    assert [await producer.position(job.job_id) for job in jobs] == [1, 2, 3]

    taken = await worker.fetch(1, wait_s=2)
    assert [delivery.job for delivery in taken] == [jobs[0]]
    assert [await producer.position(job.job_id) for job in jobs] == [0, 1, 2]
    assert await producer.position("no-such-job") is None


async def test_progress_events_arrive_before_the_final_text(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(1)

    def storyteller(jobs, on_progress):
        for words in ("Once", "Once upon", "Once upon a time"):
            on_progress(job.job_id, words)
            time.sleep(0.15)
        return [(job.job_id, "Once upon a time.")]

    await producer.enqueue(job)
    await WorkerLoop(worker, storyteller, progress_interval_s=0.1).run_once(wait_s=2)

    first = await events.next_event()
    final = await events.next_final()
    assert first == JobProgress(job.job_id, 1, "Once")
    assert isinstance(final, JobCompleted)
    progress = [event.text for event in events.events if isinstance(event, JobProgress)]
    assert progress == ["Once", "Once upon", "Once upon a time"]


async def test_failing_job_is_retried_then_dead_lettered_after_max_deliveries(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(4)
    attempts: list[str] = []

    def broken_model(jobs, on_progress):
        attempts.append(jobs[0].job_id)
        return [(jobs[0].job_id, RuntimeError("out of memory"))]

    await producer.enqueue(job)
    loop_task = asyncio.create_task(WorkerLoop(worker, broken_model, fetch_wait_s=0.2).run())
    try:
        final = await events.next_final(within_s=10)
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)

    assert final == JobFailed(job.job_id, 4, "narrate", "RuntimeError: out of memory", True)
    assert attempts == [job.job_id] * 3
    assert await backend.dead_letter_count() == 1
    # A dead-lettered job frees its session at once, before the producer acks.
    assert await producer.enqueue(make_job(4)) == 1


async def test_rejected_job_fails_at_once_without_dead_letter(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(5)

    def picky_model(jobs, on_progress):
        return [(jobs[0].job_id, JobRejected("the prompt is longer than the model's context"))]

    await producer.enqueue(job)
    await WorkerLoop(worker, picky_model).run_once(wait_s=2)
    final = await events.next_final()

    assert isinstance(final, JobFailed)
    assert not final.dead_lettered
    assert final.reason == "JobRejected: the prompt is longer than the model's context"
    assert await backend.dead_letter_count() == 0
    with pytest.raises(SessionBusy):
        await producer.enqueue(make_job(5))
    await producer.ack(final)
    await producer.enqueue(make_job(5))


async def test_unacked_result_is_redelivered_after_a_producer_restart(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(9)
    await producer.enqueue(job)
    await WorkerLoop(worker, echo_batch).run_once(wait_s=2)
    first = await events.next_final()

    producer = await backend.restart_producer(producer, events)
    events = backend.watch(producer)
    again = await events.next_final()
    assert again == first
    await producer.ack(again)

    producer = await backend.restart_producer(producer, events)
    events = backend.watch(producer)
    assert await events.no_final_within(0.5)
    assert await producer.enqueue(make_job(9)) == 1


async def test_waiting_jobs_are_batched_together(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    batches: list[list[int]] = []

    def recording_batch(jobs, on_progress):
        batches.append([job.session_id for job in jobs])
        return echo_batch(jobs, on_progress)

    for session in (1, 2, 3, 4, 5):
        await producer.enqueue(make_job(session))
    loop = WorkerLoop(worker, recording_batch, max_batch=4)

    assert await loop.run_once(wait_s=2) == 4
    assert await loop.run_once(wait_s=2) == 1
    assert batches == [[1, 2, 3, 4], [5]]


async def test_jobs_arriving_during_a_batch_join_the_next_batch(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    batches: list[list[int]] = []
    started = threading.Event()

    def slow_batch(jobs, on_progress):
        batches.append([job.session_id for job in jobs])
        started.set()
        time.sleep(0.3)
        return echo_batch(jobs, on_progress)

    await producer.enqueue(make_job(1))
    loop = WorkerLoop(worker, slow_batch, max_batch=8, batch_window_s=0.05)
    first_batch = asyncio.create_task(loop.run_once(wait_s=2))
    await asyncio.to_thread(started.wait, 2)
    await producer.enqueue(make_job(2))
    await producer.enqueue(make_job(3))
    await first_batch
    await loop.run_once(wait_s=2)

    assert batches == [[1], [2, 3]]


async def test_batch_processing_runs_off_the_event_loop(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    seen: list[bool] = []

    def loop_free_batch(jobs, on_progress):
        try:
            asyncio.get_running_loop()
            seen.append(False)
        except RuntimeError:
            seen.append(True)
        return echo_batch(jobs, on_progress)

    await producer.enqueue(make_job(1))
    await WorkerLoop(worker, loop_free_batch).run_once(wait_s=2)
    await events.next_final()
    assert seen == [True]


async def test_progress_is_throttled_per_job(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    job = make_job(1)

    def chatty_model(jobs, on_progress):
        for step in range(50):
            on_progress(job.job_id, f"word {step}")
            time.sleep(0.01)
        return [(job.job_id, "done")]

    await producer.enqueue(job)
    await WorkerLoop(worker, chatty_model, progress_interval_s=0.2).run_once(wait_s=2)
    await events.next_final()

    progress = [event.text for event in events.events if isinstance(event, JobProgress)]
    assert progress[0] == "word 0"
    assert 2 <= len(progress) <= 4


async def test_stopped_worker_loop_finishes_its_batch_before_returning(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    started = threading.Event()

    def slow_batch(jobs, on_progress):
        started.set()
        time.sleep(0.3)
        return echo_batch(jobs, on_progress)

    await producer.enqueue(make_job(1))
    loop = WorkerLoop(worker, slow_batch, fetch_wait_s=0.2)
    running = asyncio.create_task(loop.run())
    await asyncio.to_thread(started.wait, 2)
    loop.stop()
    await asyncio.wait_for(running, 3)

    assert isinstance(await events.next_final(), JobCompleted)


async def test_cancelled_worker_loop_hands_its_jobs_to_another_worker_at_once(backend):
    producer = await backend.producer()
    first_worker = await backend.worker()
    second_worker = await backend.worker()
    job = make_job(1)
    started = threading.Event()
    release_thread = threading.Event()

    def stuck_batch(jobs, on_progress):
        started.set()
        release_thread.wait(5)
        return echo_batch(jobs, on_progress)

    await producer.enqueue(job)
    running = asyncio.create_task(WorkerLoop(first_worker, stuck_batch).run())
    try:
        await asyncio.to_thread(started.wait, 2)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        retaken = await second_worker.fetch(1, wait_s=0.3)  # well under the visibility timeout
    finally:
        release_thread.set()

    assert [delivery.job for delivery in retaken] == [job]
    assert retaken[0].delivery_count == 1  # a hand-back is not a failed attempt


async def test_worker_loop_returns_when_its_queue_is_closed(backend):
    worker = await backend.worker()
    running = asyncio.create_task(WorkerLoop(worker, echo_batch, fetch_wait_s=5).run())
    await asyncio.sleep(0.2)

    await worker.close()

    await asyncio.wait_for(running, 3)


async def test_request_that_is_not_json_is_refused_at_enqueue(backend):
    producer = await backend.producer()
    job = job_with_title(1, object())

    with pytest.raises(TypeError, match="not JSON serializable"):
        await producer.enqueue(job)
    assert await producer.enqueue(make_job(1)) == 1


async def test_job_whose_request_no_worker_can_read_fails_once_without_retry(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    broken, good = job_with_title(6, 5), make_job(7)
    processed: list[str] = []

    def recording_batch(jobs, on_progress):
        processed.extend(job.job_id for job in jobs)
        return echo_batch(jobs, on_progress)

    await producer.enqueue(broken)
    await producer.enqueue(good)
    loop_task = asyncio.create_task(WorkerLoop(worker, recording_batch, fetch_wait_s=0.2).run())
    try:
        finals = {(await events.next_final()).job_id for _ in range(2)}
        # Longer than a visibility timeout: a job given back for a retry would be back by now.
        assert await events.no_final_within(1.0)
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)

    assert finals == {broken.job_id, good.job_id}
    [failed] = [event for event in events.finals() if isinstance(event, JobFailed)]
    assert failed == JobFailed(
        broken.job_id, 6, "narrate", "JobRejected: field 'context.title' must be a string", False
    )
    assert processed == [good.job_id]  # the worker's model never saw it
    assert await backend.dead_letter_count() == 0
    with pytest.raises(SessionBusy):  # as for any failed job, until the producer stores it
        await producer.enqueue(make_job(6))
    await producer.ack(failed)
    assert await producer.enqueue(make_job(6)) == 1


async def test_a_streaming_worker_serves_another_servers_job_before_a_burst_ends(backend):
    """Jobs handed back for fairness are taken again first in line, and not as failures."""
    producer = await backend.producer()
    worker = await backend.worker()
    events = backend.watch(producer)
    for session_id in range(1, 7):  # one server's burst, queued first
        await producer.enqueue(replace(make_job(session_id), guild_id=100))
    await producer.enqueue(replace(make_job(7), guild_id=200))
    loop = WorkerLoop(worker, TimedProcessor(rows=1), fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    try:
        finals = [await events.next_final(within_s=10) for _ in range(7)]
    finally:
        loop.stop()
        await asyncio.wait_for(running, 10)
    assert [f.session_id for f in finals] == [1, 7, 2, 3, 4, 5, 6]
    assert all(isinstance(f, JobCompleted) for f in finals)
    assert {f.meta["delivery_count"] for f in finals} == {1}


async def test_workers_see_which_jobs_producers_cancelled(backend):
    producer = await backend.producer()
    worker = await backend.worker()
    kept, dropped = make_job(1), make_job(2)
    await producer.enqueue(kept)
    await producer.enqueue(dropped)
    assert await worker.cancelled([kept.job_id, dropped.job_id]) == set()
    await producer.cancel(dropped.job_id)
    assert await worker.cancelled([kept.job_id, dropped.job_id]) == {dropped.job_id}
    assert await worker.cancelled([]) == set()
