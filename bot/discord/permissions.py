"""What the bot needs in a story's channel, and how to say what is missing.

Slash commands are answered through the interaction's webhook, which needs no channel
permission at all: a bot that may not post in a channel still answers `/story start`.
Everything else a story shows (narrator passages, turn pings, reminders, timeouts) is
posted into the channel, so the permissions are checked when a story starts, begins or
resumes, and a post Discord refuses later pauses the story (see narrator_messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from engine.errors import PermissionDenied


@dataclass(frozen=True)
class ChannelPermission:
    """One permission: its discord.py attribute and the name Discord's settings show."""

    attribute: str
    label: str

    def held_in(self, permissions: discord.Permissions) -> bool:
        """Tell whether PERMISSIONS include this one."""
        return bool(getattr(permissions, self.attribute))


VIEW_CHANNEL = ChannelPermission("view_channel", "View Channel")
SEND_MESSAGES = ChannelPermission("send_messages", "Send Messages")
SEND_IN_THREADS = ChannelPermission("send_messages_in_threads", "Send Messages in Threads")
EMBED_LINKS = ChannelPermission("embed_links", "Embed Links")
ATTACH_FILES = ChannelPermission("attach_files", "Attach Files")
READ_HISTORY = ChannelPermission("read_message_history", "Read Message History")
ADD_REACTIONS = ChannelPermission("add_reactions", "Add Reactions")
CREATE_PUBLIC_THREADS = ChannelPermission("create_public_threads", "Create Public Threads")

# Beside posting: status and lore cards, exports, replies to refused turns, reaction marks.
_ALWAYS = (EMBED_LINKS, ATTACH_FILES, READ_HISTORY, ADD_REACTIONS)


def story_permissions(
    *, in_thread: bool, opens_thread: bool = False
) -> tuple[ChannelPermission, ...]:
    """Return what a story needs where it is played.

    In a thread, posting is Send Messages in Threads (Send Messages does not apply);
    in a channel, it is Send Messages. A story that opens its own thread also needs
    Create Public Threads in the channel it is started from.
    """
    post = SEND_IN_THREADS if in_thread or opens_thread else SEND_MESSAGES
    needed = (VIEW_CHANNEL, post, *_ALWAYS)
    return (*needed, CREATE_PUBLIC_THREADS) if opens_thread else needed


def missing_permissions(
    permissions: discord.Permissions, needed: Sequence[ChannelPermission]
) -> list[ChannelPermission]:
    """Return the needed permissions that PERMISSIONS lack (Administrator lacks none)."""
    if permissions.administrator:
        return []
    return [p for p in needed if not p.held_in(permissions)]


def require_story_permissions(
    interaction: discord.Interaction[Any], *, opens_thread: bool = False
) -> None:
    """Refuse to start, begin or resume a story where the bot could not post it.

    Reads the permissions Discord sends with the interaction (its ``app_permissions``,
    the bot's own in this channel with every overwrite applied).
    """
    in_thread = isinstance(interaction.channel, discord.Thread)
    needed = story_permissions(in_thread=in_thread, opens_thread=opens_thread and not in_thread)
    missing = missing_permissions(interaction.app_permissions, needed)
    if missing:
        raise PermissionDenied(missing_message(missing, in_thread=in_thread))


def missing_message(missing: Sequence[ChannelPermission], *, in_thread: bool) -> str:
    """Return the refusal that names what is missing and who can fix it."""
    place = "thread (its parent channel's settings)" if in_thread else "channel"
    return (
        f"I can't play a story here: I am missing {_listing(missing)} in this {place}. "
        "Ask a moderator to allow these for my role in the channel's permissions, "
        "then try again."
    )


def describe_refused_post(channel: object, error: discord.Forbidden) -> str:
    """Return why Discord refused a post in CHANNEL, naming the missing permissions.

    The bot's cached permissions there (kept current by Discord's channel and role
    updates) name what is missing; when they show nothing, Discord's own error says it.
    """
    where = getattr(channel, "mention", "the story's channel")
    in_thread = isinstance(channel, discord.Thread)
    missing: list[ChannelPermission] = []
    guild = getattr(channel, "guild", None)
    me = getattr(guild, "me", None)
    permissions_for = getattr(channel, "permissions_for", None)
    if me is not None and callable(permissions_for):
        try:
            held = permissions_for(me)
        except discord.ClientException:
            held = None  # a thread whose parent is not cached
        if isinstance(held, discord.Permissions):
            missing = _root_causes(held, in_thread=in_thread)
    if missing:
        # Plain text: the reason is kept in the audit log as well as shown to the host.
        cause = f"I am missing {_listing(missing, bold=False)} there"
    elif error.code == 50001:
        cause = f"I can no longer see it (missing {VIEW_CHANNEL.label})"
    else:
        cause = f"Discord refused my message ({error.text or 'Missing Permissions'})"
    return (
        f"I paused the story because I could not post in {where}: {cause}. "
        "Ask a moderator to allow it for my role, then `/story resume`."
    )


def describe_closed_thread(channel: object) -> str:
    """Return why a post in a story's archived or locked thread failed, and what to do."""
    where = getattr(channel, "mention", "the story's thread")
    if getattr(channel, "locked", False):
        cause = (
            f"{where} is locked. A moderator can unlock it (only they may reopen a locked thread)"
        )
    else:
        cause = (
            f"{where} is archived and I may not reopen it. Give me Send Messages in "
            "Threads there, or reopen it by writing in it"
        )
    return f"I paused the story because I could not post: {cause}; then `/story resume`."


def _root_causes(held: discord.Permissions, *, in_thread: bool) -> list[ChannelPermission]:
    # Discord takes every other permission away where a channel cannot be seen, and
    # embeds and files where nothing may be posted: name only what takes the rest away.
    needed = story_permissions(in_thread=in_thread)
    missing = missing_permissions(held, needed)
    for root in (VIEW_CHANNEL, needed[1]):
        if root in missing:
            return [root]
    return missing


def _listing(permissions: Sequence[ChannelPermission], *, bold: bool = True) -> str:
    names = [f"**{p.label}**" if bold else p.label for p in permissions]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
