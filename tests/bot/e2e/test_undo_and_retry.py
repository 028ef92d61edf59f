"""Retry and Undo, from the narrator's buttons and from slash commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import TurnKind

from discord_double import StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_buttons_and_commands_retry_and_undo_passages_and_turns(table: StoryTable) -> None:
    double = table.double
    alice, bob = table.user("alice"), table.user("bob")
    async with table.running():
        await table.short_passages()
        view = await table.start_story("alice", "bob")
        turn = await table.say("alice", "Alice knocks three times on the sea door.")
        first = await table.passage(after=turn)
        await table.ping("bob", after=first)

        # Retry button: a new version replaces the message; the old text stays selectable.
        # The click is acknowledged without a visible answer; the announcement follows up.
        click = await double.click("alice", first, f"tw:retry:{view.id}:2")
        await double.wait_for_response(click, followups=1)
        assert click.callback is not None and click.callback.type == 6
        [asked] = click.followups
        assert asked.content == "🔁 Alice asked the narrator for another version."
        assert not asked.ephemeral
        second = await table.passage(after=asked, number=2)
        await double.wait_for(lambda: first.deleted, what="the replaced version to go")
        await table.ping("bob", after=second)
        [_, narrator] = await table.turns()
        assert narrator.text == second.content
        assert narrator.alternatives == (first.content,)
        assert narrator.discord_message_id == second.id
        assert second.custom_ids() == [
            f"tw:retry:{view.id}:2",
            f"tw:undo:{view.id}:2",
            f"tw:version:{view.id}:2",
        ]

        # The version menu swaps the earlier text back into the same message, and back again.
        first_text, second_text = first.content, second.content
        for shown, kept in ((first_text, second_text), (second_text, first_text)):
            choice = await double.click("bob", second, f"tw:version:{view.id}:2", values=["0"])
            await double.wait_for_response(choice)
            assert choice.callback is not None and choice.callback.type == 7
            assert second.content == shown
            [_, narrator] = await table.turns()
            assert (narrator.text, narrator.alternatives) == (shown, (kept,))

        # Undo button: the passage is deleted and the turn stays with Bob, who is pinged.
        click = await double.click("alice", second, f"tw:undo:{view.id}:2")
        await double.wait_for_response(click)
        [undone] = double.interaction_responses(click)
        assert undone.content.startswith("↩️ Alice took back the narrator's passage (turn 2).")
        assert undone.pinged_user_ids == [bob.id]
        await double.wait_for(lambda: second.deleted, what="the undone passage to go")
        assert [t.number for t in await table.turns()] == [1]
        session = await table.session()
        assert session.current_player is not None and session.current_player.user_id == bob.id
        assert not session.narrator_pending

        # /story undo: Alice takes her own turn back; her message is marked, not deleted.
        record = await table.command("alice", "story undo")
        reply = await table.reply_to(record)
        assert reply.content.startswith("↩️ Alice took back Alice's turn 1.")
        assert reply.pinged_user_ids == [], "Alice is not pinged about her own undo"
        await double.wait_for(lambda: table.reactions_on(turn), what="the undo mark")
        assert table.reactions_on(turn) == ["↩️"] and not turn.deleted
        assert await table.turns() == []
        session = await table.session()
        assert session.current_player is not None
        assert session.current_player.user_id == alice.id

        # /story retry: Bob asks for another version of the narrator's latest passage.
        turn = await table.say("alice", "Alice knocks once, softly this time.")
        third = await table.passage(after=turn)
        await table.ping("bob", after=third)
        record = await table.command("bob", "story retry")
        asked = await table.reply_to(record)
        assert asked.content == "🔁 Bob asked the narrator for another version."
        fourth = await table.passage(after=asked, number=2)
        await double.wait_for(lambda: third.deleted, what="the replaced version to go")
        await table.ping("bob", after=fourth)
        turns = await table.turns()
        assert [(t.number, t.kind) for t in turns] == [(1, TurnKind.PLAYER), (2, TurnKind.NARRATOR)]
        assert turns[0].text == "Alice knocks once, softly this time."
        assert turns[1].text == fourth.content
        assert turns[1].alternatives == (third.content,)

        # An old passage's buttons refuse politely, to the presser only.
        stale: StoredMessage = fourth
        await table.say("bob", "Bob answers the knock with his own.")
        await table.passage(after=fourth, number=4)
        click = await double.click("bob", stale, f"tw:retry:{view.id}:2")
        await double.wait_for_response(click, followups=1)
        [refusal] = click.followups
        assert refusal.ephemeral
        assert refusal.content.startswith("Only the latest passage can be retried")
        assert len(await table.turns()) == 4
    pings = table.audit_mentions()
    assert {users[0] for _, users in pings} == {alice.id, bob.id}
