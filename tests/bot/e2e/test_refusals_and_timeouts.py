"""Turns the rules refuse, and turns nobody took: the bot says so and pings only the next player."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from discord_double import StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_turn_with_a_blocked_word_is_refused_and_the_rotation_stays(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running():
        await table.configure(blocked_words=["moonstone"], narrator_cadence="on_demand")
        await table.start_story("alice", "bob")

        refused = await table.say("alice", "Alice lifts the Moonstone from the altar.")

        def answers_it(message: StoredMessage) -> bool:
            reference = message.payload.get("message_reference") or {}
            return reference.get("message_id") == str(refused.id)

        reply = await double.wait_for_message("story", answers_it)
        assert reply.content.startswith("❌ This server does not allow")
        assert "moonstone" not in reply.content.casefold(), "the word itself is not repeated"
        assert reply.pinged_user_ids == [], "the refusal does not ping its author"
        await double.wait_for(lambda: table.reactions_on(refused), what="a reaction")
        assert table.reactions_on(refused) == ["❌"]
        assert await table.turns() == []
        session = await table.session()
        assert session.current_player is not None
        assert session.current_player.user_id == table.user("alice").id

        # The reply cleans itself up; the reaction stays as the lasting mark.
        await double.wait_for(lambda: reply.deleted, what="the refusal to delete itself")
        assert table.reactions_on(refused) == ["❌"]

        await table.say("alice", "Alice leaves the stone where it lies.")
        await table.ping("bob")
        [turn] = await table.turns()
        assert turn.text == "Alice leaves the stone where it lies."
    table.audit_mentions()


async def test_timed_out_player_is_skipped_and_only_the_next_one_is_pinged(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running() as bot:
        setting = await table.command("moderator", "storyconfig timeout", amount=30, unit="seconds")
        assert (await table.reply_to(setting)).ephemeral
        await table.start_story("alice", "bob", "cara")
        session = await table.session()
        assert session.turn_deadline == table.clock.now + timedelta(seconds=30)
        before = table.bot_messages()[-1]

        # The deadline passes; the scheduler, woken as by any story change, skips Alice.
        table.clock.advance(31)
        bot.runtime.timers.poke()
        notice = await double.wait_for_message(
            "story", lambda m: "ran out of time" in m.content, after=before
        )
        bob = table.user("bob")
        assert notice.content.startswith("⏰ Alice ran out of time and is skipped.")
        assert bob.mention in notice.content
        assert notice.pinged_user_ids == [bob.id]
        session = await table.session()
        assert session.current_player is not None and session.current_player.user_id == bob.id
        assert session.turn_deadline == table.clock.now + timedelta(seconds=30)
        assert await table.turns() == []
        assert [m.id for m in table.bot_messages() if m.id > before.id] == [notice.id]
    assert [users for _, users in table.audit_mentions()] == [[bob.id]]


async def test_player_is_reminded_once_when_a_quarter_of_the_time_is_left(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running() as bot:
        await table.configure(turn_timeout_seconds=400)
        await table.start_story("alice", "bob")
        before = table.bot_messages()[-1]

        table.clock.advance(301)
        bot.runtime.timers.poke()
        reminder = await double.wait_for_message(
            "story", lambda m: "A reminder" in m.content, after=before
        )
        alice = table.user("alice")
        assert reminder.content.startswith("⏳ A reminder: ")
        assert reminder.pinged_user_ids == [alice.id]
        # Poking again (any story change does) sends no second reminder for the same turn.
        bot.runtime.timers.poke()
        await asyncio.sleep(0.3)
        assert [m.id for m in table.bot_messages() if m.id > before.id] == [reminder.id]
    assert [users for _, users in table.audit_mentions()][-1] == [alice.id]
