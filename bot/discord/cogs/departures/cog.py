"""When the server changes under a story: members leave, channels go, the bot is removed.

Every change goes through the engine: a member who left the server is marked away in its
stories (their turn passes on at once), a deleted channel or thread ends its stories (they
stay exportable), and a bot removed from a server pauses the stories there, leaving each
host a notice for when the bot is back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot

log = logging.getLogger(__name__)

REMOVED_NOTICE = (
    "I paused the story because I was removed from this server. Once I am invited back "
    "(with the permissions I asked for), `/story resume` continues it."
)


def serves_guild(client: discord.Client, guild_id: int) -> bool:
    """Tell whether a server's events come to this client (its shard), as Discord assigns them."""
    count = client.shard_count or 1
    if count <= 1:
        return True
    shard_ids = getattr(client, "shard_ids", None)
    if shard_ids is None:
        shard_ids = [client.shard_id] if client.shard_id is not None else range(count)
    return (guild_id >> 22) % count in shard_ids


class DeparturesCog(commands.Cog):
    """Hand members leaving, channels deleted and the bot's removal to the engine."""

    def __init__(self, bot: TaleweaverBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        """Mark a member who left away in the server's stories (with the members intent)."""
        if payload.user.bot:
            return
        try:
            await self.bot.finish_before_close(
                self.bot.departures.member_left(payload.guild_id, payload.user.id)
            )
        except Exception:
            log.exception("could not mark member %s away", payload.user.id)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """End the stories of a deleted channel and of its threads."""
        await self.bot.finish_before_close(self.bot.close_deleted_channel(channel.id))

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """End the story of a deleted thread."""
        await self.bot.finish_before_close(self.bot.close_deleted_channel(payload.thread_id))

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Pause the stories of a server the bot was removed from."""
        await self.bot.finish_before_close(self._suspend(guild.id))

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Pause the stories of servers the bot was removed from while it was away."""
        await self.bot.finish_before_close(self._suspend_where_removed())

    async def _suspend_where_removed(self) -> None:
        try:
            guild_ids = await self.bot.runtime.story.queries.guilds_with_open_stories()
        except Exception:
            log.exception("could not list the servers with stories")
            return
        for guild_id in guild_ids:
            # Every server the bot is on is known at READY, if only as unavailable.
            if serves_guild(self.bot, guild_id) and self.bot.get_guild(guild_id) is None:
                await self._suspend(guild_id)

    async def _suspend(self, guild_id: int) -> None:
        try:
            paused = await self.bot.runtime.story.lifecycle.suspend_guild(guild_id, REMOVED_NOTICE)
        except Exception:
            log.exception("could not pause the stories of server %s", guild_id)
            return
        if paused:
            log.warning("removed from server %s: %d stories paused", guild_id, len(paused))
