"""Changes to the server itself: members leave, channels are deleted, the bot is removed."""

from __future__ import annotations

from .gateway import GUILD_MEMBERS, GUILDS, Dispatch
from .message_model import MessageModel
from .models import DoubleChannel, DoubleUser


class GuildChanges(MessageModel):
    """Act as the server's owner and moderators, and as Discord telling the bot about it."""

    async def remove_member(self, user: DoubleUser | str) -> DoubleUser:
        """Take a member off the server (they left or were kicked).

        The bot hears GUILD_MEMBER_REMOVE only with the privileged Server Members intent;
        without it, it learns when Discord answers a member lookup with 10007 Unknown Member.
        """
        member = self._user(user)
        if member.id == self.bot_user.id:
            raise ValueError("the bot leaves with remove_bot()")
        self.world.remove_member(member)
        data = {"guild_id": str(self.world.guild_id), "user": member.payload()}
        await self.gateway.dispatch(Dispatch("GUILD_MEMBER_REMOVE", data, intent=GUILD_MEMBERS))
        self.notify()
        return member

    async def delete_channel(self, channel: int | str | DoubleChannel) -> list[DoubleChannel]:
        """Delete a channel (with its threads) or a thread; return what was deleted.

        The bot hears CHANNEL_DELETE or THREAD_DELETE where it could see the channel; a
        channel's threads go with it without events of their own, as on Discord. Every
        later request for them is answered 404 10003 Unknown Channel.
        """
        target = self._channel(channel)
        seen = self._bot_sees(target)
        gone = self.world.remove_channel(target)
        if seen and target.is_thread:
            data = {
                "id": str(target.id),
                "guild_id": str(target.guild_id),
                "parent_id": str(target.parent_id),
                "type": target.type,
            }
            await self.gateway.dispatch(Dispatch("THREAD_DELETE", data, intent=GUILDS))
        elif seen:
            payload = self.world.channel_payload(target)
            await self.gateway.dispatch(Dispatch("CHANNEL_DELETE", payload, intent=GUILDS))
        self.notify()
        return gone

    async def remove_bot(self) -> None:
        """Remove the bot from the server: GUILD_DELETE without `unavailable`.

        From then on the server and its channels answer 403 Missing Access, READY no longer
        lists the server, and members' commands no longer reach the bot.
        """
        self.world.bot_joined = False
        data = {"id": str(self.world.guild_id)}
        await self.gateway.dispatch(Dispatch("GUILD_DELETE", data, intent=GUILDS))
        self.notify()

    async def add_bot(self) -> None:
        """Invite the bot back: every session gets GUILD_CREATE."""
        self.world.bot_joined = True
        await self.gateway.guild_joined()
        self.notify()
