"""Workers share their slots between servers: a burst from one cannot starve another."""

from __future__ import annotations

import asyncio

from engine.protocol import new_job_id
from engine.queue import GenerationJob, MemoryQueue, QueueConfig
from engine.queue.interfaces import Delivery
from engine.queue.jobs import decode_job, encode_job
from engine.worker.fair_share import FairShare
from engine.worker.loop import WorkerLoop
from tests.engine.worker.test_streaming_loop import TimedProcessor

from support.protocol import narrate_request
from support.queue_events import completed_events


def job(session_id: int, guild_id: int | None) -> GenerationJob:
    return GenerationJob(new_job_id(), session_id, narrate_request(), guild_id=guild_id)


def delivery(session_id: int, guild_id: int | None) -> Delivery:
    return Delivery(job(session_id, guild_id), 1, str(session_id))


def test_servers_take_turns_and_each_keeps_its_own_order() -> None:
    share = FairShare()
    share.add([delivery(n, 1) for n in (1, 2, 3, 4)])
    share.add([delivery(5, 2), delivery(6, None), delivery(7, 2), delivery(8, None)])
    assert len(share) == 8
    taken = []
    while (d := share.take()) is not None:
        taken.append(d.job.session_id)
    assert taken == [1, 5, 6, 2, 7, 8, 3, 4]
    assert len(share) == 0


def test_a_server_that_comes_back_waits_behind_those_already_waiting() -> None:
    share = FairShare()
    share.add([delivery(1, 1), delivery(2, 2), delivery(3, 2)])
    assert share.take().job.session_id == 1  # type: ignore[union-attr]
    share.add([delivery(4, 1)])
    assert [share.take().job.session_id for _ in range(3)] == [2, 4, 3]  # type: ignore[union-attr]
    share.add([delivery(5, 3)])
    assert [d.job.session_id for d in share.drain()] == [5]
    assert share.take() is None


def test_the_server_travels_with_the_job_and_older_jobs_have_none() -> None:
    sent = job(3, 2**62)
    assert decode_job(encode_job(sent)) == sent
    older = job(3, None)
    assert '"guild_id"' not in encode_job(older)
    assert decode_job(encode_job(older)).guild_id is None


async def test_one_servers_burst_does_not_hold_back_another_servers_story() -> None:
    queue = MemoryQueue(QueueConfig())
    # Sessions 1-6 of one server, queued first; session 7 of another, queued last.
    for session_id in range(1, 7):
        await queue.enqueue(job(session_id, 100))
    await queue.enqueue(job(7, 200))
    processor = TimedProcessor(rows=1)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())

    order = [event.session_id for event in await completed_events(queue, 7)]

    assert order == [1, 7, 2, 3, 4, 5, 6]
    assert processor.most_running == 1
    loop.stop()
    await asyncio.wait_for(running, 5)
    await queue.close()


async def test_jobs_claimed_but_not_started_go_back_to_the_queue_when_the_worker_stops() -> None:
    queue = MemoryQueue(QueueConfig())
    for session_id in (5, 6, 7):
        await queue.enqueue(job(session_id, 100))
    processor = TimedProcessor(rows=1)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)  # the first job runs; the other two wait, claimed
    loop.stop()
    await asyncio.wait_for(running, 5)

    # Another worker takes the two at once: they were handed back, not left to lapse.
    fetched = await queue.fetch(5, 0.5)
    assert sorted(d.job.session_id for d in fetched) == [6, 7]
    await queue.close()
