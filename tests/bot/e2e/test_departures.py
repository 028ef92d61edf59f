"""The server changes under a story: a player leaves the server, its channel or thread is
deleted, the bot is removed. Each change goes through the engine and the players are told."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import ParticipantStatus, SessionStatus

from discord_double import EPHEMERAL, InteractionRecord, StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

LEFT_NOTICE = "is no longer on this server, so they are away and their turn passes on"


def status_of(session: object, user_id: int) -> ParticipantStatus:
    return next(p.status for p in session.participants if p.user_id == user_id)  # type: ignore[attr-defined]


async def test_member_who_left_is_skipped_at_once(table: StoryTable) -> None:
    """With the Server Members intent, the bot hears the departure as it happens."""
    double = table.double
    alice, bob = table.user("alice"), table.user("bob")
    async with table.running(options=table.options(members_intent=True)):
        await table.start_story("alice", "bob", "cara")
        before = table.bot_messages()[-1] if table.bot_messages() else None

        await double.remove_member(alice)
        notice = await double.wait_for_message(
            "story", lambda m: LEFT_NOTICE in m.content, after=before
        )
        assert notice.content.startswith(f"🚪 Alice {LEFT_NOTICE}")
        assert notice.pinged_user_ids == [bob.id]
        session = await table.session()
        assert session.current_player is not None and session.current_player.user_id == bob.id
        assert status_of(session, alice.id) == ParticipantStatus.AWAY
        # Hosting passes to the earliest remaining player.
        assert session.host_id == bob.id
        # No member lookups were needed.
        assert double.requests_to("GET /guilds/{guild_id}/members/{user_id}") == []
    table.audit_mentions()


async def test_member_who_left_is_found_when_their_turn_comes(table: StoryTable) -> None:
    """Without the intent nothing is heard; Discord answers the lookup with Unknown Member."""
    double = table.double
    bob, cara = table.user("bob"), table.user("cara")
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob", "cara")
        await double.remove_member(bob)

        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        passage = await table.passage(after=turn)
        notice = await double.wait_for_message(
            "story", lambda m: LEFT_NOTICE in m.content, after=passage
        )
        assert notice.content.startswith(f"🚪 Bob {LEFT_NOTICE}")
        assert notice.pinged_user_ids == [cara.id], "Bob's turn passes on at once"
        assert not any(bob.id in m.pinged_user_ids for m in table.bot_messages())
        session = await table.session()
        assert session.current_player is not None and session.current_player.user_id == cara.id
        assert status_of(session, bob.id) == ParticipantStatus.AWAY
        lookups = double.requests_to("GET /guilds/{guild_id}/members/{user_id}")
        assert [r.status for r in lookups if r.path.endswith(str(bob.id))] == [404]

        # Cara plays on; the next round skips nobody who is still here.
        answer = await table.say("cara", "Cara climbs the stair.")
        await table.ping("alice", after=await table.passage(after=answer))
    table.audit_mentions()


async def test_deleted_channel_ends_its_story(table: StoryTable) -> None:
    double = table.double
    story_channel = double.channels["story"]
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        view = await table.start_story("alice", "bob")
        await table.say("alice", "Alice sets the lantern on the windowsill.")
        await table.ping("bob")

        await double.delete_channel(story_channel)

        async def status() -> SessionStatus:
            return (await table.running_bot.runtime.story.queries.get(view.id)).status

        await table.eventually(status, SessionStatus.ENDED)
        ended = await table.running_bot.runtime.story.queries.get(view.id)
        assert ended.turn_deadline is None and ended.ended_at is not None

        # Still exportable, from another channel.
        record = await double.invoke(
            "alice", "general", "story", ["export"], {"format": "markdown", "story": str(view.id)}
        )
        exported = await double.wait_for(
            lambda: next((m for m in double.interaction_responses(record) if m.files), None),
            what="the exported file",
        )
        assert "Alice sets the lantern on the windowsill." in exported.files[0].text

        # The moderators' audit log says why it ended.
        record = await double.invoke("moderator", "general", "storyconfig", ["audit"])
        audit = await answer_of(table, record)
        assert "**channel_deleted** → ended" in audit.content


async def test_deleted_thread_ends_its_story(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        record = await table.command(
            "alice", "story start", title="The Lantern", premise="A door in the sea.", thread=True
        )
        await answer_of(table, record)
        [thread] = double.threads
        story = await table.running_bot.runtime.story.queries.in_channel(thread.id)
        assert story is not None

        await double.delete_channel(thread)

        async def status() -> SessionStatus:
            assert story is not None
            return (await table.running_bot.runtime.story.queries.get(story.id)).status

        await table.eventually(status, SessionStatus.ENDED)
        # The channel it was started from is free of it, and may hold a story of its own.
        record = await table.command(
            "bob", "story start", title="The Second Lantern", premise="Another door."
        )
        assert (await answer_of(table, record)).content.startswith("📖 Bob starts")


async def test_bot_removed_from_server_pauses_its_stories(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")

        await double.remove_bot()

        async def status() -> SessionStatus:
            return (await table.session()).status

        await table.eventually(status, SessionStatus.PAUSED)
        assert (await table.session()).turn_deadline is None, "nobody times out unseen"

        await double.add_bot()
        await double.wait_for(
            lambda: table.running_bot.get_guild(double.guild.id) is not None,
            what="the server to come back",
        )
        record = await table.command("alice", "story status")
        await answer_of(table, record)
        notice = await host_notice(table, record)
        assert notice.content.startswith(
            "⚠️ I paused the story because I was removed from this server."
        )
        record = await table.command("alice", "story resume")
        assert (await answer_of(table, record)).content.startswith("▶️ Alice resumes")
        assert (await table.session()).status == SessionStatus.ACTIVE


async def test_bot_removed_while_offline_pauses_its_stories_at_ready(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")

    await double.remove_bot()
    async with table.running():

        async def status() -> SessionStatus:
            return (await table.session()).status

        await table.eventually(status, SessionStatus.PAUSED)
        await double.add_bot()
        await double.wait_for(
            lambda: table.running_bot.get_guild(double.guild.id) is not None,
            what="the server to come back",
        )
        record = await table.command("alice", "story status")
        await answer_of(table, record)
        notice = await host_notice(table, record)
        assert "I was removed from this server" in notice.content


async def answer_of(table: StoryTable, record: InteractionRecord) -> StoredMessage:
    """Return the message answering an interaction."""
    await table.double.wait_for_response(record)
    return await table.reply_to(record)


async def host_notice(table: StoryTable, record: InteractionRecord) -> StoredMessage:
    """Wait for the private notice that follows the answer to a host's command."""
    await table.double.wait_for_response(record, followups=1, timeout=15.0)
    notices = [m for m in record.followups if m.content.startswith("⚠️")]
    assert notices, [m.content for m in table.double.interaction_responses(record)]
    assert notices[0].flags & EPHEMERAL
    return notices[0]
