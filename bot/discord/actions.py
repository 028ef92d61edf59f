"""Story actions shared by slash commands and message buttons."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.discord.actors import actor_from_user
from bot.discord.formatting import NO_MENTIONS, plain, turn_prompt
from bot.discord.narrator_messages import partial_message
from bot.discord.replies import SOMETHING_WENT_WRONG, acknowledge, reply, send_error
from engine.errors import InvalidState, StoryError
from engine.story.views import SessionView, UndoOutcome
from engine.table import NarratorCall

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot

log = logging.getLogger(__name__)

UNDONE_REACTION = "↩️"


def story_bot(interaction: discord.Interaction[Any]) -> TaleweaverBot:
    """Return the bot that received the interaction."""
    return cast("TaleweaverBot", interaction.client)


def guild_id_of(interaction: discord.Interaction[Any]) -> int:
    """Return the interaction's server id, refusing interactions outside a server."""
    if interaction.guild_id is None:
        raise InvalidState("Use this in a server channel where a story is played.")
    return interaction.guild_id


def channel_id_of(interaction: discord.Interaction[Any]) -> int:
    """Return the interaction's channel id, refusing interactions outside a channel."""
    if interaction.channel_id is None or interaction.guild_id is None:
        raise InvalidState("Use this in a server channel where a story is played.")
    return interaction.channel_id


async def guarded(
    interaction: discord.Interaction[Any], action: Callable[[], Awaitable[None]]
) -> None:
    """Run a button's action; refusals and failures become an ephemeral reply."""
    try:
        await action()
    except StoryError as exc:
        await send_error(interaction, str(exc))
    except Exception:
        log.exception("button %s failed", interaction.data)
        await send_error(interaction, SOMETHING_WENT_WRONG)


async def require_latest(
    bot: TaleweaverBot, channel_id: int, session_id: int, number: int, verb: str
) -> SessionView:
    """Refuse a button pressed on a passage that is no longer the story's latest."""
    view = await bot.runtime.story.queries.in_channel(channel_id)
    if view is None or view.id != session_id:
        raise InvalidState("This story is no longer running in this channel.")
    if view.turn_count != number:
        raise InvalidState(
            f"Only the latest passage can be {verb}; this one is older. "
            f"Use `/story {'retry' if verb == 'retried' else 'undo'}` for the latest."
        )
    return view


AskNarrator = Callable[..., Awaitable[NarratorCall]]
"""StoryTable.call_narrator or StoryTable.retry_narrator."""


async def ask_narrator(
    interaction: discord.Interaction[Any], ask: AskNarrator, announcement: str
) -> None:
    """Ask the narrator, announcing it first; when the queue refuses, say so instead."""
    channel_id = channel_id_of(interaction)
    # Answered before the narration is stored as pending: an answer Discord refuses (the
    # 3 s window passed) must not leave the story waiting for a narrator nobody asked.
    await acknowledge(interaction)

    announced: list[int] = []

    async def announce() -> None:
        message_id = await reply(interaction, announcement)
        if message_id is not None:
            announced.append(message_id)

    call = await ask(channel_id, actor_from_user(interaction.user), announce=announce)
    if call.refusal is not None:
        refusal = f"⏳ {call.refusal}"
        with contextlib.suppress(discord.HTTPException):
            # A button's original response is the passage it sits on: edit the announcement.
            if announced:
                await interaction.followup.edit_message(
                    announced[0], content=refusal, allowed_mentions=NO_MENTIONS
                )
            else:
                await reply(interaction, refusal)


async def retry_passage(
    interaction: discord.Interaction[Any],
    *,
    session_id: int | None = None,
    number: int | None = None,
) -> None:
    """Ask for another version of the narrator's latest passage."""
    bot = story_bot(interaction)
    channel_id = channel_id_of(interaction)
    await acknowledge(interaction)
    if session_id is not None and number is not None:
        await require_latest(bot, channel_id, session_id, number, "retried")
    who = plain(interaction.user.display_name)
    await ask_narrator(
        interaction,
        bot.runtime.table.retry_narrator,
        f"🔁 {who} asked the narrator for another version.",
    )


async def undo_turn(
    interaction: discord.Interaction[Any],
    *,
    session_id: int | None = None,
    number: int | None = None,
) -> None:
    """Take back the latest turn and say whose turn it is now."""
    bot = story_bot(interaction)
    channel_id = channel_id_of(interaction)
    if session_id is not None and number is not None:
        await require_latest(bot, channel_id, session_id, number, "undone")
    actor = actor_from_user(interaction.user)
    outcome = await bot.runtime.story.turns.undo(channel_id, actor)
    # A pending narration the undo cancelled will never be stored: drop its partial text.
    await bot.narration.discard_session(
        outcome.session.id, keep_job=outcome.session.narrator_job_id
    )
    lead = f"↩️ {plain(actor.display_name)} took back {_describe_removed(outcome)}."
    await announce(interaction, lead, outcome.session, actor_id=actor.user_id, prompt=True)
    await _retire_removed_message(bot, interaction, outcome)


async def announce(
    interaction: discord.Interaction[Any],
    lead: str,
    view: SessionView,
    *,
    actor_id: int,
    prompt: bool,
) -> int | None:
    """Post LEAD publicly; with PROMPT, add whose turn it is, pinging only that player.

    The player is not pinged when they are the one acting: they already know.
    """
    bot = story_bot(interaction)
    ping = turn_prompt(view, via_messages=bot.via_messages, lead=f"{lead} ") if prompt else None
    if ping is None:
        return await reply(interaction, lead)
    current = view.current_player
    mentions = ping.allowed_mentions
    if current is not None and current.user_id == actor_id:
        mentions = NO_MENTIONS
    return await reply(interaction, ping.content, allowed_mentions=mentions)


def _describe_removed(outcome: UndoOutcome) -> str:
    removed = outcome.removed
    if removed.is_narrator:
        return f"the narrator's passage (turn {removed.number})"
    return f"{plain(removed.author_name)}'s turn {removed.number}"


async def _retire_removed_message(
    bot: TaleweaverBot, interaction: discord.Interaction[Any], outcome: UndoOutcome
) -> None:
    """Delete an undone narrator message; mark an undone player message with a reaction."""
    message_id = outcome.removed.discord_message_id
    if message_id is None:
        return
    partial = partial_message(interaction.channel, message_id)
    if partial is None:
        return
    try:
        if outcome.removed.is_narrator:
            await partial.delete()
        else:
            await partial.add_reaction(UNDONE_REACTION)
    except discord.HTTPException as exc:
        log.info("session %s: undone message not updated (%s)", outcome.session.id, exc)
