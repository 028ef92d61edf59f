"""The double's shards: GET /gateway/bot recommends a count; each server's events go to one."""

from __future__ import annotations

import aiohttp

from discord_double import DiscordDouble
from discord_double.gateway import GatewaySession


def test_a_server_belongs_to_the_shard_its_id_names() -> None:
    first, second = (GatewaySession(id=str(n), intents=0, shard=(n, 2)) for n in (0, 1))
    even, odd = 40 << 22, 41 << 22
    assert first.serves(even) and not first.serves(odd)
    assert second.serves(odd) and not second.serves(even)
    # Direct messages come to shard 0; an unsharded session gets everything.
    assert first.serves(None) and not second.serves(None)
    assert GatewaySession(id="x", intents=0).serves(odd)


async def test_gateway_bot_recommends_the_shards_the_test_sets(
    discord_double: DiscordDouble,
) -> None:
    discord_double.recommended_shards = 3
    auth = {"Authorization": f"Bot {discord_double.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{discord_double.base_url}/api/v10/gateway/bot", headers=auth) as response,
    ):
        body = await response.json()
    assert response.status == 200 and body["shards"] == 3


def test_another_server_has_its_own_roles_and_channels_found_through_any(
    discord_double: DiscordDouble,
) -> None:
    world = discord_double.world
    other = world.add_guild("Second Circle")
    story = other.channels["story"]
    assert story.guild_id == other.guild_id != world.guild_id
    assert world.channels_by_id[story.id] is story and world.guild_of(story) is other
    assert other.roles["everyone"].id == other.guild_id
    payload = other.guild_create_payload(all_members=False)
    assert {c["id"] for c in payload["channels"]} == {str(c.id) for c in other.channels.values()}
    # The bot holds its role there too: its permissions are what its invite asks for.
    bot = discord_double.bot_user
    assert world.channel_permissions(bot, story) == other.channel_permissions(bot, story)
    assert other.roles["bot"].id in bot.role_ids
