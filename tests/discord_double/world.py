"""The guild the double serves: its roles, members, channels, and their API payloads."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .models import DoubleChannel, DoubleUser, Overwrite, Snowflakes

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38
MODERATE_MEMBERS = 1 << 40
PIN_MESSAGES = 1 << 51
ALL_PERMISSIONS = (1 << 52) - 1

EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
MODERATOR_PERMISSIONS = MANAGE_GUILD | MANAGE_MESSAGES | MANAGE_THREADS | KICK_MEMBERS
# The bot's managed role holds exactly what the README's invite link asks for
# (permissions=309237763136), nothing more: whatever else the bot did would fail on Discord.
INVITE_PERMISSIONS = (
    ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = INVITE_PERMISSIONS

ROLE_OVERWRITE = 0
MEMBER_OVERWRITE = 1
# Names of the permissions the double checks, for violation messages.
PERMISSION_NAMES = {
    VIEW_CHANNEL: "VIEW_CHANNEL",
    SEND_MESSAGES: "SEND_MESSAGES",
    SEND_MESSAGES_IN_THREADS: "SEND_MESSAGES_IN_THREADS",
    EMBED_LINKS: "EMBED_LINKS",
    ATTACH_FILES: "ATTACH_FILES",
    READ_MESSAGE_HISTORY: "READ_MESSAGE_HISTORY",
    ADD_REACTIONS: "ADD_REACTIONS",
    MANAGE_MESSAGES: "MANAGE_MESSAGES",
    MANAGE_THREADS: "MANAGE_THREADS",
    MANAGE_CHANNELS: "MANAGE_CHANNELS",
    MANAGE_GUILD: "MANAGE_GUILD",
    ADMINISTRATOR: "ADMINISTRATOR",
    CREATE_PUBLIC_THREADS: "CREATE_PUBLIC_THREADS",
    CREATE_PRIVATE_THREADS: "CREATE_PRIVATE_THREADS",
    PIN_MESSAGES: "PIN_MESSAGES",
}


def permission_names(bits: int) -> list[str]:
    """Name the permission bits the double knows by name (others by number)."""
    names = []
    for bit in range(bits.bit_length()):
        if bits >> bit & 1:
            names.append(PERMISSION_NAMES.get(1 << bit, f"1<<{bit}"))
    return names


@dataclass
class Role:
    """A guild role."""

    id: int
    name: str
    permissions: int
    position: int
    managed: bool = False
    bot_id: int | None = None

    def payload(self) -> dict[str, Any]:
        """Return the role object as the API serialises it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass
class GuildWorld:
    """One guild with a bot, players, a moderator, and text channels (one age-restricted)."""

    ids: Snowflakes
    application_id: int = 0
    guild_id: int = 0
    guild_name: str = "Story Circle"
    bot: DoubleUser = field(init=False)
    owner: DoubleUser = field(init=False)
    users: dict[str, DoubleUser] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    channels: dict[str, DoubleChannel] = field(default_factory=dict)
    channels_by_id: dict[int, DoubleChannel] = field(default_factory=dict)
    # Members who left (or were kicked); Discord answers 10007 Unknown Member for them.
    former_members: list[DoubleUser] = field(default_factory=list)
    # False once the bot is removed from the server: it then sees and reaches nothing there.
    bot_joined: bool = True
    # Every server the bot is in, this one first, by id; add more with add_guild.
    guilds: dict[int, GuildWorld] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.application_id = self.ids.next()
        self.guild_id = self.ids.next()
        self.roles = {
            "everyone": Role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0),
            "moderator": Role(self.ids.next(), "Moderator", MODERATOR_PERMISSIONS, 2),
            "bot": Role(
                self.ids.next(),
                "Taleweaver",
                BOT_PERMISSIONS,
                1,
                managed=True,
                bot_id=self.application_id,
            ),
        }
        # Discord gives a bot user the same id as its application.
        self.bot = DoubleUser(
            self.application_id, "Taleweaver", None, [self.roles["bot"].id], bot=True
        )
        self.owner = DoubleUser(self.ids.next(), "olive", "Olive")
        moderator = DoubleUser(self.ids.next(), "morgan", "Morgan", [self.roles["moderator"].id])
        self.users = {
            "alice": DoubleUser(self.ids.next(), "alice", "Alice"),
            "bob": DoubleUser(self.ids.next(), "bob", "Bob"),
            "cara": DoubleUser(self.ids.next(), "cara", "Cara", nick="Cara the Bard"),
            "dan": DoubleUser(self.ids.next(), "dan", "Dan"),
            "moderator": moderator,
            "owner": self.owner,
        }
        for position, (name, nsfw, topic) in enumerate(
            [
                ("general", False, "Chat"),
                ("story", False, "Round-robin stories"),
                ("mature-stories", True, "Age-restricted stories"),
            ]
        ):
            self.add_channel(
                DoubleChannel(
                    self.ids.next(),
                    name,
                    0,
                    self.guild_id,
                    nsfw=nsfw,
                    position=position,
                    topic=topic,
                ),
                key=name,
            )
        self.guilds[self.guild_id] = self

    def add_guild(self, name: str, *, guild_id: int | None = None) -> GuildWorld:
        """Add another server the bot is in: the same members, its own roles and channels.

        Channels of every server are found by id through any of them. The bot and the
        moderator hold this server's roles of theirs too; a role id of another server
        counts for nothing here, as on Discord.
        """
        other = copy.copy(self)
        other.guild_id = guild_id if guild_id is not None else self.ids.next()
        other.guild_name = name
        other.roles = {
            "everyone": Role(other.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0),
            "moderator": Role(self.ids.next(), "Moderator", MODERATOR_PERMISSIONS, 2),
            "bot": Role(
                self.ids.next(),
                "Taleweaver",
                BOT_PERMISSIONS,
                1,
                managed=True,
                bot_id=self.application_id,
            ),
        }
        self.bot.role_ids.append(other.roles["bot"].id)
        self.users["moderator"].role_ids.append(other.roles["moderator"].id)
        other.channels = {}
        self.guilds[other.guild_id] = other
        for position, channel_name in enumerate(("general", "story")):
            other.add_channel(
                DoubleChannel(self.ids.next(), channel_name, 0, other.guild_id, position=position),
                key=channel_name,
            )
        return other

    def guild_of(self, channel: DoubleChannel) -> GuildWorld:
        """Return the server a channel belongs to (this one for DM channels)."""
        if channel.guild_id is None:
            return self
        return self.guilds.get(channel.guild_id, self)

    @property
    def id(self) -> int:
        """Return the guild id."""
        return self.guild_id

    def add_channel(self, channel: DoubleChannel, *, key: str | None = None) -> DoubleChannel:
        """Register a channel, by name when a key is given."""
        self.channels_by_id[channel.id] = channel
        if key is not None:
            self.channels[key] = channel
        return channel

    def remove_channel(self, channel: DoubleChannel) -> list[DoubleChannel]:
        """Forget a channel and, when it is not a thread, its threads; return what went."""
        gone = [channel]
        if not channel.is_thread:
            gone += [c for c in self.channels_by_id.values() if c.parent_id == channel.id]
        for removed in gone:
            self.channels_by_id.pop(removed.id, None)
        for key in [k for k, c in self.channels.items() if c in gone]:
            del self.channels[key]
        return gone

    def remove_member(self, user: DoubleUser) -> None:
        """Take a member off the server (the bot itself leaves with remove_bot)."""
        for key in [k for k, u in self.users.items() if u.id == user.id]:
            del self.users[key]
        self.former_members.append(user)

    @property
    def members(self) -> list[DoubleUser]:
        """Return every member, the bot included."""
        return [self.bot, *self.users.values()]

    def user(self, user_id: int) -> DoubleUser | None:
        """Find a member by id."""
        return next((u for u in self.members if u.id == user_id), None)

    def role(self, ref: Role | str | int) -> Role:
        """Return a role by key ("everyone", "moderator", "bot"), id, or itself."""
        if isinstance(ref, Role):
            return ref
        if isinstance(ref, str):
            return self.roles[ref]
        found = next((r for r in self.roles.values() if r.id == ref), None)
        if found is None:
            raise KeyError(f"no role {ref}")
        return found

    def permissions(self, user: DoubleUser) -> int:
        """Compute a member's guild permissions from @everyone and their roles."""
        if user.id == self.owner.id:
            return ALL_PERMISSIONS
        value = self.roles["everyone"].permissions
        for role in self.roles.values():
            if role.id in user.role_ids:
                value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def channel_permissions(self, user: DoubleUser, channel: DoubleChannel) -> int:
        """Compute a member's permissions in a channel as Discord does.

        The guild permissions (owner and Administrator have all), then the channel's
        @everyone overwrite, the overwrites of the member's roles together, and the
        member's own overwrite, each denying before allowing. A thread has the
        permissions of its parent channel.
        """
        home = self.guild_of(channel)
        if home is not self:
            return home.channel_permissions(user, channel)
        base = self.permissions(user)
        if base & ADMINISTRATOR or user.id == self.owner.id:
            return ALL_PERMISSIONS
        if channel.guild_id is None:
            return base
        source = channel
        if channel.is_thread and channel.parent_id is not None:
            source = self.channels_by_id.get(channel.parent_id, channel)
        value = base
        everyone = next(
            (o for o in source.overwrites if o.type == ROLE_OVERWRITE and o.id == self.guild_id),
            None,
        )
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for overwrite in source.overwrites:
            if overwrite.type == ROLE_OVERWRITE and overwrite.id in user.role_ids:
                allow |= overwrite.allow
                deny |= overwrite.deny
        value = (value & ~deny) | allow
        for overwrite in source.overwrites:
            if overwrite.type == MEMBER_OVERWRITE and overwrite.id == user.id:
                value = (value & ~overwrite.deny) | overwrite.allow
        return value

    def set_overwrite(
        self,
        channel: DoubleChannel,
        target: DoubleUser | Role,
        *,
        allow: int = 0,
        deny: int = 0,
    ) -> None:
        """Replace the channel's overwrite for a role or member (none left when both are 0)."""
        if channel.is_thread:
            raise ValueError("threads have no overwrites of their own; change the parent's")
        kind = ROLE_OVERWRITE if isinstance(target, Role) else MEMBER_OVERWRITE
        channel.overwrites = [
            o for o in channel.overwrites if not (o.type == kind and o.id == target.id)
        ]
        if allow or deny:
            channel.overwrites.append(Overwrite(target.id, kind, allow, deny))

    def channel_payload(self, channel: DoubleChannel) -> dict[str, Any]:
        """Return a channel or thread object as the API serialises it."""
        if channel.type == 1:
            recipients = [self.user(uid) for uid in channel.recipient_ids]
            return {
                "id": str(channel.id),
                "type": 1,
                "last_message_id": _opt_id(channel.last_message_id),
                "flags": 0,
                "recipients": [u.payload() for u in recipients if u is not None],
            }
        data: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "last_message_id": _opt_id(channel.last_message_id),
            "rate_limit_per_user": channel.rate_limit_per_user,
            "flags": 0,
        }
        if channel.is_thread:
            data.update(
                parent_id=str(channel.parent_id),
                owner_id=str(channel.owner_id),
                message_count=channel.message_count,
                member_count=1,
                total_message_sent=channel.message_count,
                applied_tags=[],
                thread_metadata={
                    "archived": channel.archived,
                    "auto_archive_duration": channel.auto_archive_duration,
                    "archive_timestamp": channel.created_at,
                    "locked": channel.locked,
                    "create_timestamp": channel.created_at,
                    **({"invitable": True} if channel.type == 12 else {}),
                },
            )
            return data
        data.update(
            nsfw=channel.nsfw,
            position=channel.position,
            permission_overwrites=[o.payload() for o in channel.overwrites],
            topic=channel.topic,
            parent_id=_opt_id(channel.parent_id),
            default_auto_archive_duration=1440,
            default_thread_rate_limit_per_user=0,
            icon_emoji=None,
            theme_color=None,
        )
        return data

    def guild_payload(self) -> dict[str, Any]:
        """Return the guild object as GET /guilds/{id} serialises it."""
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "home_header": None,
            "owner_id": str(self.owner.id),
            "application_id": None,
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": str(self.channels["general"].id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "mfa_level": 0,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "vanity_url_code": None,
            "max_members": 25_000_000,
            "max_presences": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "features": [],
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "incidents_data": None,
        }

    def guild_create_payload(self, *, all_members: bool) -> dict[str, Any]:
        """Return the GUILD_CREATE event data: the guild with members, channels, threads."""
        data = self.guild_payload()
        own = [c for c in self.channels_by_id.values() if c.guild_id == self.guild_id]
        channels = [c for c in own if not c.is_thread]
        threads = [c for c in own if c.is_thread and not c.archived]
        data.update(
            joined_at=self.bot.joined_at,
            large=False,
            unavailable=False,
            lazy=True,
            member_count=len(self.members),
            voice_states=[],
            # Without the GUILD_MEMBERS intent Discord sends only the bot's own member.
            members=[m.member_payload() for m in (self.members if all_members else [self.bot])],
            channels=[self.channel_payload(c) for c in channels],
            threads=[self.channel_payload(t) for t in threads],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
            activity_instances=[],
        )
        return data

    def interaction_channel_payload(
        self, channel: DoubleChannel, user: DoubleUser
    ) -> dict[str, Any]:
        """Return the channel as an interaction carries it, with the user's permissions."""
        data = self.channel_payload(channel)
        if channel.type != 1:
            data["permissions"] = str(self.channel_permissions(user, channel))
        return data


def _opt_id(value: int | None) -> str | None:
    return None if value is None else str(value)
