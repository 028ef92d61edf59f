"""The double computes and enforces permissions as Discord does."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from discord_double import DiscordDouble, InvocationError
from discord_double.models import DoubleChannel
from discord_double.story_bot import StoryBot
from discord_double.world import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    EMBED_LINKS,
    EVERYONE_PERMISSIONS,
    INVITE_PERMISSIONS,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    MANAGE_THREADS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def bot(discord_double: DiscordDouble) -> AsyncIterator[StoryBot]:
    client = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(client):
        yield client


def text_channel(bot: StoryBot, double: DiscordDouble, name: str) -> discord.TextChannel:
    channel = bot.get_channel(double.channels[name].id)
    assert isinstance(channel, discord.TextChannel)
    return channel


def test_the_bots_role_has_exactly_the_readme_invites_permissions(
    discord_double: DiscordDouble,
) -> None:
    found = re.findall(r"oauth2/authorize\?\S*permissions=(\d+)", README.read_text())
    assert found, "the README's invite link was not found"
    assert {int(value) for value in found} == {INVITE_PERMISSIONS}
    bot_role = discord_double.guild.roles["bot"]
    assert bot_role.permissions == INVITE_PERMISSIONS
    assert not INVITE_PERMISSIONS & (MANAGE_MESSAGES | MANAGE_THREADS)


async def test_channel_permissions_apply_overwrites_in_discords_order(
    discord_double: DiscordDouble,
) -> None:
    world = discord_double.guild
    story = discord_double.channels["story"]
    alice, bob = discord_double.users["alice"], discord_double.users["bob"]
    moderator, owner = discord_double.moderator, discord_double.users["owner"]
    everyone, mods = world.roles["everyone"], world.roles["moderator"]
    assert world.channel_permissions(alice, story) == EVERYONE_PERMISSIONS

    # @everyone loses the channel; the moderator role gets it back; Bob is let in by name.
    world.set_overwrite(story, everyone, deny=VIEW_CHANNEL)
    world.set_overwrite(story, mods, allow=VIEW_CHANNEL)
    world.set_overwrite(story, bob, allow=VIEW_CHANNEL, deny=SEND_MESSAGES)
    assert not world.channel_permissions(alice, story) & VIEW_CHANNEL
    assert world.channel_permissions(moderator, story) & VIEW_CHANNEL
    bob_here = world.channel_permissions(bob, story)
    assert bob_here & VIEW_CHANNEL and not bob_here & SEND_MESSAGES
    # A role overwrite's deny loses to another of the member's roles' allow.
    moderator.role_ids.append(world.roles["bot"].id)
    world.set_overwrite(story, world.roles["bot"], deny=EMBED_LINKS)
    world.set_overwrite(story, mods, allow=VIEW_CHANNEL | EMBED_LINKS)
    assert world.channel_permissions(moderator, story) & EMBED_LINKS
    # The owner and Administrators pass every overwrite.
    assert world.channel_permissions(owner, story) == ALL_PERMISSIONS
    mods.permissions |= ADMINISTRATOR
    assert world.channel_permissions(moderator, story) == ALL_PERMISSIONS

    # A thread has its parent's permissions, and no overwrites of its own.
    thread = await discord_double.create_thread("bob", "story", "Side quest")
    assert world.channel_permissions(bob, thread) == bob_here
    with pytest.raises(ValueError, match="no overwrites"):
        world.set_overwrite(thread, bob, deny=SEND_MESSAGES_IN_THREADS)


async def test_posting_without_the_permission_is_403_and_a_violation(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    story = text_channel(bot, discord_double, "story")
    await discord_double.set_overwrite("story", "bot", deny=SEND_MESSAGES)
    with discord_double.expect_violations("without SEND_MESSAGES (403 Missing Permissions)"):
        with pytest.raises(discord.Forbidden) as raised:
            await story.send("A tale")
    assert raised.value.code == 50013

    # Threads of that channel need Send Messages in Threads instead.
    user_thread = await discord_double.create_thread("bob", "story", "Side quest")
    thread = await discord_double.wait_for(lambda: bot.get_channel(user_thread.id))
    assert isinstance(thread, discord.Thread)
    await thread.send("Inside")
    await discord_double.set_overwrite(
        "story", "bot", deny=SEND_MESSAGES | SEND_MESSAGES_IN_THREADS
    )
    with discord_double.expect_violations("without SEND_MESSAGES_IN_THREADS"):
        with pytest.raises(discord.Forbidden):
            await thread.send("Inside again")

    # Without View Channel the channel does not exist for the bot: 50001.
    await discord_double.set_overwrite("story", "bot", deny=VIEW_CHANNEL)
    with discord_double.expect_violations("which the bot cannot view (403 Missing Access)"):
        with pytest.raises(discord.Forbidden) as raised:
            await story.send("A tale")
    assert raised.value.code == 50001

    # Embeds need Embed Links, and another member's message needs Manage Messages to go.
    general = text_channel(bot, discord_double, "general")
    await discord_double.set_overwrite("general", "bot", deny=EMBED_LINKS)
    with discord_double.expect_violations("without EMBED_LINKS"):
        with pytest.raises(discord.Forbidden):
            await general.send(embed=discord.Embed(title="Card"))
    theirs = await discord_double.send_message("alice", "general", "Mine")
    with discord_double.expect_violations("without MANAGE_MESSAGES"):
        with pytest.raises(discord.Forbidden):
            await general.get_partial_message(theirs.id).delete()
    assert not theirs.deleted


async def test_an_unviewable_channel_sends_no_events_and_interactions_carry_permissions(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    await discord_double.set_overwrite("story", "bot", deny=VIEW_CHANNEL | SEND_MESSAGES)
    hidden = await discord_double.send_message("alice", "story", "Can you see me?")
    seen = await discord_double.send_message("alice", "general", "And here?")
    await discord_double.wait_for(lambda: any(m.id == seen.id for m in bot.seen))
    assert all(m.id != hidden.id for m in bot.seen)

    record = await discord_double.invoke("alice", "story", "story", ["status"])
    payload = record.payload
    app_permissions = int(payload["app_permissions"])
    assert not app_permissions & (VIEW_CHANNEL | SEND_MESSAGES)
    assert app_permissions & READ_MESSAGE_HISTORY
    assert int(payload["member"]["permissions"]) == EVERYONE_PERMISSIONS
    await discord_double.wait_for_response(record)


async def test_reading_history_without_read_message_history_returns_nothing(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    await discord_double.send_message("alice", "general", "Old news")
    general = text_channel(bot, discord_double, "general")
    assert [m.content async for m in general.history(limit=5)] == ["Old news"]
    await discord_double.set_overwrite("general", "bot", deny=READ_MESSAGE_HISTORY)
    assert [m async for m in general.history(limit=5)] == []


async def test_an_archived_thread_refuses_edits_with_50083(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    starter = await text_channel(bot, discord_double, "story").send("A new tale")
    thread = await starter.create_thread(name="The tale")
    inside = await thread.send("Inside the thread")
    stored: DoubleChannel = discord_double.world.channels_by_id[thread.id]
    await discord_double.update_channel(stored, archived=True)
    with discord_double.expect_violations("edited a message in archived thread"):
        with pytest.raises(discord.HTTPException) as raised:
            await inside.edit(content="Changed")
    assert raised.value.code == 50083
    assert discord_double.messages[inside.id].content == "Inside the thread"


async def test_a_command_with_default_permissions_is_offered_only_to_those_who_have_them(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    [story] = discord_double.synced_commands[discord_double.guild.guild_id]
    story["default_member_permissions"] = str(MANAGE_GUILD)
    with pytest.raises(InvocationError, match="needs MANAGE_GUILD by default"):
        await discord_double.invoke("alice", "story", "story", ["status"])
    record = await discord_double.invoke("moderator", "story", "story", ["status"])
    await discord_double.wait_for_response(record)
