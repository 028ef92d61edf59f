"""A bot in many servers runs over several shards: stories play in each shard's servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.discord.app import ShardedTaleweaverBot, recommended_shards
from storage.models import TurnKind

from discord_double import DoubleChannel, StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

NARRATOR_WAIT = 60.0


async def play_one_turn(table: StoryTable, channel: DoubleChannel) -> StoredMessage:
    """Start a story in CHANNEL with slash commands, write a turn, return the passage."""
    double = table.double
    for user, path, options in (
        ("alice", ["start"], {"title": "The Lantern", "premise": "A door in the sea."}),
        ("bob", ["join"], {}),
        ("alice", ["begin"], {}),
    ):
        record = await double.invoke(user, channel, "story", path, options)
        await double.wait_for_response(record, timeout=15.0)
    turn = await double.send_message("alice", channel, "Alice opens the sea door.")

    def finished(message: StoredMessage) -> bool:
        return any(c.startswith("tw:retry:") for c in message.custom_ids())

    return await double.wait_for_message(channel, finished, after=turn, timeout=NARRATOR_WAIT)


async def test_two_shards_play_stories_in_servers_of_each_shard(table: StoryTable) -> None:
    double = table.double
    first = double.world
    # Discord puts a server on shard (id >> 22) % shards: this one lands on the other shard.
    second = first.add_guild("Second Circle", guild_id=((first.guild_id >> 22) + 1) << 22)
    double.recommended_shards = 2
    shards = await recommended_shards(double.token)
    assert shards == 2

    async with table.running(shards=shards) as bot:
        assert isinstance(bot, ShardedTaleweaverBot) and bot.shard_count == 2
        home, away = bot.get_guild(first.guild_id), bot.get_guild(second.guild_id)
        assert home is not None and away is not None
        assert {home.shard_id, away.shard_id} == {0, 1}
        sessions = double.gateway.sessions.values()
        assert sorted(s.shard for s in sessions if s.shard) == [(0, 2), (1, 2)]
        await table.short_passages()
        await bot.runtime.configs.update(
            second.guild_id, table.actor("moderator"), sampling={"max_new_tokens": 32}
        )

        for guild, channel in (
            (first, first.channels["story"]),
            (second, second.channels["story"]),
        ):
            passage = await play_one_turn(table, channel)
            view = await bot.runtime.story.queries.in_channel(channel.id)
            assert view is not None and view.guild_id == guild.guild_id
            turns = await bot.runtime.story.queries.turns(view.id)
            assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR]
            assert turns[-1].text == passage.content
    table.audit_mentions()
