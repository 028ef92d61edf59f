"""Which stories' channels the bot reads again for missed messages, shard by shard."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.discord.app import BotOptions
from bot.discord.cogs.turns.cog import TurnsCog
from engine.story.views import CatchUpPoint

from support.stories import ALICE

# Discord assigns a server to shard (server id >> 22) % shard count.
ON_SHARD_0 = 2 << 22
ON_SHARD_1 = 3 << 22


async def story_in(story_db: SimpleNamespace, guild_id: int, channel_id: int) -> None:
    await story_db.story.lifecycle.start(
        guild_id=guild_id, channel_id=channel_id, actor=ALICE, title="The Lantern", genre="fantasy"
    )
    await story_db.story.lifecycle.begin(channel_id, ALICE)


def cog_on(story_db: SimpleNamespace, *, shard_count: int | None, guilds: set[int]) -> TurnsCog:
    bot = SimpleNamespace(
        runtime=SimpleNamespace(story=story_db.story),
        options=BotOptions(),
        shard_count=shard_count,
        get_guild=lambda guild_id: object() if guild_id in guilds else None,
    )
    cog = TurnsCog(bot)  # type: ignore[arg-type]
    read: list[int] = []

    async def catch_up_channel(point: CatchUpPoint) -> int:
        read.append(point.channel_id)
        return 1

    cog._catch_up_channel = catch_up_channel  # type: ignore[method-assign]
    cog.read = read  # type: ignore[attr-defined]
    return cog


@pytest.mark.parametrize(
    ("shard_id", "expected"),
    [pytest.param(None, [100, 200], id="all"), (0, [100]), (1, [200])],
)
async def test_a_shard_reads_only_its_own_servers_story_channels(
    story_db: SimpleNamespace, shard_id: int | None, expected: list[int]
) -> None:
    await story_in(story_db, ON_SHARD_0, 100)
    await story_in(story_db, ON_SHARD_1, 200)
    cog = cog_on(story_db, shard_count=2, guilds={ON_SHARD_0, ON_SHARD_1})
    assert await cog.catch_up(shard_id=shard_id) == len(expected)
    assert cog.read == expected  # type: ignore[attr-defined]


async def test_stories_of_servers_the_bot_is_not_on_are_not_read(
    story_db: SimpleNamespace,
) -> None:
    await story_in(story_db, ON_SHARD_0, 100)
    await story_in(story_db, ON_SHARD_1, 200)
    cog = cog_on(story_db, shard_count=None, guilds={ON_SHARD_1})
    assert await cog.catch_up() == 1
    assert cog.read == [200]  # type: ignore[attr-defined]


async def test_stories_not_under_way_are_not_read(story_db: SimpleNamespace) -> None:
    await story_db.story.lifecycle.start(
        guild_id=ON_SHARD_0, channel_id=100, actor=ALICE, title="In the lobby", genre="fantasy"
    )
    await story_in(story_db, ON_SHARD_0, 200)
    await story_db.story.lifecycle.pause(200, ALICE)
    cog = cog_on(story_db, shard_count=None, guilds={ON_SHARD_0})
    assert await cog.catch_up() == 0
    assert cog.read == []  # type: ignore[attr-defined]
