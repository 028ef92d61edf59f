"""The double against the real discord.py client running the small test bot."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from discord_double import EPHEMERAL, DiscordDouble, InvocationError, StoredMessage, world
from discord_double.story_bot import StoryBot


@pytest.fixture
async def bot(discord_double: DiscordDouble) -> AsyncIterator[StoryBot]:
    # The double checks its own answers against the spec's response schemas here.
    discord_double.validate_responses = True
    client = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(client):
        yield client


async def test_login_ready_and_guild_create_are_seen(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    assert bot.user is not None and bot.user.id == discord_double.bot_user.id
    guild = bot.get_guild(discord_double.guild.guild_id)
    assert guild is not None and not guild.unavailable
    mature = guild.get_channel(discord_double.channels["mature-stories"].id)
    assert isinstance(mature, discord.TextChannel) and mature.is_nsfw()
    # Without the members intent only the bot's own member arrives; others are fetched.
    assert [m.id for m in guild.members] == [discord_double.bot_user.id]
    moderator = await guild.fetch_member(discord_double.moderator.id)
    assert moderator.guild_permissions.manage_guild
    player = await guild.fetch_member(discord_double.users["alice"].id)
    assert not player.guild_permissions.manage_guild
    assert discord_double.gateway.identify_count == 1


async def test_tree_sync_is_accepted_and_recorded(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    synced = discord_double.synced_commands[discord_double.guild.guild_id]
    assert [c["name"] for c in synced] == ["story"]
    assert [c.name for c in bot.synced] == ["story"]


async def test_slash_command_defers_then_follows_up(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke(
        "alice", "story", "story", ["start"], {"genre": "noir", "rounds": 2}
    )
    await discord_double.wait_for_response(record)
    assert record.callback is not None and record.callback.type == 5
    [reply] = await discord_double.wait_for(
        lambda: [m for m in discord_double.interaction_responses(record) if m.content]
    )
    assert reply.content == "A noir story of 2 rounds begins."
    assert not reply.ephemeral
    assert reply.custom_ids() == ["turn:take", "turn:pass"]


async def test_ephemeral_response_carries_the_flag(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke("bob", "story", "story", ["status"])
    await discord_double.wait_for_response(record)
    [reply] = discord_double.interaction_responses(record)
    assert reply.flags & EPHEMERAL
    assert discord_double.messages_in("story") == []


async def test_subcommand_group_option_types_and_permissions(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke(
        discord_double.moderator,
        "story",
        "story",
        ["config", "rating"],
        {"level": "teen", "member": discord_double.users["cara"]},
    )
    await discord_double.wait_for_response(record)
    [reply] = discord_double.interaction_responses(record)
    assert reply.content == "teen for Cara the Bard; manage=True"


async def test_invoking_an_unsynced_command_fails_clearly(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    with pytest.raises(InvocationError, match="never synced a command named 'quest'"):
        await discord_double.invoke("alice", "story", "quest")
    with pytest.raises(InvocationError, match="not one of the choices"):
        await discord_double.invoke("alice", "story", "story", ["start"], {"genre": "horror"})


async def test_autocomplete_returns_choices(discord_double: DiscordDouble, bot: StoryBot) -> None:
    record = await discord_double.autocomplete(
        "alice", "story", "story", ["join"], {"character": "r"}, focused="character"
    )
    await discord_double.wait_for_response(record)
    assert [c["value"] for c in record.autocomplete_choices] == ["Aria", "Bram", "Corin"]


async def test_modal_submission_reaches_on_submit(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    opened = await discord_double.invoke("dan", "story", "story", ["name"])
    await discord_double.wait_for_response(opened)
    assert opened.modal["custom_id"]
    submitted = await discord_double.submit_modal("dan", opened, {"hero": "Ysolde"})
    await discord_double.wait_for_response(submitted)
    [reply] = discord_double.interaction_responses(submitted)
    assert reply.content == "The hero is Ysolde."


async def test_bot_message_with_allowed_mentions_none_pings_nobody(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    channel = bot.get_channel(discord_double.channels["general"].id)
    assert isinstance(channel, discord.TextChannel)
    alice = discord_double.users["alice"]
    await channel.send(
        f"{alice.mention} @everyone", allowed_mentions=discord.AllowedMentions.none()
    )
    [message] = discord_double.messages_in("general")
    assert message.pinged_user_ids == [] and not message.pinged_everyone
    await channel.send(
        f"{alice.mention}",
        allowed_mentions=discord.AllowedMentions(users=[discord.Object(alice.id)]),
    )
    assert discord_double.messages_in("general")[-1].pinged_user_ids == [alice.id]


async def test_file_attachment_is_kept_and_readable(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke("alice", "story", "story", ["export"])
    await discord_double.wait_for_response(record)
    [reply] = discord_double.interaction_responses(record)
    assert reply.file("story.md").text == "Once upon a time.\n"
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send(file=discord.File(io.BytesIO(b"chapter one"), filename="one.txt"))
    assert await sent.attachments[0].read() == b"chapter one"


async def test_upload_over_the_limit_is_refused_with_413(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    discord_double.upload_limit = 1024
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    with discord_double.expect_violations("upload over the 1024-byte limit"):
        with pytest.raises(discord.HTTPException) as raised:
            await channel.send(file=discord.File(io.BytesIO(b"x" * 2048), filename="big.txt"))
    assert raised.value.status == 413 and raised.value.code == 40005


async def test_on_message_receives_message_create(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    sent = await discord_double.send_message("cara", "story", "The dragon wakes.")
    seen = await discord_double.wait_for(lambda: [m for m in bot.seen if m.id == sent.id])
    assert seen[0].content == "The dragon wakes."
    assert seen[0].author.display_name == "Cara the Bard"


async def test_bot_messages_are_dispatched_back_to_the_bot(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("Chapter one.")
    await discord_double.wait_for(lambda: any(m.id == sent.id for m in bot.seen))


async def test_invalid_requests_are_recorded_as_violations(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    with discord_double.expect_violations("embeds/0/title: 257 characters") as caught:
        with pytest.raises(discord.HTTPException):
            await channel.send(embed=discord.Embed(title="t" * 257))
    assert "POST /channels/" in caught[0]
    with discord_double.expect_violations("2001 characters, more than Discord's 2000"):
        with pytest.raises(discord.HTTPException):
            await channel.send("x" * 2001)
    assert discord_double.violations == []


async def test_unknown_route_is_recorded(discord_double: DiscordDouble, bot: StoryBot) -> None:
    route = discord.http.Route(
        "GET", "/guilds/{guild_id}/audit-logs", guild_id=discord_double.guild.guild_id
    )
    with discord_double.expect_violations("unhandled route"):
        with pytest.raises(discord.NotFound):
            await bot.http.request(route)
    with discord_double.expect_violations("not in Discord's API spec"):
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/no/such/thing"))


async def test_component_click_reaches_the_view(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke("alice", "story", "story", ["start"], {"genre": "fantasy"})
    reply: StoredMessage = await discord_double.wait_for(
        lambda: next(
            (m for m in discord_double.interaction_responses(record) if m.components), None
        )
    )
    click = await discord_double.click("bob", reply, "turn:take")
    await discord_double.wait_for_response(click)
    assert bot.view.pressed_by == [discord_double.users["bob"].id]
    [answer] = discord_double.interaction_responses(click)
    assert answer.ephemeral and answer.content == "Your turn!"


async def test_rate_limited_route_is_retried_after_retry_after(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    route = "POST /channels/{channel_id}/messages"
    discord_double.rate_limit(route, retry_after=0.2)
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    await channel.send("Patience.")
    first, second = discord_double.requests_to(route)
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.2


async def test_edit_times_are_recorded(discord_double: DiscordDouble, bot: StoryBot) -> None:
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("Draft")
    await sent.edit(content="Draft 2")
    await asyncio.sleep(0.05)
    await sent.edit(content="Final")
    stored = discord_double.messages[sent.id]
    assert stored.content == "Final"
    [gap] = stored.edit_gaps()
    assert gap >= 0.05


async def test_threads_are_created_and_dispatched(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    channel = bot.get_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel)
    # Archiving, locking and private threads need more than the invite grants.
    extra = world.MANAGE_THREADS | world.CREATE_PRIVATE_THREADS
    await discord_double.set_role_permissions("bot", world.INVITE_PERMISSIONS | extra)
    starter = await channel.send("A new tale")
    thread = await starter.create_thread(name="The tale")
    assert thread.id == starter.id and discord_double.threads[0].name == "The tale"
    await thread.send("Inside the thread")
    assert discord_double.messages_in(thread.id)[0].content == "Inside the thread"
    await thread.edit(archived=True, locked=True)
    assert discord_double.threads[0].archived
    private = await channel.create_thread(name="Secret", type=discord.ChannelType.private_thread)
    assert discord_double.world.channels_by_id[private.id].type == 12
    user_thread = await discord_double.create_thread("bob", "story", "Bob's side quest")
    await discord_double.wait_for(lambda: bot.get_channel(user_thread.id))


async def test_channel_update_reaches_the_cache(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    story_id = discord_double.channels["story"].id
    await discord_double.update_channel("story", nsfw=True)
    await discord_double.wait_for(
        lambda: isinstance(c := bot.get_channel(story_id), discord.TextChannel) and c.is_nsfw()
    )


async def test_reactions_and_message_edits_and_deletes(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    sent = await discord_double.send_message("alice", "story", "Once")
    message = await bot.get_channel(discord_double.channels["story"].id).fetch_message(sent.id)  # type: ignore[union-attr]
    await message.add_reaction("\N{OPEN BOOK}")
    assert [r.emoji for r in discord_double.reactions] == ["\N{OPEN BOOK}"]
    edited: list[discord.Message] = []
    deleted: list[int] = []

    async def on_message_edit(before: discord.Message, after: discord.Message) -> None:
        edited.append(after)

    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        deleted.append(payload.message_id)

    bot.add_listener(on_message_edit)
    bot.add_listener(on_raw_message_delete)
    await discord_double.wait_for(lambda: any(m.id == sent.id for m in bot.seen))
    await discord_double.edit_message(sent, "Once upon")
    await discord_double.wait_for(lambda: edited)
    assert edited[0].content == "Once upon"
    await discord_double.delete_message(sent)
    await discord_double.wait_for(lambda: deleted == [sent.id])


async def test_restart_a_new_client_against_the_same_state(discord_double: DiscordDouble) -> None:
    first = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(first):
        channel = first.get_channel(discord_double.channels["story"].id)
        assert isinstance(channel, discord.TextChannel)
        await channel.send("Before the restart")
    assert first.is_closed()
    second = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(second):
        channel = second.get_channel(discord_double.channels["story"].id)
        assert isinstance(channel, discord.TextChannel)
        history = [m.content async for m in channel.history(limit=10)]
        assert history == ["Before the restart"]
    assert discord_double.gateway.identify_count == 2


async def test_dropped_gateway_resumes_and_replays(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    await discord_double.drop_gateway()
    sent = await discord_double.send_message("dan", "story", "While you were away")
    await discord_double.wait_for(lambda: any(m.id == sent.id for m in bot.seen))
    assert discord_double.gateway.resume_count == 1
    await discord_double.request_reconnect()
    await discord_double.wait_for(lambda: discord_double.gateway.resume_count == 2)
    assert discord_double.gateway.identify_count == 1


async def test_invalidated_session_identifies_again(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    await discord_double.invalidate_session()
    await discord_double.wait_for(lambda: discord_double.gateway.identify_count == 2)
    sent = await discord_double.send_message("dan", "story", "Hello again")
    await discord_double.wait_for(lambda: any(m.id == sent.id for m in bot.seen))


async def test_late_acknowledgement_is_a_violation(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    discord_double.interaction_ack_timeout = 0.0
    record = await discord_double.invoke("bob", "story", "story", ["status"])
    with discord_double.expect_violations("acknowledged after"):
        await discord_double.wait_for(lambda: discord_double.violations)
    assert record.callback is None


async def test_follow_up_after_the_token_expired_is_refused(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    # Discord's interaction tokens last 15 minutes; here the deferral is already too old.
    discord_double.interaction_token_lifetime = 0.0
    with discord_double.expect_violations("followed up after"):
        record = await discord_double.invoke(
            "alice", "story", "story", ["start"], {"genre": "noir"}
        )
        await discord_double.wait_for(lambda: any(r.status == 401 for r in discord_double.requests))
    assert record.callback is not None and record.callback.type == 5
    assert record.followups == [] and record.original is not None
    assert not record.original.content, "the thinking message was never filled"


async def test_interaction_webhook_edits_follow_ups_and_deletes(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke("alice", "story", "story", ["revise"])
    await discord_double.wait_for_response(record, followups=2)
    original, note, summary = discord_double.interaction_responses(record)
    assert original.content == "Final" and len(original.edit_times) == 1
    assert note.ephemeral and note.content == "Note, revised"
    assert summary.content == "Original says Final" and not summary.ephemeral
    retract = await discord_double.invoke("alice", "story", "story", ["retract"])
    await discord_double.wait_for(lambda: retract.original is not None and retract.original.deleted)
    assert discord_double.interaction_responses(retract) == []


async def test_update_message_callback_edits_the_clicked_message(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    record = await discord_double.invoke("alice", "story", "story", ["start"], {"genre": "noir"})
    reply: StoredMessage = await discord_double.wait_for(
        lambda: next((m for m in discord_double.interaction_responses(record) if m.content), None)
    )
    click = await discord_double.click("bob", reply, "turn:pass")
    await discord_double.wait_for_response(click)
    assert click.callback is not None and click.callback.type == 7
    assert reply.content == "Passed." and reply.components == []


async def test_message_content_is_blank_without_the_intent(discord_double: DiscordDouble) -> None:
    seen: list[discord.Message] = []
    client = discord.Client(
        intents=discord.Intents.default(), guild_ready_timeout=0.05, chunk_guilds_at_startup=False
    )

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message)

    async with discord_double.run_client(client):
        await discord_double.send_message("alice", "story", "A secret plot")
        await discord_double.send_message("bob", "story", f"{discord_double.bot_user.mention} hi")
        await discord_double.wait_for(lambda: len(seen) == 2)
    assert seen[0].content == ""
    assert seen[1].content.endswith(" hi")


async def test_rest_reads_answer_in_discords_shapes(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    guild_id = discord_double.guild.guild_id
    assert (await bot.fetch_guild(guild_id, with_counts=True)).approximate_member_count == 7
    assert len(await (await bot.fetch_guild(guild_id)).fetch_channels()) == 3
    channel = await bot.fetch_channel(discord_double.channels["story"].id)
    assert isinstance(channel, discord.TextChannel) and channel.name == "story"
    assert (await bot.fetch_user(discord_double.users["bob"].id)).name == "bob"
    assert [c.name for c in await bot.tree.fetch_commands(guild=discord.Object(guild_id))] == [
        "story"
    ]
    shards, url, _ = await bot.http.get_bot_gateway()
    assert shards == 1 and url == discord_double.gateway_url
    async with channel.typing():
        pass
    assert discord_double.typing
    # Pinning and clearing others' reactions need Manage Messages, beyond the invite.
    await discord_double.set_role_permissions(
        "bot", world.INVITE_PERMISSIONS | world.MANAGE_MESSAGES
    )
    message = await channel.send("Pin me")
    await message.pin()
    await message.add_reaction("\N{OPEN BOOK}")
    await message.remove_reaction("\N{OPEN BOOK}", bot.user)  # type: ignore[arg-type]
    assert discord_double.messages[message.id]["pinned"] and discord_double.reactions == []
    await discord_double.add_reaction("alice", message.id, "\N{OPEN BOOK}")
    await discord_double.add_reaction("bob", message.id, "\N{SCROLL}")
    await message.clear_reaction("\N{SCROLL}")
    assert [r.user_id for r in discord_double.reactions] == [discord_double.users["alice"].id]
    await message.clear_reactions()
    assert discord_double.reactions == []
    dm = await (await bot.fetch_user(discord_double.users["cara"].id)).send("Psst")
    assert discord_double.messages_in(dm.channel.id)[0].content == "Psst"


async def test_members_intent_gets_every_member_and_chunks(discord_double: DiscordDouble) -> None:
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    async with discord_double.run_client(client):
        guild = client.get_guild(discord_double.guild.id)
        assert guild is not None and guild.chunked
        moderator = guild.get_member(discord_double.moderator.id)
        assert moderator is not None and moderator.guild_permissions.manage_guild
        assert len(guild.members) == 7


async def test_an_auto_sharded_client_connects(discord_double: DiscordDouble) -> None:
    client = discord.AutoShardedClient(
        intents=discord.Intents.default(), guild_ready_timeout=0.05, chunk_guilds_at_startup=False
    )
    async with discord_double.run_client(client):
        assert client.shard_count == 1
        assert client.get_guild(discord_double.guild.id) is not None


async def test_requests_without_the_bot_token_are_violations(
    discord_double: DiscordDouble,
) -> None:
    url = f"{discord_double.base_url}/api/v10/users/@me"
    async with aiohttp.ClientSession() as session:
        with discord_double.expect_violations("Authorization"):
            async with session.get(url) as response:
                assert response.status == 401
