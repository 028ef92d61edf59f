"""Discord's permissions as the bot meets them: checked at start, a refused post pauses.

The double gives the bot's role exactly the README invite's permissions and computes
every channel's permissions as Discord does (roles, @everyone, channel overwrites,
threads following their parent), so a moderator's overwrite takes effect here as there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import SessionStatus, TurnKind

from discord_double import EPHEMERAL, InteractionRecord, StoredMessage
from discord_double.world import (
    ADD_REACTIONS,
    MANAGE_GUILD,
    MODERATOR_PERMISSIONS,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
)

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

PREMISE = "A lighthouse keeper finds a door in the sea."


async def answer(table: StoryTable, record: InteractionRecord) -> StoredMessage:
    """Return the one message answering an interaction."""
    return await table.reply_to(record)


async def host_notice(table: StoryTable, record: InteractionRecord) -> StoredMessage:
    """Wait for the private notice that follows the answer to a host's command."""

    def notices() -> list[StoredMessage]:
        return [m for m in record.followups if m.content.startswith("⚠️")]

    await table.double.wait_for(notices, timeout=15.0, what="the host's notice")
    return notices()[0]


async def test_story_start_refused_names_missing_permissions(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await double.set_overwrite("story", "bot", deny=SEND_MESSAGES | ADD_REACTIONS)

        record = await table.command("alice", "story start", title="The Lantern", premise=PREMISE)
        refusal = await answer(table, record)
        assert refusal.flags & EPHEMERAL
        assert refusal.content.startswith(
            "I can't play a story here: I am missing **Send Messages** and **Add Reactions** "
            "in this channel."
        )
        # In a thread of this channel posting needs Send Messages in Threads, which the
        # bot has: only Add Reactions is missing there.
        record = await table.command(
            "alice", "story start", title="The Lantern", premise=PREMISE, thread=True
        )
        refusal = await answer(table, record)
        assert "I am missing **Add Reactions** in this channel." in refusal.content
        assert double.threads == [] and table.bot_messages() == []
        assert await table.running_bot.runtime.story.queries.in_channel(table.channel_id) is None

        # With reactions back, the story may open its own thread though the channel
        # itself stays closed to the bot's messages.
        await double.set_overwrite("story", "bot", deny=SEND_MESSAGES)
        record = await table.command(
            "alice", "story start", title="The Lantern", premise=PREMISE, thread=True
        )
        pointer = await answer(table, record)
        [thread] = double.threads
        assert thread.mention in pointer.content
        await double.wait_for_message(thread, lambda m: "starts **The Lantern**" in m.content)

        # Without Send Messages in Threads the host cannot begin it in the thread.
        await double.set_overwrite("story", "bot", deny=SEND_MESSAGES | SEND_MESSAGES_IN_THREADS)
        record = await double.invoke("alice", thread, "story", ["begin"])
        refusal = await answer(table, record)
        assert refusal.flags & EPHEMERAL
        assert refusal.content.startswith(
            "I can't play a story here: I am missing **Send Messages in Threads** in this "
            "thread"
        )
        story = await table.running_bot.runtime.story.queries.in_channel(thread.id)
        assert story is not None and story.status == SessionStatus.LOBBY


async def test_missing_send_permission_pauses_story_and_tells_host(table: StoryTable) -> None:
    double = table.double
    story_channel = double.channels["story"]
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")
        before = len(table.bot_messages())

        # A moderator takes Send Messages from the bot's role mid-story.
        await double.set_overwrite("story", "bot", deny=SEND_MESSAGES)
        with double.expect_violations("without SEND_MESSAGES (403 Missing Permissions)"):
            await table.say("alice", "Alice knocks three times on the sea door.")

            async def paused() -> SessionStatus:
                return (await table.session()).status

            await table.eventually(paused, SessionStatus.PAUSED)
        session = await table.session()
        assert session.turn_deadline is None, "a paused story's clock stops"
        assert len(table.bot_messages()) == before, "nothing reached the channel"
        [turn, passage] = await table.turns()
        assert (turn.kind, passage.kind) == (TurnKind.PLAYER, TurnKind.NARRATOR)

        # The audit log says what happened, to moderators.
        record = await table.command("moderator", "storyconfig audit")
        audit = await answer(table, record)
        assert "**cannot_post** → paused" in audit.content
        assert "I am missing Send Messages there" in audit.content

        # A player is not told; the host is, privately, once.
        record = await table.command("bob", "story status")
        await answer(table, record)
        assert record.followups == []
        record = await table.command("alice", "story write", text="Alice waits.")
        refusal = await answer(table, record)
        assert refusal.content == "The story is paused; the host can `resume` it."
        notice = await host_notice(table, record)
        assert notice.flags & EPHEMERAL
        assert notice.content == (
            f"⚠️ I paused the story because I could not post in {story_channel.mention}: "
            "I am missing Send Messages there. Ask a moderator to allow it for my "
            "role, then `/story resume`."
        )
        record = await table.command("alice", "story status")
        await answer(table, record)
        assert record.followups == [], "the notice is shown once"

        # Resuming is refused until the permission is back, then play goes on.
        record = await table.command("alice", "story resume")
        assert "I am missing **Send Messages** in this channel" in (
            await answer(table, record)
        ).content
        await double.set_overwrite("story", "bot")
        record = await table.command("alice", "story resume")
        resumed = await answer(table, record)
        assert resumed.content.startswith("▶️ Alice resumes **The Lantern**.")
        assert (await table.session()).status == SessionStatus.ACTIVE
        turn_message = await table.say("bob", "Bob lights the lamp.")
        await table.passage(after=turn_message)


async def test_missing_access_pauses_story_and_tells_host(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")

        # Without View Channel the bot neither sees messages there nor may post.
        await double.set_overwrite("story", "bot", deny=VIEW_CHANNEL)
        unseen = await table.say("alice", "Alice writes where the bot cannot see.")
        with double.expect_violations("which the bot cannot view (403 Missing Access)"):
            record = await table.command("alice", "story write", text="Alice opens the door.")
            shown = await answer(table, record)
            assert shown.content == "**Alice:** Alice opens the door."

            async def paused() -> SessionStatus:
                return (await table.session()).status

            await table.eventually(paused, SessionStatus.PAUSED)
        turns = await table.turns()
        # The plain message never reached the bot, so the slash turn was Alice's.
        assert [t.text for t in turns][:1] == ["Alice opens the door."]
        assert table.reactions_on(unseen) == []

        record = await table.command("alice", "story status")
        await answer(table, record)
        notice = await host_notice(table, record)
        assert "I am missing View Channel there" in notice.content


async def test_versions_menu_cannot_change_an_ended_story(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        view = await table.start_story("alice", "bob")
        turn = await table.say("alice", "Alice knocks three times on the sea door.")
        first = await table.passage(after=turn)
        record = await table.command("bob", "story retry")
        asked = await answer(table, record)
        second = await table.passage(after=asked, number=2)
        await double.wait_for(lambda: first.deleted, what="the replaced version to go")
        shown = second.content

        record = await table.command("alice", "story end")
        await answer(table, record)
        click = await double.click("alice", second, f"tw:version:{view.id}:2", values=["0"])
        await double.wait_for_response(click)
        [refusal] = double.interaction_responses(click)
        assert refusal.ephemeral
        assert refusal.content == "The story has ended; its passages can no longer change."
        assert second.content == shown
        narrator = (await table.running_bot.runtime.story.queries.turns(view.id))[1]
        assert narrator.text == shown and narrator.alternatives == (first.content,)


async def test_storyconfig_is_offered_to_the_moderator_role_without_manage_server(
    table: StoryTable,
) -> None:
    double = table.double
    moderator_role = double.guild.roles["moderator"]
    async with table.running():
        # The server moderates through a role of its own, without Manage Server.
        await double.set_role_permissions("moderator", MODERATOR_PERMISSIONS & ~MANAGE_GUILD)
        await table.configure(moderator_role_id=moderator_role.id)

        record = await table.command("moderator", "storyconfig show")
        shown = await answer(table, record)
        assert shown.flags & EPHEMERAL and shown.embeds
        record = await table.command("moderator", "storyconfig cadence", cadence="every_round")
        assert (await answer(table, record)).content.startswith("✅ Saved.")

        record = await table.command("alice", "storyconfig show")
        refusal = await answer(table, record)
        assert refusal.flags & EPHEMERAL
        assert refusal.content == "Only moderators can see the story configuration."
