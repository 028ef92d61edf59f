"""Discord takes an interaction's answer within 3 seconds: a late one changes no story."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import TurnKind

from discord_double import InteractionRecord

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
REPLY_WAIT = 15.0


async def answer_comes_too_late(table: StoryTable, user: str, path: str, **options: str) -> None:
    """Run a command whose every answer Discord refuses (10062), as on a stalled event loop."""
    double = table.double
    double.interaction_ack_timeout = 0.0
    name, *sub = path.split()
    with double.expect_violations("acknowledged after"):
        record: InteractionRecord = await double.invoke(user, "story", name, sub, options)

        def refused_twice() -> bool:
            # The command's own answer, then the error handler's attempt to explain.
            prefix = f"/interactions/{record.id}/"
            refused = [r for r in double.requests_to(CALLBACK) if r.path.startswith(prefix)]
            return len(refused) >= 2 and all(r.status == 404 for r in refused)

        await double.wait_for(refused_twice, timeout=REPLY_WAIT, what="two refused answers")
    double.interaction_ack_timeout = 3.0
    assert record.callback is None and double.interaction_responses(record) == []


async def test_a_turn_whose_answer_is_refused_is_not_stored_and_can_be_written_again(
    table: StoryTable,
) -> None:
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")

        await answer_comes_too_late(table, "alice", "story write", text="Alice opens the door.")
        view = await table.session()
        assert await table.turns() == []
        assert view.narrator_job_id is None
        assert view.current_player is not None and view.current_player.user_id == (
            table.user("alice").id
        )

        record = await table.command("alice", "story write", text="Alice opens the door.")
        shown = await table.reply_to(record)
        assert shown.content == "**Alice:** Alice opens the door."
        passage = await table.passage(after=shown)
        await table.ping("bob", after=passage)
        assert [t.kind for t in await table.turns()] == [TurnKind.PLAYER, TurnKind.NARRATOR]
    table.audit_mentions()


async def test_a_narrator_call_whose_answer_is_refused_leaves_the_narrator_free(
    table: StoryTable,
) -> None:
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")

        await answer_comes_too_late(table, "bob", "story continue")
        view = await table.session()
        assert view.narrator_job_id is None, "no narration left pending"
        assert table.bot_messages()[-1].content.startswith("🎬"), "nothing announced"

        record = await table.command("bob", "story continue")
        announced = await table.reply_to(record)
        assert "calls on the narrator" in announced.content
        passage = await table.passage(after=announced)
        await table.ping("alice", after=passage)
        assert (await table.session()).narrator_job_id is None


async def test_a_refused_write_after_the_answer_was_deferred_is_told_privately(
    table: StoryTable,
) -> None:
    async with table.running():
        await table.start_story("alice", "bob")
        double = table.double
        record = await double.invoke("bob", "story", "story", ["write"], {"text": "Bob first."})
        await double.wait_for_response(record, followups=1, timeout=REPLY_WAIT)
        [answer] = record.followups
        assert answer.ephemeral and "turn" in answer.content
        assert record.original is not None and record.original.deleted, (
            "the public 'thinking' answer is taken away"
        )
        assert await table.turns() == []
