"""Persistent controls on narrator passages, rebuilt from their custom ids after a restart.

Each custom id carries the story and the turn number (``tw:retry:<session>:<turn>``), so
no per-message state is kept and the buttons keep working when the bot restarts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import discord

from bot.discord.actions import (
    channel_id_of,
    guarded,
    guild_id_of,
    retry_passage,
    story_bot,
    undo_turn,
)
from bot.discord.actors import actor_from_user
from bot.discord.formatting import (
    NO_MENTIONS,
    discord_timestamp,
    version_label,
    vote_counts,
)
from bot.discord.splitting import split_message
from engine.story.passage_votes import candidate_letter
from engine.story.views import PassageVoteView, TurnView

log = logging.getLogger(__name__)

# Discord allows 25 options in a select menu.
MAX_VERSION_OPTIONS = 25


def retry_id(session_id: int, number: int) -> str:
    """Return the custom id of a passage's Retry button."""
    return f"tw:retry:{session_id}:{number}"


def undo_id(session_id: int, number: int) -> str:
    """Return the custom id of a passage's Undo button."""
    return f"tw:undo:{session_id}:{number}"


def vote_id(session_id: int, number: int, choice: int) -> str:
    """Return the custom id of the button voting for a passage's candidate CHOICE."""
    return f"tw:vote:{session_id}:{number}:{choice}"


def version_id(session_id: int, number: int) -> str:
    """Return the custom id of a passage's version menu."""
    return f"tw:version:{session_id}:{number}"


class RetryButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"tw:retry:(?P<session>[0-9]+):(?P<turn>[0-9]+)",
):
    """Ask the narrator for another version of this passage."""

    def __init__(self, session_id: int, number: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Retry",
                emoji="🔁",
                style=discord.ButtonStyle.secondary,
                custom_id=retry_id(session_id, number),
                row=0,
            )
        )
        self.session_id = session_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> RetryButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["session"]), int(match["turn"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Retry the passage if it is still the latest."""
        await guarded(
            interaction,
            lambda: retry_passage(interaction, session_id=self.session_id, number=self.number),
        )


class UndoButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"tw:undo:(?P<session>[0-9]+):(?P<turn>[0-9]+)",
):
    """Take this passage back."""

    def __init__(self, session_id: int, number: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Undo",
                emoji="↩️",
                style=discord.ButtonStyle.secondary,
                custom_id=undo_id(session_id, number),
                row=0,
            )
        )
        self.session_id = session_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> UndoButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["session"]), int(match["turn"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Undo the passage if it is still the latest."""
        await guarded(
            interaction,
            lambda: undo_turn(interaction, session_id=self.session_id, number=self.number),
        )


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"tw:vote:(?P<session>[0-9]+):(?P<turn>[0-9]+):(?P<choice>[0-9])",
):
    """Vote for one of the narrator's candidates for a passage."""

    def __init__(self, session_id: int, number: int, choice: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=candidate_letter(choice),
                emoji="🗳️",
                style=discord.ButtonStyle.primary,
                custom_id=vote_id(session_id, number, choice),
                row=0,
            )
        )
        self.session_id = session_id
        self.number = number
        self.choice = choice

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VoteButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["session"]), int(match["turn"]), int(match["choice"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Record the vote and tell the voter, privately, how the vote stands."""
        await guarded(interaction, lambda: self._vote(interaction))

    async def _vote(self, interaction: discord.Interaction[Any]) -> None:
        bot = story_bot(interaction)
        tally = await bot.runtime.story.votes.cast(
            self.session_id,
            actor_from_user(interaction.user),
            self.number,
            self.choice,
            guild_id=guild_id_of(interaction),
            channel_id=channel_id_of(interaction),
        )
        await interaction.response.send_message(
            f"You voted for **{candidate_letter(tally.choice)}**. So far: "
            f"{vote_counts(tally.counts)}. The vote closes {discord_timestamp(tally.closes_at)}.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


def vote_view(session_id: int, vote: PassageVoteView) -> discord.ui.View:
    """Return one vote button per candidate of an open vote."""
    view = discord.ui.View(timeout=None)
    for choice in range(len(vote.candidates)):
        view.add_item(VoteButton(session_id, vote.turn_number, choice))
    return view


def version_options(alternatives: Sequence[str]) -> list[discord.SelectOption]:
    """Return one option per earlier version (the newest ones when there are too many)."""
    start = max(0, len(alternatives) - MAX_VERSION_OPTIONS)
    return [
        discord.SelectOption(label=version_label(index, alternatives[index]), value=str(index))
        for index in range(start, len(alternatives))
    ]


class VersionSelect(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]],
    template=r"tw:version:(?P<session>[0-9]+):(?P<turn>[0-9]+)",
):
    """Swap the passage for one of its earlier versions."""

    def __init__(
        self,
        session_id: int,
        number: int,
        alternatives: Sequence[str] = (),
        *,
        select: discord.ui.Select[discord.ui.View] | None = None,
    ) -> None:
        if select is None:
            select = discord.ui.Select(
                custom_id=version_id(session_id, number),
                placeholder=f"Earlier versions ({len(alternatives)})",
                options=version_options(alternatives),
                min_values=1,
                max_values=1,
                row=1,
            )
        super().__init__(select)
        self.session_id = session_id
        self.number = number

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VersionSelect:
        """Rebuild the menu from its custom id, keeping the options the message carries."""
        select = item if isinstance(item, discord.ui.Select) else None
        return cls(int(match["session"]), int(match["turn"]), select=select)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Show the chosen version in place of the current one."""
        await guarded(interaction, lambda: self._choose(interaction))

    async def _choose(self, interaction: discord.Interaction[Any]) -> None:
        bot = story_bot(interaction)
        index = int(self.item.values[0])
        actor = actor_from_user(interaction.user)
        turn = await bot.runtime.story.ledger.choose_alternative(
            self.session_id,
            actor,
            self.number,
            index,
            guild_id=guild_id_of(interaction),
            channel_id=channel_id_of(interaction),
        )
        replaced = turn.alternatives[index]
        chunks = split_message(turn.text)
        controls = narrator_view(self.session_id, turn)
        message = interaction.message
        if message is not None and len(chunks) == 1 and _same_text(message.content, replaced):
            await interaction.response.edit_message(
                content=chunks[0], view=controls, allowed_mentions=NO_MENTIONS
            )
            return
        # The passage spans several messages we cannot all find again: post the chosen
        # version anew below and take the controls off the old one.
        await interaction.response.edit_message(view=None, allowed_mentions=NO_MENTIONS)
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return
        sent: discord.Message | None = None
        for position, chunk in enumerate(chunks):
            last = position == len(chunks) - 1
            if last:
                sent = await channel.send(chunk, view=controls, allowed_mentions=NO_MENTIONS)
            else:
                await channel.send(chunk, allowed_mentions=NO_MENTIONS)
        if sent is not None:
            await bot.runtime.story.turns.set_turn_message(self.session_id, self.number, sent.id)


def _same_text(shown: str, text: str) -> bool:
    return " ".join(shown.split()) == " ".join(text.split())


def narrator_view(session_id: int, turn: TurnView) -> discord.ui.View:
    """Return the controls for a narrator passage: Retry, Undo and its earlier versions."""
    # No timeout: the items are dynamic, so they work on old messages and after restarts.
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(session_id, turn.number))
    view.add_item(UndoButton(session_id, turn.number))
    if turn.alternatives:
        view.add_item(VersionSelect(session_id, turn.number, turn.alternatives))
    return view


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    RetryButton,
    UndoButton,
    VersionSelect,
    VoteButton,
)
