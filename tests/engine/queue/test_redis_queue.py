"""Redis-only behaviour: crashed and slow workers, dead letters, key layout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.protocol import new_job_id
from engine.queue import (
    GenerationJob,
    JobCompleted,
    JobFailed,
    JobProgress,
    QueueConfig,
)
from engine.worker.loop import WorkerLoop

from support.protocol import narrate_request

SLOW_WORKER = Path(__file__).with_name("slow_worker.py")
CRASH_LIMITS = {"heartbeat_s": 0.2, "visibility_timeout_s": 1.0, "block_s": 0.1}


def make_job(session_id: int) -> GenerationJob:
    return GenerationJob(new_job_id(), session_id, narrate_request())


def labelled_batch(label: str, calls: list[str]):
    def process(jobs, on_progress):
        calls.extend(job.job_id for job in jobs)
        return [(job.job_id, f"text from {label}") for job in jobs]

    return process


@pytest.fixture
def config(key_prefix: str) -> QueueConfig:
    return QueueConfig(key_prefix=key_prefix, **CRASH_LIMITS)


@pytest.fixture
def start_slow_worker(redis_url: str, key_prefix: str):
    processes: list[subprocess.Popen[str]] = []

    def start(steps: int = 200) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(SLOW_WORKER), redis_url, key_prefix, str(steps)], text=True
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(5)


async def test_job_of_a_killed_worker_is_completed_once_by_another_worker(
    redis_ends, config, start_slow_worker, redis_client
):
    slow_worker_process = start_slow_worker()
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    job = make_job(3)
    await producer.enqueue(job)

    first = await events.next_progress(within_s=15)  # the slow worker has the job
    assert first.job_id == job.job_id
    os.kill(slow_worker_process.pid, signal.SIGKILL)
    slow_worker_process.wait(5)

    rescuer_calls: list[str] = []
    rescuer = await redis_ends.worker(config)
    loop = WorkerLoop(rescuer, labelled_batch("the rescuer", rescuer_calls), fetch_wait_s=0.2)
    running = asyncio.create_task(loop.run())
    final = await events.next_final(within_s=10)
    await producer.ack(final)
    assert await events.no_final_within(0.7)
    loop.stop()
    await asyncio.wait_for(running, 3)

    assert isinstance(final, JobCompleted)
    assert final.job_id == job.job_id
    assert final.text == "text from the rescuer"
    assert final.meta["delivery_count"] == 2
    assert rescuer_calls == [job.job_id]
    assert len(events.finals()) == 1
    prefix = config.key_prefix
    assert redis_client.xlen(f"{prefix}:jobs") == 0
    assert redis_client.xpending(f"{prefix}:jobs", "workers")["pending"] == 0
    assert redis_client.xlen(f"{prefix}:results") == 0
    assert redis_client.xlen(f"{prefix}:dead") == 0
    assert not redis_client.exists(f"{prefix}:session:3")

    restarted = await redis_ends.producer(config)
    assert await redis_ends.watch(restarted).no_final_within(0.5)


async def test_terminated_worker_finishes_its_batch_before_exiting(
    redis_ends, config, start_slow_worker
):
    worker_process = start_slow_worker(steps=10)
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    job = make_job(11)
    await producer.enqueue(job)

    await events.next_progress(within_s=15)
    worker_process.send_signal(signal.SIGTERM)
    final = await events.next_final()

    assert isinstance(final, JobCompleted)
    assert final.text == "text from the slow worker"
    assert await asyncio.to_thread(worker_process.wait, 5) == 0


async def test_long_job_of_a_heartbeating_worker_is_not_taken_over(redis_ends, config):
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    job = make_job(5)
    await producer.enqueue(job)

    def long_generation(jobs, on_progress):
        time.sleep(2.5)  # 2.5 visibility timeouts
        return [(j.job_id, "text from the first worker") for j in jobs]

    first_worker = await redis_ends.worker(config)
    second_worker = await redis_ends.worker(config)
    second_calls: list[str] = []
    first_batch = asyncio.create_task(WorkerLoop(first_worker, long_generation).run_once(2))
    await asyncio.sleep(0.3)
    second_loop = WorkerLoop(second_worker, labelled_batch("the second worker", second_calls))
    second_running = asyncio.create_task(second_loop.run())

    final = await events.next_final(within_s=6)
    await first_batch
    second_loop.stop()
    await asyncio.wait_for(second_running, 3)

    assert isinstance(final, JobCompleted)
    assert final.text == "text from the first worker"
    assert final.meta["delivery_count"] == 1
    assert second_calls == []


async def test_result_of_a_worker_whose_job_was_taken_over_is_dropped(redis_ends, config):
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    await producer.enqueue(make_job(6))
    stalled = await redis_ends.worker(config)
    [stalled_delivery] = await stalled.fetch(1, wait_s=1)
    stalled._running.clear()  # simulate a heartbeat that no longer runs (a frozen process)
    await asyncio.sleep(config.visibility_timeout + 0.1)

    rescuer = await redis_ends.worker(config)
    [rescued] = await rescuer.fetch(1, wait_s=1)
    assert await stalled.complete(stalled_delivery, "late text") is False
    assert await rescuer.complete(rescued, "rescued text") is True

    final = await events.next_final()
    assert isinstance(final, JobCompleted)
    assert final.text == "rescued text"
    assert await events.no_final_within(0.3)


async def test_job_delivered_too_often_is_dead_lettered_on_fetch(
    redis_ends, config, redis_client
):
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    job = make_job(8)
    await producer.enqueue(job)
    prefix = config.key_prefix
    # A job that crashed its worker on every delivery: pending, idle, delivered 3 times.
    [[_, [(entry_id, _)]]] = redis_client.xreadgroup(
        "workers", "crashed", {f"{prefix}:jobs": ">"}, count=1
    )
    redis_client.xclaim(
        f"{prefix}:jobs", "workers", "crashed", 0, [entry_id],
        idle=10_000, retrycount=3, justid=True,
    )

    worker = await redis_ends.worker(config)
    assert await worker.fetch(1, wait_s=0.3) == []
    final = await events.next_final()

    assert isinstance(final, JobFailed)
    assert final.dead_lettered
    assert "gave up after 3 deliveries" in final.reason
    [(_, dead)] = redis_client.xrange(f"{prefix}:dead")
    assert json.loads(dead["job"])["job_id"] == job.job_id
    assert dead["deliveries"] == "4"
    assert not redis_client.exists(f"{prefix}:session:8")


async def test_unreadable_job_is_dead_lettered_without_blocking_the_queue(
    redis_ends, config, redis_client
):
    producer = await redis_ends.producer(config)
    prefix = config.key_prefix
    redis_client.xadd(f"{prefix}:jobs", {"job": "{not json"})
    good = make_job(1)
    await producer.enqueue(good)

    worker = await redis_ends.worker(config)
    deliveries = await worker.fetch(2, wait_s=0.5)

    assert [delivery.job for delivery in deliveries] == [good]
    [(_, dead)] = redis_client.xrange(f"{prefix}:dead")
    assert dead["reason"].startswith("unreadable job")


async def test_job_in_an_older_wire_format_is_failed_by_name_without_retry(
    redis_ends, config, redis_client
):
    producer = await redis_ends.producer(config)
    events = redis_ends.watch(producer)
    prefix = config.key_prefix
    old_format = {"job_id": "old-1", "session_id": 3, "kind": "narrate", "enqueued_at": 1.0}
    old_format["payload"] = {"context": {}, "sampling": {}, "retry_of_turn": None}
    redis_client.xadd(f"{prefix}:jobs", {"job": json.dumps(old_format)})

    worker = await redis_ends.worker(config)
    assert await worker.fetch(1, wait_s=0.3) == []
    final = await events.next_final()

    assert final == JobFailed(
        "old-1", 3, "narrate", "JobRejected: job message lacks field 'request'", False
    )
    assert redis_client.xlen(f"{prefix}:jobs") == 0  # retired: no worker sees it again
    assert redis_client.xlen(f"{prefix}:dead") == 0


async def test_keys_live_under_the_prefix_and_transient_ones_vanish_after_ack(
    redis_ends, config, redis_client
):
    producer = await redis_ends.producer(config)
    worker = await redis_ends.worker(config)
    events = redis_ends.watch(producer)
    job = make_job(2)
    await producer.enqueue(job)
    prefix = config.key_prefix
    assert redis_client.hget(f"{prefix}:job-entries", job.job_id)
    assert redis_client.get(f"{prefix}:session:2") == job.job_id
    assert 0 < redis_client.pttl(f"{prefix}:session:2") <= config.session_slot_ttl_s * 1000

    await WorkerLoop(worker, labelled_batch("w", [])).run_once(2)
    await producer.ack(await events.next_final())

    assert sorted(redis_client.scan_iter(match=f"{prefix}:*")) == [
        f"{prefix}:{name}" for name in ("jobs", "progress", "results")
    ]
    assert redis_client.xlen(f"{prefix}:jobs") == 0
    assert redis_client.xlen(f"{prefix}:results") == 0


async def test_cancelling_the_event_reader_stops_it(redis_ends, config):
    producer = await redis_ends.producer(config)
    for _ in range(20):
        reader = asyncio.create_task(anext(producer.events()))
        await asyncio.sleep(0.03)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(reader, 1)


async def test_progress_from_a_stalled_batch_does_not_block_completion(redis_ends, config):
    producer = await redis_ends.producer(config)
    worker = await redis_ends.worker(config)
    events = redis_ends.watch(producer)
    job = make_job(4)
    await producer.enqueue(job)
    gate = threading.Event()

    def model(jobs, on_progress):
        on_progress(job.job_id, "half")
        gate.wait(2)
        return [(job.job_id, "whole")]

    batch = asyncio.create_task(WorkerLoop(worker, model).run_once(2))
    assert await events.next_progress() == JobProgress(job.job_id, 4, "half")
    gate.set()
    await batch
    final = await events.next_final()
    assert isinstance(final, JobCompleted)
    assert final.text == "whole"
