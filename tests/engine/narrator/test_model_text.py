"""Text from the model is stored even when it holds characters no database accepts."""

from __future__ import annotations

from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import NarratorCoordinator, summary_job_id
from engine.queue import MemoryQueue, QueueConfig
from engine.queue.jobs import JobCompleted
from engine.story import StoryService

from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, started


async def test_a_summary_with_a_nul_byte_is_stored_without_it(session_factory) -> None:
    story = StoryService.create(session_factory)
    queue = MemoryQueue(QueueConfig())
    narrator = NarratorCoordinator(
        service=story,
        contexts=StoryContextBuilder(session_factory),
        queue=queue,
        listener=RecordingListener(),
    )
    view = await started(story, ALICE, BOB)
    await story.turns.submit_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    job_id = summary_job_id(view.id, 1)

    await narrator.handle(JobCompleted(job_id, view.id, "summarise", "Alice lit\x00 the lamp.", {}))

    summary = await story.queries.latest_summary(view.id)
    assert summary is not None and summary.text == "Alice lit the lamp."
    await queue.close()
