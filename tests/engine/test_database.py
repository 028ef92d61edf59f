"""A database that does not answer: every engine call ends in StoryUnavailable, and recovers."""

from __future__ import annotations

import logging
import shutil
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.database import ReportingSession, database_limits, reporting_sessions
from engine.errors import StoryError, StoryUnavailable
from engine.narrator.coordinator import NarratorCoordinator
from engine.rules.guild_config import GuildConfigService
from engine.rules.moderation import ModerationService
from engine.settings import Settings
from engine.story import StoryService
from engine.story.views import NarrationRequest
from engine.table import NARRATOR_NOT_ASKED, TURN_NOT_SAVED, StoryTable
from storage.database import DatabaseLimits, create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import NarratorCadence

from support.postgres_drill import ThrowawayPostgres, drill_server
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started

STATEMENT_S = 1.0
FAST = DatabaseLimits(connect_timeout_s=1.0, statement_timeout_s=STATEMENT_S, busy_timeout_s=0.3)
# A stalled server: the ping times out (statement timeout + the client's 0.5 s margin), then
# the driver gives the dead connection 2 s to close before it drops it.
STALL_BOUND_S = STATEMENT_S + 0.5 + 2.0 + 1.5


class QuietNarrator:
    """A narrator that is never due in these stories (the cadence is on demand)."""

    async def request(self, request: NarrationRequest) -> int:
        raise AssertionError("the narrator was not due")


class FailingNarrator:
    """A narrator whose own reads fail the way the database failed."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def request(self, request: NarrationRequest) -> int:
        raise self.error


def table_of(service: StoryService, narrator: object) -> StoryTable:
    return StoryTable(service, cast(NarratorCoordinator, narrator))


async def on_demand_story(sessions: async_sessionmaker[AsyncSession]) -> StoryService:
    service = StoryService.create(sessions)
    await GuildConfigService(sessions).update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND
    )
    await started(service, ALICE, BOB)
    return service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The session ---------------------------------------------------------------------------------
@pytest.fixture
async def locked_sqlite(
    sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Path]]:
    path = tmp_path / "story.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}", limits=FAST)
    try:
        yield create_session_factory(engine), path
    finally:
        await engine.dispose()


@pytest.fixture
def write_lock(locked_sqlite: tuple[object, Path]) -> Iterator[sqlite3.Connection]:
    """Another connection holding the story file's write lock (a long import, say)."""
    conn = sqlite3.connect(locked_sqlite[1], isolation_level=None, check_same_thread=False)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_a_database_that_does_not_answer_ends_the_session_in_story_unavailable(
    locked_sqlite: tuple[async_sessionmaker[AsyncSession], Path],
    write_lock: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions = reporting_sessions(locked_sqlite[0])
    write_lock.execute("BEGIN IMMEDIATE")
    with caplog.at_level(logging.ERROR, logger="engine.database"):
        with pytest.raises(StoryUnavailable) as caught:
            async with sessions() as db, db.begin():
                await db.execute(text("UPDATE guild_settings SET genre = :g"), {"g": "secret plot"})
    assert isinstance(caught.value, StoryError), "a refusal every front-end shows"
    assert str(caught.value) == (
        "The story database is unreachable; nothing was saved. Try again in a moment."
    )
    assert isinstance(caught.value.__cause__, OperationalError)
    [record] = caplog.records
    assert str(locked_sqlite[1]) in record.getMessage()
    assert "OperationalError: database is locked" in record.getMessage()
    assert "secret plot" not in record.getMessage(), "no statement parameters in the log"


async def test_what_the_database_refuses_is_raised_unchanged(
    locked_sqlite: tuple[async_sessionmaker[AsyncSession], Path],
) -> None:
    sessions = reporting_sessions(locked_sqlite[0])
    with pytest.raises(IntegrityError):
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO story_sessions (id) VALUES (NULL)"))


def test_sessions_are_wrapped_once(
    locked_sqlite: tuple[async_sessionmaker[AsyncSession], Path],
) -> None:
    once = reporting_sessions(locked_sqlite[0])
    assert once.class_ is ReportingSession
    assert reporting_sessions(once) is once


def test_the_limits_come_from_the_settings() -> None:
    settings = Settings(
        database_connect_timeout_s=2,
        database_statement_timeout_s=7,
        sqlite_busy_timeout_s=0.5,
    )
    assert database_limits(settings) == DatabaseLimits(2.0, 7.0, 0.5)
    assert database_limits(Settings()) == DatabaseLimits()


# Table calls ---------------------------------------------------------------------------------
async def test_a_locked_sqlite_file_refuses_the_turn_and_takes_it_once_free(
    locked_sqlite: tuple[async_sessionmaker[AsyncSession], Path],
    write_lock: sqlite3.Connection,
) -> None:
    sessions = locked_sqlite[0]
    service = await on_demand_story(sessions)
    table = table_of(service, QuietNarrator())
    write_lock.execute("BEGIN IMMEDIATE")

    started_at = time.monotonic()
    with pytest.raises(StoryUnavailable, match="your turn was not saved") as caught:
        await table.write_turn(CHANNEL, ALICE, "Alice climbs the stair.")
    assert str(caught.value) == TURN_NOT_SAVED
    assert time.monotonic() - started_at < FAST.busy_timeout_s + 2
    # Reads go on beside the writer.
    view = await service.queries.in_channel(CHANNEL)
    assert view is not None and view.turn_count == 0

    write_lock.execute("ROLLBACK")
    written = await table.write_turn(CHANNEL, ALICE, "Alice climbs the stair.")
    assert written.turn.number == 1


async def test_a_postgres_server_nobody_listens_on_refuses_every_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql+asyncpg://taleweaver:hunter2@127.0.0.1:{_free_port()}/stories"
    engine = create_engine(url, limits=FAST)
    sessions = create_session_factory(engine)
    service = StoryService.create(sessions)
    table = table_of(service, QuietNarrator())
    configs = GuildConfigService(sessions)
    moderation = ModerationService(sessions, service.guard, configs)
    try:
        with caplog.at_level(logging.ERROR, logger="engine.database"):
            with pytest.raises(StoryUnavailable, match="your turn was not saved"):
                await table.write_turn(CHANNEL, ALICE, "Alice climbs the stair.")
        for call in (
            service.queries.in_channel(CHANNEL),
            service.lifecycle.start(
                guild_id=GUILD, channel_id=CHANNEL, actor=ALICE, title="T", genre="fantasy"
            ),
            configs.get(GUILD),
            moderation.blocked_words(GUILD, MOD),
        ):
            with pytest.raises(StoryUnavailable, match="nothing was saved"):
                await call
    finally:
        await engine.dispose()
    message = caplog.records[0].getMessage()
    assert "taleweaver:***@127.0.0.1" in message and "hunter2" not in message
    assert "ConnectionRefusedError" in message


async def test_a_sqlite_file_that_cannot_be_opened_refuses_the_call(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'story.db'}")
    try:
        service = StoryService.create(create_session_factory(engine))
        with pytest.raises(StoryUnavailable, match="your turn was not saved"):
            await table_of(service, QuietNarrator()).write_turn(CHANNEL, ALICE, "Hello.")
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error")),
        ConnectionRefusedError(111, "Connect call failed"),
        StoryUnavailable(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_stored_turn_whose_narrator_cannot_read_the_story_says_it_will_continue(
    session_factory: async_sessionmaker[AsyncSession], error: Exception
) -> None:
    service = StoryService.create(session_factory)
    await started(service, ALICE, BOB)  # the narrator speaks after every turn by default
    written = await table_of(service, FailingNarrator(error)).write_turn(
        CHANNEL, ALICE, "Alice climbs the stair."
    )
    assert written.narrator is not None and written.narrator.refusal == NARRATOR_NOT_ASKED
    assert [t.text for t in await service.queries.turns(written.session.id)] == [
        "Alice climbs the stair."
    ]
    assert await service.queries.pending_job(written.session.id) == written.narrator.job_id


async def test_a_narrator_failing_for_another_reason_is_not_hidden(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    service = StoryService.create(session_factory)
    await started(service, ALICE, BOB)
    with pytest.raises(KeyError):
        await table_of(service, FailingNarrator(KeyError("bug"))).write_turn(
            CHANNEL, ALICE, "Alice climbs the stair."
        )


# A real PostgreSQL server that stalls, stops and comes back ---------------------------------
@pytest.fixture
def drill() -> Iterator[ThrowawayPostgres]:
    with drill_server() as server:
        yield server


async def test_a_stalled_postgres_fails_calls_in_bounded_time_and_recovers(
    drill: ThrowawayPostgres,
) -> None:
    await upgrade(drill.url)
    engine = create_engine(drill.url, limits=FAST)
    try:
        service = await on_demand_story(create_session_factory(engine))
        table = table_of(service, QuietNarrator())
        await table.write_turn(CHANNEL, ALICE, "Alice climbs the stair.")

        drill.freeze()  # every server process stops where it stands; sockets stay open
        try:
            for _ in range(2):
                started_at = time.monotonic()
                with pytest.raises(StoryUnavailable, match="your turn was not saved"):
                    await table.write_turn(CHANNEL, BOB, "Bob follows.")
                assert time.monotonic() - started_at < STALL_BOUND_S
        finally:
            drill.thaw()
        # Nothing restarted: the next call gets a fresh connection and succeeds.
        written = await table.write_turn(CHANNEL, BOB, "Bob follows.")
        assert written.turn.number == 2

        drill.stop()
        started_at = time.monotonic()
        with pytest.raises(StoryUnavailable):
            await service.queries.in_channel(CHANNEL)
        assert time.monotonic() - started_at < FAST.connect_timeout_s + 1
        drill.start()
        written = await table.write_turn(CHANNEL, ALICE, "Alice reaches the lamp.")
        assert written.turn.number == 3
    finally:
        await engine.dispose()
