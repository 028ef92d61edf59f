"""The state every part of the double shares, with shortcuts and lookups over it."""

from __future__ import annotations

import asyncio
from typing import Any

from .gateway import GatewayHub
from .models import (
    DoubleChannel,
    DoubleUser,
    InteractionRecord,
    RateLimitRule,
    Reaction,
    RequestRecord,
    Snowflakes,
    StoredMessage,
    UploadedFile,
)
from .rest import ApiError, Call
from .spec import ApiSpec
from .world import GuildWorld


class DoubleState:
    """The attributes DiscordDouble sets up, and lookups every part of it needs."""

    # DiscordDouble.__init__ sets these; they are declared here so that each part of the
    # double can be read (and type-checked) without the class that composes them.
    spec: ApiSpec
    upload_limit: int
    interaction_ack_timeout: float
    interaction_token_lifetime: float
    recommended_shards: int
    message_content_limit: int
    validate_responses: bool
    ids: Snowflakes
    world: GuildWorld
    token: str
    violations: list[str]
    requests: list[RequestRecord]
    messages: dict[int, StoredMessage]
    interactions: dict[int, InteractionRecord]
    synced_commands: dict[int | None, list[dict[str, Any]]]
    reactions: list[Reaction]
    typing: list[tuple[int, float]]
    thread_members: dict[int, set[int]]
    gateway: GatewayHub
    port: int
    _files: dict[int, UploadedFile]
    _rate_limits: list[RateLimitRule]
    _command_ids: dict[tuple[int | None, str, int], int]
    _changed: asyncio.Event

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """Return the http origin the double listens on."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        """Return the gateway websocket URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------ world shortcuts

    @property
    def guild(self) -> GuildWorld:
        """Return the guild (id, roles, channels, members)."""
        return self.world

    @property
    def channels(self) -> dict[str, DoubleChannel]:
        """Return the named text channels: general, story, mature-stories (age-restricted)."""
        return self.world.channels

    @property
    def users(self) -> dict[str, DoubleUser]:
        """Return the named members: alice, bob, cara, dan, moderator, owner."""
        return self.world.users

    @property
    def players(self) -> list[DoubleUser]:
        """Return the members without special permissions."""
        return [self.users[name] for name in ("alice", "bob", "cara", "dan")]

    @property
    def moderator(self) -> DoubleUser:
        """Return the member whose role grants Manage Server."""
        return self.users["moderator"]

    @property
    def bot_user(self) -> DoubleUser:
        """Return the bot's own account."""
        return self.world.bot

    @property
    def threads(self) -> list[DoubleChannel]:
        """Return every thread, in creation order."""
        return [c for c in self.world.channels_by_id.values() if c.is_thread]

    # ---------------------------------------------------------------- lookups

    def _user(self, ref: DoubleUser | str | int) -> DoubleUser:
        if isinstance(ref, DoubleUser):
            return ref
        if isinstance(ref, str):
            return self.users[ref]
        user = self.world.user(ref)
        if user is None:
            raise KeyError(f"no member {ref}")
        return user

    def _channel(self, ref: int | str | DoubleChannel) -> DoubleChannel:
        if isinstance(ref, DoubleChannel):
            return ref
        if isinstance(ref, str):
            return self.channels[ref]
        return self.world.channels_by_id[ref]

    def _message(self, ref: StoredMessage | int) -> StoredMessage:
        return ref if isinstance(ref, StoredMessage) else self.messages[ref]

    def _existing_channel(self, call: Call) -> DoubleChannel:
        channel = self.world.channels_by_id.get(int(call.params["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _existing_message(self, call: Call) -> StoredMessage:
        channel = self._existing_channel(call)
        message = self.messages.get(int(call.params["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise ApiError(404, 10008, "Unknown Message")
        if message.ephemeral:
            raise ApiError(
                404,
                10008,
                "Unknown Message",
                violation="ephemeral messages can only be reached through the interaction webhook",
            )
        return message

    def _guild(self, raw: str) -> None:
        if int(raw) not in self.world.guilds:
            raise ApiError(404, 10004, "Unknown Guild")
        if not self.world.bot_joined:
            raise ApiError(
                403,
                50001,
                "Missing Access",
                violation=f"read guild {raw} after the bot was removed from it",
            )
