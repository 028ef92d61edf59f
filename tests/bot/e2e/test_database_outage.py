"""The story database stops answering mid-story: players are told, and play resumes after."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url

from discord_double import StoredMessage
from support.postgres_drill import ThrowawayPostgres, drill_server

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

NOT_SAVED = "❌ The story database is unreachable; your turn was not saved. Try again in a moment."
# SQLite's busy timeout (TALEWEAVER_SQLITE_BUSY_TIMEOUT_S, 5 s by default) plus room.
LOCKED_REPLY_WAIT = 15.0


@pytest.fixture
def drill() -> Iterator[ThrowawayPostgres]:
    with drill_server() as server:
        yield server


@pytest.fixture
def story_database(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    # A scenario asking for the drill server plays on it; the others on a SQLite file.
    if "drill" in request.fixturenames:
        server: ThrowawayPostgres = request.getfixturevalue("drill")
        return server.url
    path = tmp_path / "stories.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def answering(message: StoredMessage) -> Callable[[StoredMessage], bool]:
    """Match the bot's reply to MESSAGE."""

    def answers(candidate: StoredMessage) -> bool:
        reference = candidate.payload.get("message_reference") or {}
        return reference.get("message_id") == str(message.id)

    return answers


async def test_a_turn_written_while_sqlite_is_locked_is_answered_and_can_be_written_again(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")
        await table.say("alice", "Alice unrolls the map on the table.")
        ping = await table.ping("bob")

        # A long import or migration holds the file's write lock.
        database = make_url(table.database_url).database
        assert database is not None
        lock = sqlite3.connect(database, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            turn = await table.say("bob", "Bob points at the island no map should show.")
            reply = await double.wait_for_message(
                "story", answering(turn), timeout=LOCKED_REPLY_WAIT
            )
            assert reply.content == NOT_SAVED
            assert reply.pinged_user_ids == []
            await double.wait_for(lambda: table.reactions_on(turn), what="a reaction")
            assert table.reactions_on(turn) == ["❌"]
            # Reading goes on beside the lock: the story shows Bob's turn still open.
            session = await table.session()
            assert session.current_player is not None
            assert session.current_player.user_id == table.user("bob").id
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        await table.say("bob", "Bob points at the island no map should show.")
        await table.ping("alice", after=ping)
        assert [t.author_name for t in await table.turns()] == ["Alice", "Bob"]
    table.audit_mentions()


async def test_players_hear_of_a_postgres_outage_and_play_on_once_it_is_back(
    table: StoryTable, drill: ThrowawayPostgres
) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")
        await table.say("alice", "Alice unrolls the map on the table.")
        ping = await table.ping("bob")

        drill.stop()
        try:
            turn = await table.say("bob", "Bob points at the island no map should show.")
            chatter = await table.say("cara", "Is the bot asleep?")
            reply = await double.wait_for_message("story", answering(turn))
            assert reply.content.startswith("❌ The story database is unreachable")
            await double.wait_for(lambda: table.reactions_on(turn), what="a reaction")
            assert table.reactions_on(turn) == ["❌"]
            # Someone outside the story is not answered, outage or not.
            assert table.reactions_on(chatter) == []
            assert not any(answering(chatter)(m) for m in table.bot_messages())
        finally:
            drill.start()

        # The same bot, nothing restarted: the next turn is taken.
        await table.say("bob", "Bob points at the island no map should show.")
        await table.ping("alice", after=ping)
        assert [t.author_name for t in await table.turns()] == ["Alice", "Bob"]
    table.audit_mentions()
