"""The bot restarts in the middle of a story: the story, and the buttons, carry on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import TurnKind

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

NARRATOR_WAIT = 60.0


async def test_story_and_old_buttons_keep_working_after_a_restart(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        view = await table.start_story("alice", "bob", "cara")
        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        before_restart = await table.passage(after=turn)
        await table.ping("bob", after=before_restart)
    assert double.gateway.identify_count == 1

    # A new process: same database, same Discord; nothing is carried over in memory.
    async with table.running():
        assert double.gateway.identify_count == 2
        click = await double.click("alice", before_restart, f"tw:retry:{view.id}:2")
        await double.wait_for_response(click, followups=1)
        [asked] = click.followups
        assert asked.content == "🔁 Alice asked the narrator for another version."
        retried = await table.passage(after=asked, number=2)
        await double.wait_for(lambda: before_restart.deleted, what="the old version to go")
        ping = await table.ping("bob", after=retried)

        turn = await table.say("bob", "Bob reads the tide tables aloud.")
        answer = await table.passage(after=turn, number=4)
        await table.ping("cara", after=answer)
        turns = await table.turns()
        assert [(t.number, t.kind, t.author_name) for t in turns] == [
            (1, TurnKind.PLAYER, "Alice"),
            (2, TurnKind.NARRATOR, "Narrator"),
            (3, TurnKind.PLAYER, "Bob"),
            (4, TurnKind.NARRATOR, "Narrator"),
        ]
        assert turns[1].alternatives == (before_restart.content,)
        assert turns[1].discord_message_id == retried.id
        assert turns[2].discord_message_id == turn.id
        assert turns[3].text == answer.content
        assert ping.pinged_user_ids == [table.user("bob").id]
    table.audit_mentions()


async def test_a_passage_cut_off_by_a_restart_is_posted_whole_and_only_once(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running():
        # Long enough that the bot stops while the narrator is still writing.
        await table.configure(sampling={"max_new_tokens": 96})
        await table.start_story("alice", "bob")
        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        partial = await double.wait_for_message(
            "story", lambda m: m.content.endswith("▌"), after=turn, timeout=NARRATOR_WAIT
        )

    # The new process queues the promised passage again and posts it once, in full.
    async with table.running():
        passage = await table.passage(after=turn)
        ping = await table.ping("bob", after=passage)
        [_, narrator] = await table.turns()
        assert narrator.discord_message_id == passage.id
    assert partial.deleted, "no half-written copy with its cursor is left behind"
    assert [m.id for m in table.bot_messages() if m.id > turn.id] == [passage.id, ping.id]
