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


def sessions(deliveries: list[Delivery]) -> list[int]:
    return [d.job.session_id for d in deliveries]


def test_servers_take_turns_and_each_keeps_its_own_order() -> None:
    share = FairShare()
    claimed = [delivery(n, 1) for n in (1, 2, 3, 4)]
    claimed += [delivery(5, 2), delivery(6, None), delivery(7, 2), delivery(8, None)]
    start, rest = share.choose(claimed, 6)
    assert sessions(start) == [1, 5, 6, 2, 7, 8]
    assert sessions(rest) == [3, 4]


def test_the_server_served_longest_ago_goes_first_across_choices() -> None:
    share = FairShare()
    # One row at a time, as a busy worker frees them: server 1's burst, then server 2.
    start, _ = share.choose([delivery(1, 1), delivery(2, 1), delivery(3, 1)], 1)
    assert sessions(start) == [1]
    start, rest = share.choose([delivery(2, 1), delivery(3, 1), delivery(9, 2)], 1)
    assert sessions(start) == [9] and sessions(rest) == [2, 3]
    start, _ = share.choose([delivery(2, 1), delivery(3, 1), delivery(10, 2)], 1)
    assert sessions(start) == [2]  # server 1 waited longer than server 2 now
    assert share.choose([], 3) == ([], [])


def test_forgotten_servers_count_as_never_served() -> None:
    share = FairShare(remembered=2)
    for guild in (1, 2, 3):  # server 1 is forgotten when server 3 is served
        share.choose([delivery(guild, guild)], 1)
    start, _ = share.choose([delivery(20, 2), delivery(10, 1)], 1)
    assert sessions(start) == [10]


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


async def test_jobs_claimed_but_not_started_go_straight_back_to_the_queue() -> None:
    queue = MemoryQueue(QueueConfig())
    for session_id in (5, 6, 7):
        await queue.enqueue(job(session_id, 100))
    processor = TimedProcessor(rows=1)
    loop = WorkerLoop(queue, processor, fetch_wait_s=0.1)
    running = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)  # the first job runs for half a second

    # Another worker can take the other two at once: nothing is held back from it.
    fetched = await queue.fetch(5, 0.2)
    assert sorted(d.job.session_id for d in fetched) == [6, 7]
    assert processor.most_running == 1
    loop.stop()
    await asyncio.wait_for(running, 5)
    await queue.close()
