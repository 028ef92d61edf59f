"""How many SQL statements one player action and one progress event cost, pinned.

A new read slipped into the turn path or the progress path shows up here as a changed
count; change the pinned number only when the extra statement is meant.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import NarratorCoordinator
from engine.queue.factory import open_queue
from engine.queue.jobs import JobProgress
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.table import StoryTable
from storage.models import NarratorCadence

from support.recording import RecordingListener
from support.statements import counted
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started

# One turn with the narrator due, 18 statements on SQLite and PostgreSQL alike:
# - the turn's transaction (10): lock the story and read its participants, the server's
#   settings and the channel's override; update the story, insert the turn, re-read the
#   turn with its alternatives and the story with its participants;
# - the narrator's job (8), one session: the story and participants, the server's settings
#   and the channel's override (its rules, kept for the job's life), then the summary,
#   the recent turns with their alternatives, and the lore.
TURN_WITH_NARRATOR_STATEMENTS = {"sqlite": 18, "postgresql": 18}
# A progress event of a running job: one read of the story's pending job id; the job's
# rules were kept when it was queued.
PROGRESS_STATEMENTS = 1


@pytest.fixture
async def table(session_factory: async_sessionmaker[AsyncSession], config_service):  # type: ignore[no-untyped-def]
    story = StoryService.create(session_factory)
    queue = await open_queue(f"memory://counts-{uuid.uuid4().hex}")
    narrator = NarratorCoordinator(
        service=story,
        contexts=StoryContextBuilder(session_factory),
        queue=queue,
        listener=RecordingListener(),
    )
    config_service.subscribe(narrator.forget_rules)
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
    try:
        yield StoryTable(story, narrator), story, narrator
    finally:
        await queue.close()


def _dialect(factory: async_sessionmaker[AsyncSession]) -> str:
    return str(factory.kw["bind"].dialect.name)


async def test_one_turn_with_the_narrator_due_costs_a_pinned_number_of_statements(
    table, session_factory
) -> None:
    story_table, story, _ = table
    await started(story, ALICE, BOB)
    with counted(session_factory) as statements:
        written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    assert written.narrator is not None and written.narrator.queued
    expected = TURN_WITH_NARRATOR_STATEMENTS[_dialect(session_factory)]
    assert len(statements) == expected, "\n".join(statements)


async def test_a_progress_event_reads_only_the_pending_job(table, session_factory) -> None:
    story_table, story, narrator = table
    view = await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    assert written.narrator is not None
    progress = JobProgress(written.narrator.job_id, view.id, "The lamp flares and")
    for _ in range(3):
        with counted(session_factory) as statements:
            await narrator.handle(progress)
        assert len(statements) == PROGRESS_STATEMENTS, "\n".join(statements)


async def test_changed_server_rules_are_read_again_by_running_jobs(
    table, session_factory, config_service: GuildConfigService
) -> None:
    story_table, story, narrator = table
    view = await started(story, ALICE, BOB)
    written = await story_table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    assert written.narrator is not None
    progress = JobProgress(written.narrator.job_id, view.id, "The lamp flares and")
    await config_service.update(GUILD, MOD, blocked_words=["lamp"])
    with counted(session_factory) as statements:
        await narrator.handle(progress)
    assert len(statements) > PROGRESS_STATEMENTS  # the new rules were read...
    assert narrator._listener.progress == []  # ...and the passage now breaks them
