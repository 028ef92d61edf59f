"""The double as the server changes under the bot: history read after a gap, members who
leave, deleted channels and threads, and the bot removed from the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest

from discord_double import DiscordDouble, InvocationError
from discord_double.story_bot import StoryBot


@pytest.fixture
async def bot(discord_double: DiscordDouble) -> AsyncIterator[StoryBot]:
    discord_double.validate_responses = True
    client = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(client):
        yield client


class GatedBot(StoryBot):
    """Identifies again only when the test opens the gate, and counts READY events."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(guild_id)
        self.gate = asyncio.Event()
        self.gate.set()
        self.readies = 0

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.gate.wait()

    async def on_ready(self) -> None:
        self.readies += 1


def member_client(guild_id: int) -> discord.Client:
    """Return a client that asked for the privileged Server Members intent."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.members = True
    return discord.Client(intents=intents, guild_ready_timeout=0.05, chunk_guilds_at_startup=False)


async def test_history_after_an_id_is_the_oldest_messages_after_it_newest_first(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    sent = [
        await discord_double.send_message("alice", "story", text)
        for text in ("one", "two", "three", "four")
    ]
    channel_id = discord_double.channels["story"].id
    raw = await bot.http.logs_from(channel_id, 2, after=sent[0].id)
    assert [m["content"] for m in raw] == ["three", "two"]
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    read = [m.content async for m in channel.history(after=discord.Object(sent[0].id), limit=2)]
    assert read == ["two", "three"]


async def test_messages_sent_while_a_session_is_invalidated_are_found_only_in_history(
    discord_double: DiscordDouble,
) -> None:
    bot = GatedBot(discord_double.guild.guild_id)
    async with discord_double.run_client(bot):
        before = await discord_double.send_message("alice", "story", "Before")
        await discord_double.wait_for(lambda: any(m.id == before.id for m in bot.seen))
        bot.gate.clear()
        await discord_double.invalidate_session()
        await discord_double.wait_for(lambda: not discord_double.gateway.connected)
        missed = await discord_double.send_message("bob", "story", "While nobody listened")
        bot.gate.set()
        await discord_double.wait_for(lambda: bot.readies == 2, what="READY after op 9")
        assert discord_double.gateway.identify_count == 2
        assert discord_double.gateway.resume_count == 0
        assert all(m.id != missed.id for m in bot.seen)
        channel = bot.get_channel(discord_double.channels["story"].id)
        assert isinstance(channel, discord.TextChannel)
        read = [m.id async for m in channel.history(after=discord.Object(before.id))]
        assert read == [missed.id]


async def test_a_removed_member_is_announced_with_the_members_intent_and_unknown_after(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    bob = discord_double.users["bob"]
    watcher = member_client(discord_double.guild.guild_id)
    async with discord_double.run_client(watcher):
        guild = watcher.get_guild(discord_double.guild.guild_id)
        assert guild is not None and guild.get_member(bob.id) is not None
        removed = asyncio.ensure_future(watcher.wait_for("raw_member_remove", timeout=5))
        await discord_double.remove_member(bob)
        event = await removed
        assert event.user.id == bob.id and event.guild_id == guild.id
        assert guild.get_member(bob.id) is None
    # The bot without the intent heard nothing; a lookup tells it.
    story_guild = bot.get_guild(discord_double.guild.guild_id)
    assert story_guild is not None
    with pytest.raises(discord.NotFound) as unknown:
        await story_guild.fetch_member(bob.id)
    assert unknown.value.code == 10007


async def test_a_deleted_channel_takes_its_threads_along_and_is_unknown_after(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    story = discord_double.channels["story"]
    thread = await discord_double.create_thread("alice", story, "Side quest")
    other = await discord_double.create_thread("alice", "general", "Elsewhere")
    await discord_double.wait_for(lambda: bot.get_channel(other.id) is not None)

    deleted_thread = asyncio.ensure_future(bot.wait_for("raw_thread_delete", timeout=5))
    await discord_double.delete_channel(other)
    assert (await deleted_thread).thread_id == other.id

    deleted = asyncio.ensure_future(bot.wait_for("guild_channel_delete", timeout=5))
    gone = await discord_double.delete_channel(story)
    assert [c.id for c in gone] == [story.id, thread.id]
    assert (await deleted).id == story.id
    assert "story" not in discord_double.channels
    for channel_id in (story.id, thread.id, other.id):
        with pytest.raises(discord.NotFound) as unknown:
            await bot.fetch_channel(channel_id)
        assert unknown.value.code == 10003
    with pytest.raises(discord.NotFound) as unknown:
        await bot.http.send_message(story.id, params=discord.http.handle_message_parameters("x"))
    assert unknown.value.code == 10003


async def test_a_removed_bot_reaches_nothing_until_it_is_invited_again(
    discord_double: DiscordDouble,
) -> None:
    bot = GatedBot(discord_double.guild.guild_id)
    guild_id = discord_double.guild.guild_id
    async with discord_double.run_client(bot):
        removed = asyncio.ensure_future(bot.wait_for("guild_remove", timeout=5))
        await discord_double.remove_bot()
        assert (await removed).id == guild_id
        assert bot.get_guild(guild_id) is None
        with discord_double.expect_violations("after the bot was removed from the server"):
            with pytest.raises(discord.Forbidden) as refused:
                await bot.http.send_message(
                    discord_double.channels["story"].id,
                    params=discord.http.handle_message_parameters("Still here?"),
                )
        assert refused.value.code == 50001
        with pytest.raises(InvocationError):
            await discord_double.invoke("alice", "story", "story", ["status"])
        unseen = await discord_double.send_message("alice", "story", "Nobody hears this")

        # READY no longer lists the server after a new session.
        await discord_double.invalidate_session()
        await discord_double.wait_for(lambda: bot.readies == 2, what="READY after op 9")
        assert bot.get_guild(guild_id) is None

        joined = asyncio.ensure_future(bot.wait_for("guild_join", timeout=5))
        await discord_double.add_bot()
        assert (await joined).id == guild_id
        assert all(m.id != unseen.id for m in bot.seen)
        record = await discord_double.invoke("alice", "story", "story", ["status"])
        await discord_double.wait_for_response(record)
