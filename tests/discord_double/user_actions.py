"""What members (and the gateway) do to the bot: messages, reactions, commands, clicks."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .gateway import GUILDS, Dispatch
from .interactions import (
    CommandDataBuilder,
    InvocationError,
    component_data,
    find_command,
    modal_submit_data,
)
from .message_model import MessageModel
from .models import DoubleChannel, DoubleUser, InteractionRecord, Reaction, StoredMessage, iso
from .world import Role, permission_names


class UserActions(MessageModel):
    """Act as guild members and as Discord's gateway towards the bot."""

    async def send_message(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        content: str = "",
        *,
        files: Sequence[tuple[str, bytes]] = (),
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        """Post a message as a member and dispatch MESSAGE_CREATE."""
        author = self._user(user)
        target = self._channel(channel)
        uploads = [self._host(name, data) for name, data in files]
        body: dict[str, Any] = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to.id)}
        message = self._new_message(target, author, body, uploads)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: StoredMessage | int, content: str) -> StoredMessage:
        """Edit a member's message and dispatch MESSAGE_UPDATE."""
        stored = self._message(message)
        stored.payload["content"] = content
        self._refresh_mentions(stored, None)
        stored.payload["edited_timestamp"] = iso()
        stored.edit_times.append(time.monotonic())
        await self._dispatch_message("MESSAGE_UPDATE", stored)
        return stored

    async def delete_message(self, message: StoredMessage | int) -> None:
        """Delete a message and dispatch MESSAGE_DELETE."""
        await self._delete(self._message(message))

    async def add_reaction(
        self, user: DoubleUser | str, message: StoredMessage | int, emoji: str
    ) -> Reaction:
        """React to a message as a member and dispatch MESSAGE_REACTION_ADD."""
        return await self._react(self._user(user), self._message(message), emoji)

    async def create_thread(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        name: str,
        *,
        message: StoredMessage | None = None,
        private: bool = False,
    ) -> DoubleChannel:
        """Open a thread as a member and dispatch THREAD_CREATE."""
        owner = self._user(user)
        kind = 12 if private else 11
        return await self._open_thread(self._channel(channel), owner, name, kind, message, 1440)

    async def update_channel(
        self, channel: int | str | DoubleChannel, **changes: Any
    ) -> DoubleChannel:
        """Change channel fields (name, topic, nsfw, archived, locked) and dispatch the update."""
        target = self._channel(channel)
        for key, value in changes.items():
            if not hasattr(target, key):
                raise AttributeError(f"channels have no field {key!r}")
            setattr(target, key, value)
        event = "THREAD_UPDATE" if target.is_thread else "CHANNEL_UPDATE"
        await self.gateway.dispatch(
            Dispatch(event, self.world.channel_payload(target), intent=GUILDS)
        )
        return target

    async def set_overwrite(
        self,
        channel: int | str | DoubleChannel,
        target: DoubleUser | Role | str,
        *,
        allow: int = 0,
        deny: int = 0,
    ) -> DoubleChannel:
        """Give a role or member its own permissions in a channel, as a moderator would.

        TARGET is a member, a role, or a role key ("everyone", "moderator", "bot");
        the bot hears of it through CHANNEL_UPDATE.
        """
        where = self._channel(channel)
        if isinstance(target, str):
            who: DoubleUser | Role = self.world.role(target)
        else:
            who = target
        self.world.set_overwrite(where, who, allow=allow, deny=deny)
        await self.gateway.dispatch(
            Dispatch("CHANNEL_UPDATE", self.world.channel_payload(where), intent=GUILDS)
        )
        self.notify()
        return where

    async def set_role_permissions(self, role: Role | str, permissions: int) -> Role:
        """Change a role's server-wide permissions and dispatch GUILD_ROLE_UPDATE."""
        changed = self.world.role(role)
        changed.permissions = permissions
        data = {"guild_id": str(self.world.guild_id), "role": changed.payload()}
        await self.gateway.dispatch(Dispatch("GUILD_ROLE_UPDATE", data, intent=GUILDS))
        self.notify()
        return changed

    async def invoke(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        command: str,
        path: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
    ) -> InteractionRecord:
        """Run a slash command as a member, built from the definitions the bot synced."""
        definition = find_command(self.synced_commands, self.world.guild_id, command)
        member, where = self._user(user), self._channel(channel)
        self._require_command_visible(definition, member, where)
        builder = CommandDataBuilder(self.world, self._host_attachment)
        data = builder.build(definition, path, options or {})
        return await self._interact(2, member, where, data)

    def _require_command_visible(
        self, definition: Mapping[str, Any], member: DoubleUser, channel: DoubleChannel
    ) -> None:
        """Refuse a command Discord's client would not offer this member here."""
        raw = definition.get("default_member_permissions")
        if raw is None:
            return
        needed = int(raw)
        has = self.world.channel_permissions(member, channel)
        if needed & ~has:
            missing = ", ".join(permission_names(needed & ~has)) or str(raw)
            raise InvocationError(
                f"/{definition['name']} needs {missing} by default; Discord does not show it "
                f"to {member.username}"
            )

    async def autocomplete(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        command: str,
        path: Sequence[str],
        options: Mapping[str, Any],
        focused: str,
    ) -> InteractionRecord:
        """Type into an autocompleted option; the record's autocomplete_choices hold the answer."""
        definition = find_command(self.synced_commands, self.world.guild_id, command)
        builder = CommandDataBuilder(self.world, self._host_attachment)
        data = builder.build(definition, path, options, focused=focused)
        return await self._interact(4, self._user(user), self._channel(channel), data)

    async def click(
        self,
        user: DoubleUser | str,
        message: StoredMessage | int,
        custom_id: str,
        *,
        values: Sequence[str] | None = None,
    ) -> InteractionRecord:
        """Press a button (or choose select values) on a message."""
        stored = self._message(message)
        data = component_data(stored.components, custom_id, values)
        channel = self.world.channels_by_id[stored.channel_id]
        return await self._interact(3, self._user(user), channel, data, message=stored)

    async def submit_modal(
        self,
        user: DoubleUser | str,
        interaction: InteractionRecord,
        values: Mapping[str, Any],
    ) -> InteractionRecord:
        """Fill in and submit the modal the bot opened for an interaction."""
        data = modal_submit_data(interaction.modal, values)
        channel = self.world.channels_by_id[interaction.channel_id]
        source = self.messages.get(int(interaction.payload.get("message", {}).get("id", 0)))
        return await self._interact(
            5, self._user(user), channel, data, message=source, triggered_by=interaction
        )

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the gateway sockets from the server side; the client resumes."""
        await self.gateway.drop_connections(code)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; the client reconnects and resumes."""
        await self.gateway.send_op(7)

    async def invalidate_session(self) -> None:
        """Send op 9 (not resumable); the client identifies afresh."""
        await self.gateway.send_op(9, False)

    async def _interact(
        self,
        kind: int,
        user: DoubleUser,
        channel: DoubleChannel,
        data: dict[str, Any],
        *,
        message: StoredMessage | None = None,
        triggered_by: InteractionRecord | None = None,
    ) -> InteractionRecord:
        if channel.guild_id is None:
            raise InvocationError("the double only sends interactions from guild channels")
        if not self.world.bot_joined:
            raise InvocationError("the bot was removed from the server; it gets no interactions")
        interaction_id = self.ids.next()
        token = f"aW50ZXJhY3Rpb24{secrets.token_urlsafe(48)}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(channel.guild_id),
            "guild": {"id": str(channel.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": self.world.interaction_channel_payload(channel, user),
            "member": {
                **user.member_payload(),
                "permissions": str(self.world.channel_permissions(user, channel)),
            },
            "token": token,
            "version": 1,
            "app_permissions": str(self.world.channel_permissions(self.bot_user, channel)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(channel.guild_id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
        }
        if message is not None:
            payload["message"] = {**message.payload, "guild_id": str(channel.guild_id)}
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=kind,
            user_id=user.id,
            channel_id=channel.id,
            payload=payload,
            triggered_by=None if triggered_by is None else triggered_by.id,
        )
        self.interactions[interaction_id] = record
        await self.gateway.dispatch(Dispatch("INTERACTION_CREATE", payload))
        self.notify()
        return record
