"""SIGTERM while the narrator writes: the bot stops cleanly and nothing is left half-written."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING

from bot.discord.app import GracefulShutdown
from storage.models import TurnKind

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

NARRATOR_WAIT = 60.0


async def test_sigterm_mid_passage_closes_the_bot_and_the_passage_comes_whole_after(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running() as bot:
        # Long enough that the signal lands while the narrator is still writing.
        await table.configure(sampling={"max_new_tokens": 96})
        await table.start_story("alice", "bob")
        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        partial = await double.wait_for_message(
            "story", lambda m: m.content.endswith("▌"), after=turn, timeout=NARRATOR_WAIT
        )
        shutdown = GracefulShutdown(bot)
        shutdown.install()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(shutdown.wait(), timeout=30)
            # A second signal would end the process at once: no handler is left for it.
            loop = asyncio.get_running_loop()
            assert not loop.remove_signal_handler(signal.SIGTERM)
            assert not loop.remove_signal_handler(signal.SIGINT)
        finally:
            shutdown.uninstall()
        assert bot.is_closed()
        # Nothing half-written stays: the passage was finished in the grace period, or withdrawn.
        streaming = [m for m in table.bot_messages() if m.content.endswith("▌") and not m.deleted]
        assert streaming == []
        finished_before_stop = not partial.deleted

    async with table.running():
        if finished_before_stop:
            passage = partial
        else:
            passage = await table.passage(after=turn)
        await table.ping("bob", after=passage)  # the passage's message id is stored by now
        turns = await table.turns()
        assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR]
        assert turns[1].discord_message_id == passage.id
        assert turns[1].text == passage.content
    narrator_posts = [
        m for m in table.bot_messages() if m.id > turn.id and not m.deleted and "▌" not in m.content
    ]
    assert passage.id in [m.id for m in narrator_posts]
