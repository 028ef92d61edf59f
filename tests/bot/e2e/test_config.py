"""Server configuration: moderators change it, players are refused in private."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import NarratorCadence

from discord_double import EPHEMERAL

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_moderator_changes_the_config_and_a_player_is_refused_privately(
    table: StoryTable,
) -> None:
    guild_id = table.double.guild.id
    async with table.running() as bot:
        configs = bot.runtime.configs

        record = await table.command("moderator", "storyconfig cadence", cadence="every_round")
        saved = await table.reply_to(record)
        assert saved.flags & EPHEMERAL and saved.content.startswith("✅ Saved.")
        record = await table.command("moderator", "storyconfig turn-length", minimum=5, maximum=300)
        assert (await table.reply_to(record)).content.startswith("✅ Saved.")
        config = await configs.get(guild_id)
        assert config.narrator_cadence == NarratorCadence.EVERY_ROUND
        assert (config.min_turn_chars, config.max_turn_chars) == (5, 300)

        # Every member sees /storyconfig (the moderator role must); the engine refuses a
        # player, privately.
        for path, options in (
            ("storyconfig cadence", {"cadence": "on_demand"}),
            ("storyconfig turn-length", {"minimum": 10, "maximum": 100}),
        ):
            record = await table.command("alice", path, **options)
            refusal = await table.reply_to(record)
            assert record.callback is not None and record.callback.ephemeral
            assert refusal.flags & EPHEMERAL
            assert refusal.content == "Only moderators can change the story configuration."
        assert await configs.get(guild_id) == config
        assert table.bot_messages() == [], "configuration is never announced in the channel"
