"""Which channels hold a story is known without reading the database for each message."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import reporting_sessions
from engine.story import StoryService
from engine.story.channels import StoryChannels
from storage.database import create_engine, create_session_factory

from support.statements import counted
from support.stories import ALICE, BOB, CHANNEL, started


class Ticking:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_channels_without_a_story_are_answered_from_memory_between_reads(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    service = StoryService.create(session_factory)
    await started(service, ALICE, BOB)
    with counted(session_factory) as statements:
        assert not await service.queries.may_hold_story(CHANNEL + 1)
        for other in range(CHANNEL + 2, CHANNEL + 12):
            assert not await service.queries.may_hold_story(other)
        assert await service.queries.may_hold_story(CHANNEL)
    assert len(statements) == 1, "one read of the list, then memory"


async def test_a_story_opened_or_ended_here_is_known_at_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    service = StoryService.create(session_factory)
    assert not await service.queries.may_hold_story(CHANNEL)
    await started(service, ALICE, BOB)
    with counted(session_factory) as statements:
        assert await service.queries.may_hold_story(CHANNEL)
    await service.lifecycle.end(CHANNEL, ALICE)
    with counted(session_factory) as later:
        assert not await service.queries.may_hold_story(CHANNEL)
    assert statements == [] and later == []


async def test_a_story_another_process_opened_is_found_once_the_list_is_old(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock = Ticking()
    here = StoryService.create(session_factory)
    here.store.channels = StoryChannels(here.store.sessions, refresh_s=30.0, clock=clock)
    assert not await here.queries.may_hold_story(CHANNEL)
    elsewhere = StoryService.create(session_factory)  # `taleweaver import`, say
    await started(elsewhere, ALICE, BOB)
    clock.now = 29.0
    assert not await here.queries.may_hold_story(CHANNEL)
    clock.now = 31.0
    assert await here.queries.may_hold_story(CHANNEL)


async def test_a_read_never_undoes_a_change_noted_after_it_began(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    channels = StoryChannels(session_factory)
    # A read that found no story began before a story was opened in the channel...
    since = channels.mark()
    channels.note(CHANNEL, holds_story=True)
    channels.note(CHANNEL, holds_story=False, since=since)
    assert await channels.may_hold_story(CHANNEL)
    # ...while a read begun afterwards is believed.
    channels.note(CHANNEL, holds_story=False, since=channels.mark())
    assert CHANNEL not in channels._open


async def test_a_failed_read_is_not_taken_for_an_empty_list(tmp_path: Path) -> None:
    # A database without tables: the read fails as an outage would.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        channels = StoryChannels(reporting_sessions(create_session_factory(engine)))
        assert await channels.may_hold_story(CHANNEL), "unknown: the caller asks itself"
    finally:
        await engine.dispose()
