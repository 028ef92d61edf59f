"""Answer interactions the same way everywhere: mentions off, errors ephemeral."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.discord.formatting import CONTENT_LIMIT, NO_MENTIONS, truncate

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = (
    "Something went wrong on the bot's side; nothing was changed. Try again in a moment, "
    "and tell whoever runs the bot if it keeps happening."
)


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
