"""How the double builds, edits, deletes and announces messages, reactions and threads."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .bookkeeping import Bookkeeping
from .gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILDS,
    Dispatch,
)
from .interactions import attachment_payload
from .messages import (
    emoji_object,
    is_empty_message,
    message_rule_problems,
    normalise_embed,
    notified,
    number_components,
    strip_content,
)
from .models import (
    EPHEMERAL,
    LOADING,
    DoubleChannel,
    DoubleUser,
    InteractionRecord,
    Reaction,
    StoredMessage,
    UploadedFile,
    iso,
)
from .rest import ApiError
from .world import (
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    VIEW_CHANNEL,
    permission_names,
)

HAS_THREAD = 1 << 5


class MessageModel(Bookkeeping):
    """Messages as Discord stores them, shared by REST handlers and user actions."""

    def _check_message_rules(
        self, body: Mapping[str, Any], files: list[UploadedFile], *, creating: bool
    ) -> None:
        """Apply Discord's documented message rules that the spec cannot express."""
        if creating and is_empty_message(body, files):
            raise ApiError(400, 50006, "Cannot send an empty message", violation="empty message")
        problems = message_rule_problems(body, content_limit=self.message_content_limit)
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))

    def _bot_sees(self, channel: DoubleChannel) -> bool:
        """Tell whether Discord lets the bot see a channel (and hear its events)."""
        if channel.guild_id is None:
            return True
        if not self.world.bot_joined:
            return False
        return bool(self.world.channel_permissions(self.bot_user, channel) & VIEW_CHANNEL)

    def _require_bot_permissions(
        self, channel: DoubleChannel, needed: int = 0, *, doing: str
    ) -> None:
        """Answer as Discord does when the bot lacks a permission in the channel.

        Without View Channel nothing in the channel exists for the bot (403, 50001
        Missing Access); without another needed permission, 403 50013 Missing Permissions.
        """
        if channel.guild_id is None:
            return
        if not self.world.bot_joined:
            raise ApiError(
                403,
                50001,
                "Missing Access",
                violation=f"{doing} in channel {channel.id} after the bot was removed from "
                "the server (403 Missing Access)",
            )
        has = self.world.channel_permissions(self.bot_user, channel)
        if not has & VIEW_CHANNEL:
            raise ApiError(
                403,
                50001,
                "Missing Access",
                violation=f"{doing} in channel {channel.id}, which the bot cannot view "
                "(403 Missing Access)",
            )
        missing = needed & ~has
        if missing:
            names = ", ".join(permission_names(missing))
            raise ApiError(
                403,
                50013,
                "Missing Permissions",
                violation=f"{doing} in channel {channel.id} without {names} "
                "(403 Missing Permissions)",
            )

    def _send_permission(self, channel: DoubleChannel) -> int:
        """Return the permission that posting in a channel needs (threads have their own)."""
        return SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES

    def _require_open_thread(self, channel: DoubleChannel, *, doing: str) -> None:
        """Refuse changes inside an archived or locked thread, as Discord does (50083)."""
        if channel.is_thread and (channel.archived or channel.locked):
            state = "locked" if channel.locked else "archived"
            raise ApiError(
                400,
                50083,
                "Thread is archived",
                violation=f"{doing} in {state} thread {channel.id}",
            )

    def _new_message(
        self,
        channel: DoubleChannel,
        author: DoubleUser,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        kind: int | None = None,
        extra: Mapping[str, Any] | None = None,
        interaction_id: int | None = None,
    ) -> StoredMessage:
        message_id = self.ids.next()
        reference = body.get("message_reference")
        referenced = None
        if reference:
            referenced = self.messages.get(int(reference.get("message_id") or 0))
        flags = int(body.get("flags") or 0)
        payload: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "author": author.payload(),
            "content": body.get("content") or "",
            "timestamp": iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [normalise_embed(e) for e in body.get("embeds") or []],
            "pinned": False,
            "type": kind if kind is not None else (19 if referenced else 0),
            "flags": flags,
            "components": number_components(list(body.get("components") or [])),
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        if referenced is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(referenced.id),
                "channel_id": str(referenced.channel_id),
                **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
            }
            payload["referenced_message"] = referenced.payload
        if channel.is_thread:
            payload["position"] = channel.message_count
        payload.update(extra or {})
        message = StoredMessage(
            id=message_id,
            channel_id=channel.id,
            author_id=author.id,
            payload=payload,
            files=list(files),
            ephemeral=bool(flags & EPHEMERAL),
            interaction_id=interaction_id,
        )
        payload["attachments"] = [self._attachment(f) for f in files]
        self._refresh_mentions(message, body.get("allowed_mentions"), referenced)
        self.messages[message_id] = message
        if not message.ephemeral:
            channel.last_message_id = message_id
            if channel.is_thread:
                channel.message_count += 1
        return message

    def _interaction_metadata(self, record: InteractionRecord) -> dict[str, Any]:
        user = self._user(record.user_id)
        metadata: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "user": user.payload(),
            "authorizing_integration_owners": {"0": str(self.world.guild_id)},
        }
        if record.original is not None:
            metadata["original_response_message_id"] = str(record.original.id)
        if record.type == 2:
            metadata.update(name=str(record.payload["data"]["name"]), command_type=1)
        elif record.type == 3:
            metadata["interacted_message_id"] = str(record.payload["message"]["id"])
        elif record.type == 5 and record.triggered_by is not None:
            trigger = self.interactions[record.triggered_by]
            metadata["triggering_interaction_metadata"] = self._interaction_metadata(trigger)
        return metadata

    def _interaction_message(
        self, record: InteractionRecord, body: Mapping[str, Any], files: list[UploadedFile]
    ) -> StoredMessage:
        user = self._user(record.user_id)
        extra: dict[str, Any] = {
            "application_id": str(self.world.application_id),
            "webhook_id": str(self.world.application_id),
            "interaction_metadata": self._interaction_metadata(record),
        }
        if record.type == 2:
            extra["interaction"] = {
                "id": str(record.id),
                "type": 2,
                "name": str(record.payload["data"]["name"]),
                "user": user.payload(),
                "member": user.member_payload(with_user=False),
            }
        kind = 20 if record.type == 2 else 0
        channel = self.world.channels_by_id[record.channel_id]
        return self._new_message(
            channel, self.bot_user, body, files, kind=kind, extra=extra, interaction_id=record.id
        )

    def _apply_edit(
        self,
        message: StoredMessage,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        finish_loading: bool = False,
    ) -> None:
        payload = message.payload
        if "content" in body:
            payload["content"] = body["content"] or ""
        if "embeds" in body:
            payload["embeds"] = [normalise_embed(e) for e in body["embeds"] or []]
        if "components" in body:
            payload["components"] = number_components(list(body["components"] or []))
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS can change on edit; ephemerality is fixed at creation.
            payload["flags"] = (payload["flags"] & ~(1 << 2)) | (int(body["flags"]) & (1 << 2))
        if "attachments" in body and body["attachments"] is not None:
            keep = {str(a.get("id")) for a in body["attachments"]}
            message.files = [f for f in message.files if str(f.id) in keep]
        message.files.extend(files)
        payload["attachments"] = [self._attachment(f) for f in message.files]
        if finish_loading and payload["flags"] & LOADING:
            payload["flags"] &= ~LOADING
        else:
            payload["edited_timestamp"] = iso()
            message.edit_times.append(time.monotonic())
        self._refresh_mentions(message, body.get("allowed_mentions"))

    def _refresh_mentions(
        self,
        message: StoredMessage,
        allowed: Mapping[str, Any] | None,
        referenced: StoredMessage | None = None,
    ) -> None:
        replied_author = None if referenced is None else self.world.user(referenced.author_id)
        users, roles, everyone = notified(self.world, message.content, allowed, replied_author)
        message.payload["mentions"] = [
            {**u.payload(), "member": u.member_payload(with_user=False)} for u in users
        ]
        message.payload["mention_roles"] = roles
        message.payload["mention_everyone"] = everyone

    def _attachment(self, upload: UploadedFile) -> dict[str, Any]:
        url = f"{self.base_url}/attachments/{upload.id}/{upload.filename}"
        return attachment_payload(upload, url=url)

    def _store_file(
        self, filename: str, data: bytes, content_type: str | None, description: str | None
    ) -> UploadedFile:
        if content_type == "application/octet-stream":
            content_type = None  # Discord sniffs the type itself; discord.py always sends this
        upload = UploadedFile(self.ids.next(), filename, data, content_type, description)
        self._files[upload.id] = upload
        return upload

    def _host(self, filename: str, data: bytes) -> UploadedFile:
        return self._store_file(filename, data, None, None)

    def _host_attachment(self, filename: str, data: bytes) -> dict[str, Any]:
        return self._attachment(self._host(filename, data))

    async def _dispatch_message(self, event: str, message: StoredMessage) -> None:
        if message.ephemeral:
            return  # ephemeral messages never reach the bot over the gateway
        channel = self.world.channels_by_id[message.channel_id]
        if not self._bot_sees(channel):
            self.notify()
            return  # Discord sends no events of channels the bot cannot view
        data = dict(message.payload)
        author = self.world.user(message.author_id)
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            if author is not None and message.payload.get("webhook_id") is None:
                data["member"] = author.member_payload(with_user=False)
        exempt = (
            message.author_id == self.bot_user.id
            or channel.type == 1
            or self.bot_user.id in message.pinged_user_ids
        )
        intent = DIRECT_MESSAGES if channel.type == 1 else GUILD_MESSAGES
        strip = None if exempt else strip_content
        await self.gateway.dispatch(Dispatch(event, data, intent=intent, strip_content=strip))
        self.notify()

    async def _delete(self, message: StoredMessage) -> None:
        message.deleted = True
        channel = self.world.channels_by_id[message.channel_id]
        if not message.ephemeral and self._bot_sees(channel):
            data: dict[str, Any] = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                data["guild_id"] = str(channel.guild_id)
            intent = DIRECT_MESSAGES if channel.type == 1 else GUILD_MESSAGES
            await self.gateway.dispatch(Dispatch("MESSAGE_DELETE", data, intent=intent))
        self.notify()

    async def _react(self, user: DoubleUser, message: StoredMessage, emoji: str) -> Reaction:
        reaction = Reaction(message.id, message.channel_id, user.id, emoji)
        if reaction not in self.reactions:
            self.reactions.append(reaction)
            self._refresh_reactions(message)
            if self._bot_sees(self.world.channels_by_id[message.channel_id]):
                data = self._reaction_event(user, message, emoji)
                await self.gateway.dispatch(
                    Dispatch("MESSAGE_REACTION_ADD", data, intent=self._reaction_intent(message))
                )
        self.notify()
        return reaction

    def _reaction_event(
        self, user: DoubleUser, message: StoredMessage, emoji: str
    ) -> dict[str, Any]:
        channel = self.world.channels_by_id[message.channel_id]
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(channel.id),
            "message_id": str(message.id),
            "message_author_id": str(message.author_id),
            "emoji": emoji_object(emoji),
            "burst": False,
            "type": 0,
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            data["member"] = user.member_payload()
        return data

    def _reaction_intent(self, message: StoredMessage) -> int:
        channel = self.world.channels_by_id[message.channel_id]
        return DIRECT_MESSAGE_REACTIONS if channel.type == 1 else GUILD_MESSAGE_REACTIONS

    def _refresh_reactions(self, message: StoredMessage) -> None:
        counts: dict[str, list[Reaction]] = {}
        for reaction in self.reactions:
            if reaction.message_id == message.id:
                counts.setdefault(reaction.emoji, []).append(reaction)
        message.payload["reactions"] = [
            {
                "count": len(rs),
                "count_details": {"burst": 0, "normal": len(rs)},
                "me": any(r.user_id == self.bot_user.id for r in rs),
                "me_burst": False,
                "burst_colors": [],
                "emoji": emoji_object(emoji),
            }
            for emoji, rs in counts.items()
        ]
        if not message.payload["reactions"]:
            del message.payload["reactions"]

    async def _open_thread(
        self,
        parent: DoubleChannel,
        owner: DoubleUser,
        name: str,
        kind: int,
        source: StoredMessage | None,
        duration: int,
    ) -> DoubleChannel:
        # A thread started from a message takes that message's id, as on Discord.
        thread_id = source.id if source is not None else self.ids.next()
        thread = self.world.add_channel(
            DoubleChannel(
                thread_id,
                name,
                kind,
                parent.guild_id,
                parent_id=parent.id,
                owner_id=owner.id,
                auto_archive_duration=duration,
            )
        )
        self.thread_members[thread.id] = {owner.id}
        payload = self.world.channel_payload(thread)
        payload["newly_created"] = True
        if owner.id == self.bot_user.id:
            payload["member"] = {
                "id": str(thread.id),
                "user_id": str(owner.id),
                "join_timestamp": iso(),
                "flags": 1,
            }
        if source is not None:
            source.payload["thread"] = self.world.channel_payload(thread)
            source.payload["flags"] = source.flags | HAS_THREAD
        if self._bot_sees(thread):
            await self.gateway.dispatch(Dispatch("THREAD_CREATE", payload, intent=GUILDS))
        self.notify()
        return thread
