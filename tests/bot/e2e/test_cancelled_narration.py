"""Commands that cancel the narrator mid-passage: its half-written text goes and stays gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

NARRATOR_WAIT = 60.0


@pytest.mark.parametrize("command", ["undo", "skip", "end"])
async def test_cancelled_passage_is_deleted_and_its_late_progress_not_shown(
    table: StoryTable, command: str
) -> None:
    double = table.double
    async with table.running() as bot:
        # Long enough that the command lands while the narrator is still writing.
        await table.configure(sampling={"max_new_tokens": 96})
        await table.start_story("alice", "bob")
        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        partial = await double.wait_for_message(
            "story", lambda m: m.content.endswith("▌"), after=turn, timeout=NARRATOR_WAIT
        )
        job_id = (await table.session()).narrator_job_id
        assert job_id is not None

        answer = await table.reply_to(await table.command("alice", f"story {command}"))
        assert not answer.ephemeral, "everyone sees why the passage went away"
        await double.wait_for(lambda: partial.deleted, what="the partial passage to go")

        # The cancelled job runs to its end in the worker; all it reported was handled
        # once the queue is done with it.
        async def queued() -> int | None:
            return await bot.runtime.queue.position(job_id)

        await table.eventually(queued, None)
        if command == "end":
            await table.start_story("alice", "bob")
        # Playing on gives stray progress time to show up: only the new passage does.
        writer, other = ("bob", "alice") if command == "skip" else ("alice", "bob")
        turn = await table.say(writer, "The lantern flickers and steadies.")
        passage = await table.passage(after=turn)
        await table.ping(other, after=passage)
        assert not [m.content for m in double.messages_in("story") if m.content.endswith("▌")]
        assert [m for m in table.bot_messages() if m.custom_ids()] == [passage]
