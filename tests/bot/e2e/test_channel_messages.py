"""Plain messages in the story channel, out of turn or edited, on both supported databases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from storage.models import TurnKind

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


@pytest.fixture
def story_database(database_url: str) -> str:
    # This scenario needs no narrator, so it is the cheap one to run on PostgreSQL too.
    return database_url


async def test_out_of_turn_message_is_not_recorded_and_only_gets_a_reaction(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running():
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")
        posted = len(table.bot_messages())

        remark = await table.say("bob", "Bob blurts out the ending before his turn.")
        # The reaction is the last thing the bot does with the message.
        await double.wait_for(lambda: table.reactions_on(remark), what="a reaction")
        assert table.reactions_on(remark) == ["⏳"]
        assert len(table.bot_messages()) == posted, "no message answers the remark"
        assert await table.turns() == []
        session = await table.session()
        assert session.current_player is not None
        assert session.current_player.user_id == table.user("alice").id

        # The rotation is untouched: Alice's turn is taken, then Bob's.
        await table.say("alice", "Alice unrolls the map on the table.")
        ping = await table.ping("bob")
        await table.say("bob", "Bob points at the island no map should show.")
        await table.ping("alice", after=ping)
        turns = await table.turns()
        assert [(t.kind, t.author_name) for t in turns] == [
            (TurnKind.PLAYER, "Alice"),
            (TurnKind.PLAYER, "Bob"),
        ]
        assert remark.id not in {t.discord_message_id for t in turns}


async def test_editing_the_latest_turn_message_edits_the_stored_turn(table: StoryTable) -> None:
    double = table.double

    async def stored_text() -> str:
        [turn] = await table.turns()
        return turn.text

    async with table.running():
        await table.configure(narrator_cadence="on_demand", blocked_words=["moonstone"])
        await table.start_story("alice", "bob")
        message = await table.say("alice", "Alice unrolls the map.")
        await table.ping("bob")

        await double.edit_message(message, "Alice unrolls the sea chart.")
        await table.eventually(stored_text, "Alice unrolls the sea chart.")

        # An edit the rules refuse is not stored, and its author is told why.
        await double.edit_message(message, "Alice unrolls the moonstone chart.")
        refusal = await double.wait_for_message("story", lambda m: "not saved" in m.content)
        assert refusal.content.startswith("❌ Your edit was not saved: ")
        assert refusal.pinged_user_ids == []
        assert table.reactions_on(message) == ["❌"]
        assert await stored_text() == "Alice unrolls the sea chart."
    table.audit_mentions()
