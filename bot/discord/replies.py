"""Answer interactions the same way everywhere: mentions off, errors ephemeral."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord

from bot.discord.formatting import CONTENT_LIMIT, NO_MENTIONS, truncate

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = (
    "Something went wrong on the bot's side; nothing was changed. Try again in a moment, "
    "and tell whoever runs the bot if it keeps happening."
)


# Set in interaction.extras while a public "thinking" answer waits for the first reply.
AWAITING_ANSWER = "taleweaver.awaiting_answer"


async def acknowledge(interaction: discord.Interaction[Any]) -> None:
    """Answer at once, before anything is stored; later replies fill in the answer.

    Discord takes an answer only within 3 seconds: a command that stored a change first
    and then found its answer refused (10062 on a slow event loop) left the change unshown.
    Deferring first makes a refused answer fail before anything changes. A slash command
    shows "thinking" until the first reply replaces it; a button shows nothing.
    """
    if interaction.response.is_done():
        return
    if interaction.type == discord.InteractionType.component:
        await interaction.response.defer()
        return
    await interaction.response.defer(thinking=True)
    interaction.extras[AWAITING_ANSWER] = True


async def reply(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    ephemeral: bool = False,
    embed: discord.Embed | None = None,
    allowed_mentions: discord.AllowedMentions = NO_MENTIONS,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
) -> int | None:
    """Answer (or follow up on an answered or deferred interaction); return the message id."""
    kwargs: dict[str, Any] = {"ephemeral": ephemeral, "allowed_mentions": allowed_mentions}
    if content is not None:
        kwargs["content"] = truncate(content, CONTENT_LIMIT)
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if file is not None:
        kwargs["file"] = file
    if interaction.extras.pop(AWAITING_ANSWER, False):
        if not ephemeral:
            edits = {key: value for key, value in kwargs.items() if key != "ephemeral"}
            if file is not None:
                edits["attachments"] = [edits.pop("file")]
            edited = await interaction.edit_original_response(**edits)
            return edited.id
        # The first follow-up would fill the public "thinking" answer, whatever its own
        # flags say; a private reply takes that answer away and follows up on its own.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
    if interaction.response.is_done():
        message = await interaction.followup.send(wait=True, **kwargs)
        return message.id
    callback = await interaction.response.send_message(**kwargs)
    return callback.message_id


async def send_error(interaction: discord.Interaction[Any], message: str) -> None:
    """Tell only the user what went wrong and what to do; never raise."""
    try:
        await reply(interaction, message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not show an error to user %s: %s", interaction.user.id, exc)
