"""REST handlers for channels, messages, reactions, pins, threads, and the guild."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .gateway import GUILDS, Dispatch
from .message_model import MessageModel
from .messages import emoji_object
from .models import DoubleChannel
from .rest import ApiError, Call, Handler, Reply
from .world import (
    ADD_REACTIONS,
    ATTACH_FILES,
    CREATE_PRIVATE_THREADS,
    CREATE_PUBLIC_THREADS,
    EMBED_LINKS,
    MANAGE_CHANNELS,
    MANAGE_MESSAGES,
    MANAGE_THREADS,
    PIN_MESSAGES,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES_IN_THREADS,
)


class ChannelRoutes(MessageModel):
    """Channel and message routes, plus the guild reads discord.py makes."""

    def _channel_routes(self) -> dict[tuple[str, str], Handler]:
        message = "/channels/{channel_id}/messages/{message_id}"
        reaction = message + "/reactions/{emoji_name}"
        return {
            ("GET", "/channels/{channel_id}"): self._get_channel,
            ("PATCH", "/channels/{channel_id}"): self._patch_channel,
            ("GET", "/channels/{channel_id}/messages"): self._list_messages,
            ("POST", "/channels/{channel_id}/messages"): self._create_message,
            ("GET", message): self._get_message,
            ("PATCH", message): self._edit_message,
            ("DELETE", message): self._delete_message,
            ("PUT", reaction + "/@me"): self._put_reaction,
            ("DELETE", reaction + "/@me"): self._delete_reactions,
            ("DELETE", reaction + "/{user_id}"): self._delete_reactions,
            ("DELETE", reaction): self._delete_reactions,
            ("DELETE", message + "/reactions"): self._delete_reactions,
            ("PUT", "/channels/{channel_id}/messages/pins/{message_id}"): self._pin,
            ("DELETE", "/channels/{channel_id}/messages/pins/{message_id}"): self._pin,
            ("PUT", "/channels/{channel_id}/pins/{message_id}"): self._pin,
            ("DELETE", "/channels/{channel_id}/pins/{message_id}"): self._pin,
            ("POST", "/channels/{channel_id}/threads"): self._create_thread,
            ("POST", message + "/threads"): self._create_thread,
            ("PUT", "/channels/{channel_id}/thread-members/@me"): self._thread_member,
            ("DELETE", "/channels/{channel_id}/thread-members/@me"): self._thread_member,
            ("PUT", "/channels/{channel_id}/thread-members/{user_id}"): self._thread_member,
            ("DELETE", "/channels/{channel_id}/thread-members/{user_id}"): self._thread_member,
            ("POST", "/channels/{channel_id}/typing"): self._typing,
            ("GET", "/guilds/{guild_id}"): self._get_guild,
            ("GET", "/guilds/{guild_id}/channels"): self._get_guild_channels,
            ("GET", "/guilds/{guild_id}/roles"): self._get_roles,
            ("GET", "/guilds/{guild_id}/members/{user_id}"): self._get_member,
            ("GET", "/guilds/{guild_id}/threads/active"): self._get_active_threads,
        }

    # -- channels and messages

    async def _get_channel(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        self._require_bot_permissions(channel, doing="read the channel")
        return 200, self.world.channel_payload(channel)

    async def _patch_channel(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        body = call.body or {}
        self._require_bot_permissions(
            channel, self._channel_edit_permission(channel, body), doing="changed the channel"
        )
        for key in ("name", "topic", "nsfw", "archived", "locked", "rate_limit_per_user"):
            if key in body and body[key] is not None:
                setattr(channel, key, body[key])
        if body.get("auto_archive_duration"):
            channel.auto_archive_duration = int(body["auto_archive_duration"])
        payload = self.world.channel_payload(channel)
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        await self.gateway.dispatch(Dispatch(event, payload, intent=GUILDS))
        return 200, payload

    async def _list_messages(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        self._require_bot_permissions(channel, doing="read the history")
        if not self.world.channel_permissions(self.bot_user, channel) & READ_MESSAGE_HISTORY:
            return 200, []  # Discord returns no messages without Read Message History
        history = [m for m in self.messages_in(channel)]
        limit = int(call.query.get("limit", 50))
        if "before" in call.query:
            history = [m for m in history if m.id < int(call.query["before"])]
        if "after" in call.query:
            history = [m for m in history if m.id > int(call.query["after"])]
            return 200, [m.payload for m in reversed(history[:limit])]
        if "around" in call.query:
            around = int(call.query["around"])
            older = [m for m in history if m.id <= around][-((limit + 1) // 2) :]
            newer = [m for m in history if m.id > around][: limit // 2]
            return 200, [m.payload for m in reversed(older + newer)]
        return 200, [m.payload for m in reversed(history[-limit:])]

    async def _create_message(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        body = call.body or {}
        self._check_message_rules(body, call.files, creating=True)
        self._require_bot_permissions(
            channel, self._message_permissions(channel, body, call), doing="posted a message"
        )
        self._require_open_thread(channel, doing="posted")
        reference = body.get("message_reference")
        if reference and reference.get("fail_if_not_exists", True):
            target = self.messages.get(int(reference.get("message_id") or 0))
            if target is None or target.deleted:
                raise ApiError(400, 50035, "Invalid Form Body")
        message = self._new_message(channel, self.bot_user, body, call.files)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return 200, message.payload

    async def _get_message(self, call: Call) -> Reply:
        message = self._existing_message(call)
        channel = self.world.channels_by_id[message.channel_id]
        self._require_bot_permissions(channel, READ_MESSAGE_HISTORY, doing="read a message")
        return 200, message.payload

    async def _edit_message(self, call: Call) -> Reply:
        message = self._existing_message(call)
        channel = self.world.channels_by_id[message.channel_id]
        self._require_bot_permissions(channel, doing="edited a message")
        self._require_open_thread(channel, doing="edited a message")
        if message.author_id != self.bot_user.id:
            raise ApiError(
                403,
                50005,
                "Cannot edit a message authored by another user",
                violation=f"edited message {message.id} written by someone else",
            )
        self._check_message_rules(call.body or {}, call.files, creating=False)
        self._apply_edit(message, call.body or {}, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return 200, message.payload

    async def _delete_message(self, call: Call) -> Reply:
        message = self._existing_message(call)
        channel = self.world.channels_by_id[message.channel_id]
        # Anyone may delete their own messages; someone else's needs Manage Messages.
        needed = 0 if message.author_id == self.bot_user.id else MANAGE_MESSAGES
        self._require_bot_permissions(channel, needed, doing="deleted a message")
        self._require_open_thread(channel, doing="deleted a message")
        await self._delete(message)
        return 204, None

    async def _put_reaction(self, call: Call) -> Reply:
        message = self._existing_message(call)
        channel = self.world.channels_by_id[message.channel_id]
        emoji = call.params["emoji_name"]
        # Adding to an emoji someone already used needs only Read Message History.
        first = not any(r.message_id == message.id and r.emoji == emoji for r in self.reactions)
        needed = READ_MESSAGE_HISTORY | (ADD_REACTIONS if first else 0)
        self._require_bot_permissions(channel, needed, doing="reacted to a message")
        self._require_open_thread(channel, doing="reacted")
        await self._react(self.bot_user, message, emoji)
        return 204, None

    async def _delete_reactions(self, call: Call) -> Reply:
        """Remove the bot's, one user's, one emoji's, or all reactions, by the route used."""
        message = self._existing_message(call)
        emoji = call.params.get("emoji_name")
        if call.operation.template.endswith("/@me"):
            user_id: int | None = self.bot_user.id
        else:
            user_id = int(call.params["user_id"]) if "user_id" in call.params else None
        channel = self.world.channels_by_id[message.channel_id]
        needed = 0 if user_id == self.bot_user.id else MANAGE_MESSAGES
        self._require_bot_permissions(channel, needed, doing="removed reactions")
        removed = [
            r
            for r in self.reactions
            if r.message_id == message.id
            and (emoji is None or r.emoji == emoji)
            and (user_id is None or r.user_id == user_id)
        ]
        for reaction in removed:
            self.reactions.remove(reaction)
        self._refresh_reactions(message)
        intent = self._reaction_intent(message)
        if user_id is not None:
            for reaction in removed:
                user = self._user(reaction.user_id)
                data = self._reaction_event(user, message, reaction.emoji)
                await self.gateway.dispatch(
                    Dispatch("MESSAGE_REACTION_REMOVE", data, intent=intent)
                )
        elif removed:
            data = {
                "channel_id": str(message.channel_id),
                "message_id": str(message.id),
                "guild_id": str(self.world.guild_id),
            }
            event = "MESSAGE_REACTION_REMOVE_ALL"
            if emoji is not None:
                event = "MESSAGE_REACTION_REMOVE_EMOJI"
                data["emoji"] = emoji_object(emoji)
            await self.gateway.dispatch(Dispatch(event, data, intent=intent))
        self.notify()
        return 204, None

    async def _pin(self, call: Call) -> Reply:
        message = self._existing_message(call)
        channel = self.world.channels_by_id[message.channel_id]
        has = self.world.channel_permissions(self.bot_user, channel)
        # Pin Messages split from Manage Messages; Discord still accepts either.
        needed = 0 if has & (PIN_MESSAGES | MANAGE_MESSAGES) else PIN_MESSAGES
        self._require_bot_permissions(channel, needed, doing="pinned a message")
        message.payload["pinned"] = call.method == "PUT"
        return 204, None

    async def _create_thread(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        if channel.type not in (0, 5):
            raise ApiError(
                400,
                50024,
                "Cannot execute action on this channel type",
                violation=f"thread requested in channel {channel.id} of type {channel.type}",
            )
        body = call.body or {}
        private = "message_id" not in call.params and int(body.get("type") or 12) == 12
        needed = CREATE_PRIVATE_THREADS if private else CREATE_PUBLIC_THREADS
        self._require_bot_permissions(channel, needed, doing="opened a thread")
        source = None
        if "message_id" in call.params:
            source = self._existing_message(call)
            if source.payload.get("thread"):
                raise ApiError(
                    400,
                    160004,
                    "A thread has already been created for this message",
                    violation=f"second thread started from message {source.id}",
                )
            kind = 11
        else:
            kind = int(body.get("type") or 12)
        duration = int(body.get("auto_archive_duration") or 4320)
        thread = await self._open_thread(
            channel, self.bot_user, str(body["name"]), kind, source, duration
        )
        return 201, self.world.channel_payload(thread)

    async def _thread_member(self, call: Call) -> Reply:
        thread = self._existing_channel(call)
        if not thread.is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        self._require_bot_permissions(thread, doing="changed who is in a thread")
        raw_user = call.params.get("user_id")
        user_id = self.bot_user.id if raw_user is None else int(raw_user)
        members = self.thread_members.setdefault(thread.id, set())
        if call.method == "PUT":
            members.add(user_id)
        else:
            members.discard(user_id)
        return 204, None

    async def _typing(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        self._require_bot_permissions(
            channel, self._send_permission(channel), doing="started typing"
        )
        self.typing.append((channel.id, time.monotonic()))
        return 204, None

    def _message_permissions(
        self, channel: DoubleChannel, body: Mapping[str, Any], call: Call
    ) -> int:
        """Return what posting this message needs: to send, and to embed, attach or reply."""
        needed = self._send_permission(channel)
        if body.get("embeds"):
            needed |= EMBED_LINKS
        if call.files:
            needed |= ATTACH_FILES
        if body.get("message_reference"):
            needed |= READ_MESSAGE_HISTORY
        return needed

    def _channel_edit_permission(self, channel: DoubleChannel, body: Mapping[str, Any]) -> int:
        """Return what a channel edit needs: unarchiving an open thread only needs to post."""
        if not channel.is_thread:
            return MANAGE_CHANNELS
        if set(body) <= {"archived"} and body.get("archived") is False and not channel.locked:
            return SEND_MESSAGES_IN_THREADS
        return MANAGE_THREADS

    # -- guild

    async def _get_guild(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        payload = self.world.guild_payload()
        if call.flag("with_counts"):
            payload.update(
                approximate_member_count=len(self.world.members),
                approximate_presence_count=0,
            )
        return 200, payload

    async def _get_guild_channels(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        channels = [c for c in self.world.channels_by_id.values() if c.guild_id and not c.is_thread]
        return 200, [self.world.channel_payload(c) for c in channels]

    async def _get_roles(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        return 200, [r.payload() for r in self.world.roles.values()]

    async def _get_member(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        user = self.world.user(int(call.params["user_id"]))
        if user is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, user.member_payload()

    async def _get_active_threads(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        threads = [t for t in self.threads if not t.archived]
        return 200, {"threads": [self.world.channel_payload(t) for t in threads], "members": []}
