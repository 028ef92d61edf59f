"""Many stories streaming at once stay within Discord's rate limits, and ride out a 429."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.discord.narrator_messages import DEFAULT_EDIT_INTERVAL
from engine.story.views import SessionView

from discord_double import DoubleChannel, StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

STORIES = 16
PATCH = "PATCH /channels/{channel_id}/messages/{message_id}"
# Long enough that every passage streams through several edits at the default interval.
STREAMED_TOKENS = 32
NARRATOR_WAIT = 180.0


def add_story_channels(table: StoryTable) -> list[DoubleChannel]:
    """Give the server one text channel per story, before the bot connects."""
    double = table.double
    world = double.world
    return [
        world.add_channel(
            DoubleChannel(double.ids.next(), f"tale-{n}", 0, world.guild_id, position=10 + n),
            key=f"tale-{n}",
        )
        for n in range(STORIES)
    ]


async def open_story(table: StoryTable, channel: DoubleChannel) -> SessionView:
    """Open a story for Alice and Bob in CHANNEL (through the engine: the commands are not
    what this scenario measures)."""
    story = table.running_bot.runtime.story
    alice, bob = table.actor("alice"), table.actor("bob")
    await story.lifecycle.start(
        guild_id=table.double.guild.id,
        channel_id=channel.id,
        actor=alice,
        title=f"The Lantern of {channel.name}",
        genre="fantasy",
        premise="A lighthouse keeper finds a door in the sea.",
    )
    await story.lifecycle.join(channel.id, bob)
    return await story.lifecycle.begin(channel.id, alice)


async def passages_after(
    table: StoryTable, turns: dict[int, StoredMessage]
) -> dict[int, StoredMessage]:
    """Wait for the finished narrator passage after each channel's turn."""

    def finished(message: StoredMessage) -> bool:
        return any(c.startswith("tw:retry:") for c in message.custom_ids())

    found = await asyncio.gather(
        *(
            table.double.wait_for_message(
                channel_id, finished, after=turn, timeout=NARRATOR_WAIT
            )
            for channel_id, turn in turns.items()
        )
    )
    return dict(zip(turns, found, strict=True))


async def test_sixteen_stories_streaming_at_once_stay_within_the_limits_and_survive_a_429(
    table: StoryTable,
) -> None:
    double = table.double
    channels = add_story_channels(table)
    # The default edit interval, as a real deployment runs.
    options = table.options(edit_interval_seconds=DEFAULT_EDIT_INTERVAL)
    async with table.running(options=options) as bot:
        await table.configure(sampling={"max_new_tokens": STREAMED_TOKENS})
        await asyncio.gather(*(open_story(table, channel) for channel in channels))

        turns = {
            channel.id: await double.send_message("alice", channel, "Alice opens the sea door.")
            for channel in channels
        }
        first = await passages_after(table, turns)
        assert [r for r in double.requests if r.status == 429] == []
        limiter = double.rate_limiter
        assert limiter.busiest("message-edit", 5.0) <= 5
        assert limiter.busiest("message-create", 5.0) <= 5
        assert limiter.busiest_overall(1.0) <= 50
        # The passages streamed: edits, each channel's at the bot's own pace.
        streamed = [p for p in first.values() if len(p.edit_times) >= 2]
        assert len(streamed) >= STORIES // 2, [len(p.edit_times) for p in first.values()]
        gaps = [gap for p in streamed for gap in p.edit_gaps()[:-1]]
        assert min(gaps) >= DEFAULT_EDIT_INTERVAL - 0.05, gaps

        # Discord says "slow down" to every request for a second: the bot waits and goes on.
        double.rate_limit(PATCH, retry_after=1.0, is_global=True)
        again = channels[:4]
        turns = {
            channel.id: await double.send_message("bob", channel, "Bob follows her through.")
            for channel in again
        }
        second = await passages_after(table, turns)
        assert [r.status for r in double.requests if r.status == 429] == [429]
        for channel in again:
            view = await bot.runtime.story.queries.in_channel(channel.id)
            assert view is not None and view.narrator_job_id is None
            turns_stored = await bot.runtime.story.queries.turns(view.id)
            assert turns_stored[-1].text == second[channel.id].content
