"""Messages written while the bot was not listening are read back at READY, in order,
by the same rules as live ones: after a restart, and after a session Discord did not resume."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from storage.models import TurnKind

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_turn_written_while_bot_was_offline_is_recorded_on_ready(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")

    # The bot is down: Bob writes out of turn, then Alice writes her turn, then chatter.
    early = await table.say("bob", "Bob jumps in before Alice.")
    turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
    chatter = await table.say("dan", "Dan, who does not play, says hello.")

    async with table.running():
        passage = await table.passage(after=turn)
        await table.ping("bob", after=passage)
        [player, narrator] = await table.turns()
        assert (player.kind, player.text) == (TurnKind.PLAYER, turn.content)
        assert player.discord_message_id == turn.id
        assert narrator.kind == TurnKind.NARRATOR
        # Bob's message came first, out of turn: marked as it would have been live.
        await double.wait_for(lambda: table.reactions_on(early), what="a reaction")
        assert table.reactions_on(early) == ["⏳"]
        assert table.reactions_on(turn) == [] and table.reactions_on(chatter) == []
        # Read once: the missed messages are in one history request per story channel.
        [read] = double.requests_to("GET /channels/{channel_id}/messages")
        assert read.query["limit"] == "100" and int(read.query["after"]) < early.id

    # Another restart reads nothing again: the turn is stored, the rest was marked.
    async with table.running():
        await asyncio.sleep(0.3)
        assert len(await table.turns()) == 2
    table.audit_mentions()


async def test_turn_written_during_a_reconnect_without_resume_is_recorded(
    table: StoryTable,
) -> None:
    double = table.double
    async with table.running() as bot:
        await table.configure(narrator_cadence="on_demand")
        await table.start_story("alice", "bob")
        identify = asyncio.Event()

        async def before_identify(shard_id: int | None, *, initial: bool = False) -> None:
            await identify.wait()

        bot.before_identify_hook = before_identify  # type: ignore[method-assign]
        # Discord drops the session (op 9, not resumable): what is sent meanwhile never
        # reaches the bot as an event.
        await double.invalidate_session()
        await double.wait_for(lambda: not double.gateway.connected, what="the bot to go")
        turn = await table.say("alice", "Alice sets the lantern on the windowsill.")
        identify.set()
        await double.wait_for(lambda: double.gateway.identify_count == 2, what="IDENTIFY")

        ping = await table.ping("bob", after=turn)
        [stored] = await table.turns()
        assert stored.discord_message_id == turn.id
        assert ping.pinged_user_ids == [table.user("bob").id]
        assert double.gateway.resume_count == 0

        # Play goes on live.
        answer = await table.say("bob", "Bob reads the tide tables aloud.")
        await table.ping("alice", after=answer)
        assert [t.text for t in await table.turns()] == [turn.content, answer.content]
