"""Story threads that Discord archived or a moderator locked, and threads a story left behind."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord

from bot.discord.formatting import NO_MENTIONS
from engine.errors import InvalidState

log = logging.getLogger(__name__)

ABANDONED_THREAD_NOTE = (
    "⚠️ The story could not start in this thread. A moderator may delete it, or the host "
    "can try `/story start` again."
)


async def reopen_thread(thread: discord.Thread) -> bool:
    """Unarchive a story's thread so the bot can post in it; tell whether it is open.

    Discord lets anyone who may post in a thread unarchive it, unless a moderator locked
    it: only Manage Threads reopens a locked thread, and the bot leaves that to them.
    """
    if not thread.archived:
        return not thread.locked
    if thread.locked:
        return False
    try:
        await thread.edit(archived=False)
    except discord.HTTPException as exc:
        log.info("could not reopen archived thread %s: %s", thread.id, exc)
        return False
    log.info("reopened archived thread %s", thread.id)
    return True


async def require_open_thread(interaction: discord.Interaction[Any]) -> None:
    """Reopen the story thread a command is used in, or refuse saying who can.

    Discord archives a thread after a week without messages, so a story paused that
    long sits in an archived thread that the bot may reopen; a locked one it may not.
    """
    thread = interaction.channel
    if not isinstance(thread, discord.Thread) or not (thread.archived or thread.locked):
        return
    if thread.locked:
        raise InvalidState(
            "A moderator locked this thread, so I cannot post here. A moderator can unlock "
            "it; then `/story resume` again."
        )
    if not await reopen_thread(thread):
        raise InvalidState(
            "This thread is archived and Discord did not let me reopen it. Write a message "
            "in it to reopen it, then `/story resume` again."
        )


async def abandon_thread(interaction: discord.Interaction[Any], thread: discord.Thread) -> None:
    """Take away a thread whose story could not start.

    Deleting a thread needs Manage Threads, which the bot is not invited with: where it
    lacks it, the thread stays with a note saying what happened.
    """
    if interaction.app_permissions.manage_threads:
        try:
            await thread.delete()
        except discord.HTTPException as exc:
            log.info("could not delete thread %s: %s", thread.id, exc)
        else:
            return
    with contextlib.suppress(discord.HTTPException):
        await thread.send(ABANDONED_THREAD_NOTE, allowed_mentions=NO_MENTIONS)
