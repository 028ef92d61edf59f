"""Stories in their own threads as Discord treats threads: a refused title names none, an
archived thread is reopened, a locked one pauses the story, and the invite's permissions
(no Manage Threads) are all the bot uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from engine.errors import StoryUnavailable
from storage.models import SessionStatus

from discord_double import EPHEMERAL, DoubleChannel, InteractionRecord, StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

PREMISE = "A lighthouse keeper finds a door in the sea."


async def answer_of(table: StoryTable, record: InteractionRecord) -> StoredMessage:
    await table.double.wait_for_response(record)
    return await table.reply_to(record)


async def in_thread(
    table: StoryTable, user: str, thread: DoubleChannel, command: str, **options: Any
) -> StoredMessage:
    """Run a /story command in the thread and return its answer."""
    record = await table.double.invoke(user, thread, "story", command.split(), options)
    return await answer_of(table, record)


async def thread_story(table: StoryTable, *, timeout_seconds: int | None = None) -> DoubleChannel:
    """Start a story in its own thread with Alice and Bob, and begin it."""
    if timeout_seconds is not None:
        await table.configure(turn_timeout_seconds=timeout_seconds)
    record = await table.command(
        "alice", "story start", title="The Lantern", premise=PREMISE, thread=True
    )
    await answer_of(table, record)
    [thread] = table.double.threads
    await in_thread(table, "bob", thread, "join")
    await in_thread(table, "alice", thread, "begin")
    return thread


async def thread_status(table: StoryTable, thread: DoubleChannel) -> SessionStatus:
    view = await table.running_bot.runtime.story.queries.in_channel(thread.id)
    assert view is not None
    return view.status


async def test_refused_thread_title_creates_no_thread(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.configure(blocked_words=["moonstone"])
        record = await table.command(
            "alice", "story start", title="The Moonstone", premise=PREMISE, thread=True
        )
        refusal = await answer_of(table, record)
        assert refusal.content.startswith("This server does not allow")
        assert double.threads == [], "no thread was opened, so none carries the title"
        assert double.requests_to("POST /channels/{channel_id}/threads") == []
        assert await table.running_bot.runtime.story.queries.list_sessions(double.guild.id) == []
        audit = await answer_of(table, await table.command("moderator", "storyconfig audit"))
        assert "**blocked_word** → refused" in audit.content


async def test_a_story_that_fails_to_start_leaves_its_thread_with_a_note(
    table: StoryTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    double = table.double
    async with table.running() as bot:

        async def database_gone(**_: Any) -> Any:
            raise StoryUnavailable()

        monkeypatch.setattr(bot.runtime.story.lifecycle, "start", database_gone)
        record = await table.command(
            "alice", "story start", title="The Lantern", premise=PREMISE, thread=True
        )
        refusal = await answer_of(table, record)
        assert refusal.content.startswith("The story database is unreachable")
        # Deleting the thread needs Manage Threads, which the invite does not grant.
        [thread] = double.threads
        assert double.requests_to("DELETE /channels/{channel_id}") == []
        note = await double.wait_for_message(thread, lambda m: "could not start" in m.content)
        assert note.content.startswith("⚠️ The story could not start in this thread.")


async def test_resume_unarchives_an_archived_story_thread(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        thread = await thread_story(table)
        await in_thread(table, "alice", thread, "pause")
        # A week without messages: Discord archives the thread.
        await double.update_channel(thread, archived=True)

        resumed = await in_thread(table, "alice", thread, "resume")
        assert resumed.content.startswith("▶️ Alice resumes **The Lantern**.")
        assert not thread.archived
        [reopened] = double.requests_to("PATCH /channels/{channel_id}")
        assert reopened.body == {"archived": False} and reopened.status == 200
        assert await thread_status(table, thread) == SessionStatus.ACTIVE

        # Locked by a moderator: only they may reopen it; the host is told so.
        await in_thread(table, "alice", thread, "pause")
        await double.update_channel(thread, archived=True, locked=True)
        refusal = await in_thread(table, "alice", thread, "resume")
        assert refusal.flags & EPHEMERAL
        assert refusal.content.startswith("A moderator locked this thread")
        assert thread.archived and thread.locked
        assert await thread_status(table, thread) == SessionStatus.PAUSED


async def test_a_post_into_an_archived_story_thread_reopens_it(table: StoryTable) -> None:
    double = table.double
    async with table.running() as bot:
        thread = await thread_story(table, timeout_seconds=30)
        await double.update_channel(thread, archived=True)

        # Alice's time runs out: the notice goes into the thread, reopened first.
        table.clock.advance(31)
        bot.runtime.timers.poke()
        notice = await double.wait_for_message(thread, lambda m: "ran out of time" in m.content)
        assert notice.pinged_user_ids == [table.user("bob").id]
        assert not thread.archived
        assert await thread_status(table, thread) == SessionStatus.ACTIVE


async def test_a_locked_story_thread_pauses_the_story_and_tells_the_host(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running() as bot:
        thread = await thread_story(table, timeout_seconds=30)
        await double.update_channel(thread, archived=True, locked=True)

        with double.expect_violations("in locked thread"):
            table.clock.advance(31)
            bot.runtime.timers.poke()

            async def status() -> SessionStatus:
                return await thread_status(table, thread)

            await table.eventually(status, SessionStatus.PAUSED)
        assert thread.locked, "the bot leaves a moderator's lock alone"
        record = await double.invoke("alice", thread, "story", ["status"])
        await answer_of(table, record)
        await double.wait_for_response(record, followups=1, timeout=15.0)
        [notice] = [m for m in record.followups if m.content.startswith("⚠️")]
        assert notice.content == (
            f"⚠️ I paused the story because I could not post: {thread.mention} is locked. "
            "A moderator can unlock it (only they may reopen a locked thread); then "
            "`/story resume`."
        )
