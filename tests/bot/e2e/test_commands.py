"""The slash commands the bot registers are ones Discord accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord_double import validate_command_definitions

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

GLOBAL_SYNC = "PUT /applications/{application_id}/commands"
GUILD_SYNC = "PUT /applications/{application_id}/guilds/{guild_id}/commands"


async def test_every_synced_command_definition_is_valid_for_discord(table: StoryTable) -> None:
    double = table.double
    async with table.running() as bot:
        tree_payloads = [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    [sync] = double.requests_to(GLOBAL_SYNC)
    assert sync.status == 200
    assert sorted(c["name"] for c in sync.body) == ["story", "storyconfig"]
    assert validate_command_definitions(sync.body, double.spec) == []
    assert validate_command_definitions(tree_payloads, double.spec) == []
    for payload in tree_payloads:
        assert validate_command_definitions(payload, double.spec) == [], payload["name"]
    assert [c["name"] for c in double.synced_commands[None]] == [c["name"] for c in sync.body]

    # The development setting registers the same commands on one server instead.
    guild_id = double.guild.id
    async with table.running(options=table.options(command_guild_id=guild_id)):
        pass
    [guild_sync] = double.requests_to(GUILD_SYNC)
    assert guild_sync.status == 200
    assert validate_command_definitions(guild_sync.body, double.spec) == []
    assert sorted(c["name"] for c in double.synced_commands[guild_id]) == ["story", "storyconfig"]
