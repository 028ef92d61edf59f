"""The narration supervisor: lost jobs are queued again, and no story waits forever."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import DELAYED_MESSAGE, NarratorCoordinator
from engine.narrator.supervisor import LATE_REASON, LOST_REASON, NarrationSupervisor
from engine.queue import MemoryQueue, QueueConfig
from engine.queue.errors import QueueUnavailable
from engine.queue.jobs import GenerationJob, JobCompleted
from engine.story import StoryService
from engine.table import StoryTable
from storage.models import NarratorCadence, TurnKind

from support.recording import RecordingListener
from support.stories import ALICE, BOB, CARA, CHANNEL, DAN, GUILD, MOD, started


class ForgetfulQueue(MemoryQueue):
    """The in-process queue, able to lose everything as Redis does when restarted bare."""

    def __init__(self) -> None:
        super().__init__(QueueConfig(max_in_flight=8))
        self.reachable = True

    def lose_everything(self) -> None:
        self._entries.clear()
        self._session_slots.clear()

    async def enqueue(self, job: GenerationJob) -> int:
        if not self.reachable:
            raise QueueUnavailable("redis://queue.internal:6379/0", ConnectionError("refused"))
        return await super().enqueue(job)


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def table(session_factory: async_sessionmaker[AsyncSession], config_service):  # type: ignore[no-untyped-def]
    story = StoryService.create(session_factory)
    queue = ForgetfulQueue()
    listener = RecordingListener()
    narrator = NarratorCoordinator(
        service=story,
        contexts=StoryContextBuilder(session_factory),
        queue=queue,
        listener=listener,
    )
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
    clock = SteppedClock()
    supervisor = NarrationSupervisor(
        narrator, story.queries, max_requeues=2, deadline_s=300.0, clock=clock
    )
    try:
        yield StoryTable(story, narrator), story, narrator, queue, listener, supervisor, clock
    finally:
        await queue.close()


async def test_a_job_the_queue_lost_is_queued_again_after_the_grace_sweeps(table) -> None:
    story_table, story, _, queue, _, supervisor, _ = table
    await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    job_id = written.narrator.job_id
    assert await queue.position(job_id) == 1

    queue.lose_everything()
    first = await supervisor.sweep()
    assert first.requeued == () and await queue.position(job_id) is None
    second = await supervisor.sweep()

    assert len(second.requeued) == 1
    assert await queue.position(job_id) == 1  # the same job id, so only one result is stored


async def test_a_live_job_is_left_alone(table) -> None:
    story_table, story, _, queue, listener, supervisor, _ = table
    await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")

    for _ in range(5):
        report = await supervisor.sweep()
        assert report.pending == 1 and report.requeued == () and report.handed_back == ()
    assert await queue.position(written.narrator.job_id) == 1
    assert listener.failures == []


async def test_after_its_requeues_are_spent_the_turn_goes_back_with_a_message(table) -> None:
    story_table, story, _, queue, listener, supervisor, _ = table
    view = await started(story, ALICE, BOB)
    await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")

    handed_back: tuple[int, ...] = ()
    for _ in range(10):
        queue.lose_everything()
        handed_back = (await supervisor.sweep()).handed_back
        if handed_back:
            break

    assert handed_back == (view.id,)
    assert [reason for _, reason in listener.failures] == [LOST_REASON]
    session = await story.queries.get(view.id)
    assert not session.narrator_pending
    # The players can write again.
    await story_table.write_turn(CHANNEL, BOB, "Bob climbs the stair.")


async def test_a_narration_past_its_deadline_goes_back_to_the_players(table) -> None:
    story_table, story, _, _, listener, supervisor, clock = table
    view = await started(story, ALICE, BOB)
    await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    await supervisor.sweep()

    clock.now += 299
    assert (await supervisor.sweep()).handed_back == ()
    clock.now += 2
    assert (await supervisor.sweep()).handed_back == (view.id,)
    assert [reason for _, reason in listener.failures] == [LATE_REASON]


async def test_at_start_up_a_missing_job_is_queued_at_once(table) -> None:
    story_table, story, _, queue, _, supervisor, _ = table
    await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    queue.lose_everything()

    report = await supervisor.sweep(startup=True)

    assert len(report.requeued) == 1
    assert await queue.position(written.narrator.job_id) == 1


async def test_an_unreachable_queue_keeps_the_turn_pending_and_names_no_address(table) -> None:
    story_table, story, _, queue, listener, supervisor, _ = table
    view = await started(story, ALICE, BOB)
    queue.reachable = False

    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")

    assert written.narrator.refusal == DELAYED_MESSAGE
    assert "redis" not in written.narrator.refusal and "6379" not in written.narrator.refusal
    assert (await story.queries.get(view.id)).narrator_pending  # nothing lost
    queue.reachable = True
    await supervisor.sweep()
    assert len((await supervisor.sweep()).requeued) == 1
    assert await queue.position(written.narrator.job_id) == 1
    assert listener.failures == []


async def test_one_story_failing_its_check_does_not_stop_the_others(table, monkeypatch) -> None:
    story_table, story, narrator, queue, _, supervisor, _ = table
    first = await started(story, ALICE, BOB)
    second = await started(story, CARA, DAN, channel=CHANNEL + 1)
    await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    await story_table.write_turn(CHANNEL + 1, CARA, "Cara rows out.")
    queue.lose_everything()
    real_requeue = narrator.requeue

    async def requeue(request):  # type: ignore[no-untyped-def]
        if request.session_id == first.id:
            raise ConnectionResetError("database went away")
        return await real_requeue(request)

    monkeypatch.setattr(narrator, "requeue", requeue)
    await supervisor.sweep()
    report = await supervisor.sweep()

    assert report.requeued == (second.id,)


async def test_a_result_that_could_not_be_stored_is_offered_again(session_factory) -> None:
    queue = MemoryQueue(QueueConfig(redeliver_s=0.2))
    job_id = uuid.uuid4().hex
    events = queue.events()
    queue._emit(JobCompleted(job_id, 1, "narrate", "The lamp flares.", {}))

    first = await anext(events)
    # Not acknowledged (the database was down while it was handled): it comes back.
    again = await anext(events)

    assert first == again
    await queue.ack(again)
    await queue.close()


async def test_a_lost_job_requeued_twice_stores_one_passage(table) -> None:
    story_table, story, narrator, queue, listener, supervisor, _ = table
    view = await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    job_id = written.narrator.job_id
    queue.lose_everything()
    await supervisor.sweep()
    await supervisor.sweep()

    # The first attempt's result arrives late, then the second attempt's.
    for _ in range(2):
        await narrator.handle(JobCompleted(job_id, view.id, "narrate", "The lamp flares.", {}))

    turns = await story.queries.turns(view.id)
    assert [turn.kind for turn in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR]
    assert len(listener.stored) == 1
