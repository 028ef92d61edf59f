"""Moderators' safety commands: blocked words, ratings and the audit log, end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import ContentRating

from discord_double import EPHEMERAL

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_moderator_blocks_a_word_and_reads_the_audit_that_players_cannot(
    table: StoryTable,
) -> None:
    guild_id = table.double.guild.id
    async with table.running() as bot:
        await table.configure(narrator_cadence="on_demand")
        added = await table.reply_to(
            await table.command("moderator", "storyconfig blocked add", words="moonstone, pale gem")
        )
        assert added.flags & EPHEMERAL and added.content == "✅ 2 blocked entries now."
        listed = await table.reply_to(await table.command("moderator", "storyconfig blocked list"))
        assert listed.content == "`moonstone`, `pale gem`"

        await table.start_story("alice", "bob")
        refused = await table.say("alice", "Alice pockets the pale   gem.")
        await table.double.wait_for(lambda: table.reactions_on(refused), what="a reaction")
        assert await table.turns() == []

        audit = await table.reply_to(await table.command("moderator", "storyconfig audit"))
        assert audit.flags & EPHEMERAL
        assert "**blocked_word** → refused" in audit.content
        assert f"<@{table.user('alice').id}>" in audit.content and not audit.pinged_user_ids

        for path in ("storyconfig audit", "storyconfig blocked list"):
            refusal = await table.reply_to(await table.command("bob", path))
            assert refusal.flags & EPHEMERAL
            assert refusal.content.startswith("Only moderators")
            assert "alice" not in refusal.content.casefold()

        rated = await table.reply_to(
            await table.command("moderator", "storyconfig rating", rating="teen")
        )
        assert rated.content.startswith("✅ Saved.")
        assert (await bot.runtime.configs.get(guild_id)).content_rating == ContentRating.TEEN
        # The story channel is not age-restricted: a mature override is refused there.
        mature = await table.reply_to(
            await table.command("moderator", "storyconfig channel-rating", rating="mature")
        )
        assert mature.flags & EPHEMERAL and "age-restricted" in mature.content
        assert await bot.runtime.moderation.channel_rating(table.channel_id) is None
    table.audit_mentions()


async def test_moderator_sets_flood_limits_and_an_emoji_flood_is_refused(
    table: StoryTable,
) -> None:
    guild_id = table.double.guild.id
    async with table.running() as bot:
        await table.configure(narrator_cadence="on_demand")
        shown = await table.reply_to(await table.command("moderator", "storyconfig flood"))
        assert shown.flags & EPHEMERAL
        assert "• Most emoji in one message: 6" in shown.content

        saved = await table.reply_to(
            await table.command("moderator", "storyconfig flood", emoji=2, words=3)
        )
        assert saved.content.startswith("✅ Saved.")
        config = await bot.runtime.configs.get(guild_id)
        assert (config.max_emoji, config.max_repeated_words) == (2, 3)

        refusal = await table.reply_to(await table.command("bob", "storyconfig flood", emoji=50))
        assert refusal.flags & EPHEMERAL and refusal.content.startswith("Only moderators")
        assert (await bot.runtime.configs.get(guild_id)).max_emoji == 2

        await table.start_story("alice", "bob")
        refused = await table.say("alice", "\U0001f409\U0001f409\U0001f409 The dragons wake.")
        await table.double.wait_for(lambda: table.reactions_on(refused), what="a reaction")
        assert await table.turns() == []
        audit = await table.reply_to(await table.command("moderator", "storyconfig audit"))
        assert "**emoji_flood** → refused" in audit.content
