"""`/story …`: start, join and run a story, write turns, call the narrator, lore and export."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.actions import (
    announce,
    ask_narrator,
    channel_id_of,
    guild_id_of,
    retry_passage,
    undo_turn,
)
from bot.discord.actors import actor_from_user
from bot.discord.choices import GENRE_CHOICES
from bot.discord.export_delivery import (
    DEFAULT_ATTACHMENT_LIMIT,
    format_size,
    plan_delivery,
    too_large_message,
)
from bot.discord.formatting import (
    CHOICE_NAME_LIMIT,
    NO_MENTIONS,
    genre_name,
    lore_embed,
    participant_names,
    plain,
    recap_embed,
    status_embed,
    truncate,
    turn_prompt,
    write_hint,
)
from bot.discord.permissions import require_story_permissions
from bot.discord.replies import acknowledge, reply
from bot.discord.splitting import split_message
from bot.discord.threads import abandon_thread, require_open_thread
from engine.actors import Actor
from engine.errors import InvalidState, SessionNotFound
from engine.export import ExportFormat, ExportOptions, zip_export
from engine.protocol.bounds import field_bounds
from engine.rules.guild_config import GuildConfig
from engine.story.lifecycle import MAX_AUTHORS_NOTE_CHARS, MAX_PREMISE_CHARS, MAX_TITLE_CHARS
from engine.story.lore import MAX_LORE_KEYWORDS_TEXT, MAX_LORE_NAME_CHARS, MAX_LORE_TEXT_CHARS
from engine.story.views import SessionView
from engine.table import StoredTurn

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot

log = logging.getLogger(__name__)

FORMAT_CHOICES = [
    app_commands.Choice(name="Markdown (.md)", value=ExportFormat.MARKDOWN.value),
    app_commands.Choice(name="Plain text (.txt)", value=ExportFormat.TEXT.value),
    app_commands.Choice(name="Web page (.html)", value=ExportFormat.HTML.value),
    app_commands.Choice(name="E-book (.epub)", value=ExportFormat.EPUB.value),
    app_commands.Choice(name="Archive (.json)", value=ExportFormat.JSON.value),
]
# Threads keep a story's turns together and out of the main channel; a week of quiet
# before Discord archives them suits a story played a turn a day.
THREAD_ARCHIVE_MINUTES: Literal[10080] = 10080
THREAD_NAME_LIMIT = 100
# Turns are limited by the server's max_turn_chars; Discord takes up to its highest bound.
MAX_WRITE_CHARS = field_bounds(GuildConfig, "max_turn_chars")[1]


def _is_nsfw(channel: object) -> bool:
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


@app_commands.guild_only()
class StoryCog(
    commands.GroupCog, group_name="story", group_description="Play a round-robin story here"
):
    """Slash commands for players, hosts and moderators of a story."""

    lore = app_commands.Group(name="lore", description="Facts the narrator keeps in mind")

    def __init__(self, bot: TaleweaverBot) -> None:
        self.bot = bot
        super().__init__()

    # Life cycle ---------------------------------------------------------------------------------
    @app_commands.command(name="start", description="Start a new story in this channel")
    @app_commands.describe(
        title="The story's title",
        premise="Where and how the story begins; the narrator builds on it",
        genre="The narrator's style (default: the server's default genre)",
        thread="Play in a new thread of this channel (default: the server's setting)",
    )
    @app_commands.choices(genre=GENRE_CHOICES)
    async def start(
        self,
        interaction: discord.Interaction[Any],
        title: app_commands.Range[str, 1, MAX_TITLE_CHARS],
        premise: app_commands.Range[str, 1, MAX_PREMISE_CHARS],
        genre: app_commands.Choice[str] | None = None,
        thread: bool | None = None,
    ) -> None:
        """Open a story (in a new thread when asked) with the caller as host."""
        channel_id = channel_id_of(interaction)
        guild_id = guild_id_of(interaction)
        runtime = self.bot.runtime
        config = await runtime.configs.get(guild_id)
        genre_key = genre.value if genre is not None else config.default_genre
        want_thread = config.prefer_threads if thread is None else thread
        actor = actor_from_user(interaction.user)
        channel = interaction.channel
        age_restricted = _is_nsfw(channel)
        opens_thread = want_thread and isinstance(channel, discord.TextChannel)
        require_story_permissions(interaction, opens_thread=opens_thread)
        story_thread: discord.Thread | None = None
        if opens_thread and isinstance(channel, discord.TextChannel):
            # Creating the thread and the story can outlast the 3 s answer window.
            await acknowledge(interaction)
            # Checked before the thread exists: a title the story refuses never names one.
            await runtime.story.lifecycle.check_start(
                guild_id=guild_id,
                channel_id=channel_id,
                actor=actor,
                title=title,
                genre=genre_key,
                premise=premise,
                age_restricted=age_restricted,
            )
            try:
                story_thread = await channel.create_thread(
                    name=truncate(title, THREAD_NAME_LIMIT),
                    type=discord.ChannelType.public_thread,
                    auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                    reason=f"Story started by {actor.display_name}",
                )
            except discord.Forbidden as exc:
                raise InvalidState(
                    "I may not create threads here. Give me the Create Public Threads "
                    "permission, or start the story with `thread: False`."
                ) from exc
        try:
            view = await runtime.story.lifecycle.start(
                guild_id=guild_id,
                channel_id=story_thread.id if story_thread else channel_id,
                actor=actor,
                title=title,
                genre=genre_key,
                premise=premise,
                parent_channel_id=channel_id if story_thread else None,
                age_restricted=age_restricted,
            )
        except Exception:
            if story_thread is not None:
                await abandon_thread(interaction, story_thread)
            raise
        intro = (
            f"📖 {plain(actor.display_name)} starts **{plain(view.title)}** "
            f"({genre_name(view.genre)}). Join with `/story join`; the host begins with "
            "`/story begin`."
        )
        if story_thread is None:
            note = " (This channel already is a thread.)" if want_thread and thread else ""
            await reply(interaction, intro + note, embed=status_embed(view))
            return
        await story_thread.send(intro, embed=status_embed(view), allowed_mentions=NO_MENTIONS)
        await reply(
            interaction,
            f"📖 **{plain(view.title)}** begins in {story_thread.mention}: join it there with "
            "`/story join`.",
        )

    @app_commands.command(name="join", description="Join the story in this channel")
    async def join(self, interaction: discord.Interaction[Any]) -> None:
        """Take a seat at the end of the rotation (or come back from away)."""
        actor = actor_from_user(interaction.user)
        before = await self.bot.runtime.story.queries.in_channel(channel_id_of(interaction))
        view = await self.bot.runtime.story.lifecycle.join(channel_id_of(interaction), actor)
        lead = (
            f"🙋 {plain(actor.display_name)} joins **{plain(view.title)}**. "
            f"Rotation: {participant_names(view.rotation)}."
        )
        revived = before is not None and before.status != view.status
        await announce(interaction, lead, view, actor_id=actor.user_id, prompt=revived)

    @app_commands.command(name="leave", description="Leave the story in this channel")
    async def leave(self, interaction: discord.Interaction[Any]) -> None:
        """Leave the rotation; the turn passes on if it was yours."""
        actor = actor_from_user(interaction.user)
        channel_id = channel_id_of(interaction)
        before = await self.bot.runtime.story.queries.in_channel(channel_id)
        view = await self.bot.runtime.story.lifecycle.leave(channel_id, actor)
        lead = f"👋 {plain(actor.display_name)} leaves **{plain(view.title)}**."
        if view.status == "paused" and not view.rotation:
            lead += " Nobody is left, so the story pauses until someone joins."
        was_current = (
            before is not None
            and before.current_player is not None
            and before.current_player.user_id == actor.user_id
        )
        await announce(interaction, lead, view, actor_id=actor.user_id, prompt=was_current)

    @app_commands.command(name="begin", description="Begin play (host or moderator)")
    async def begin(self, interaction: discord.Interaction[Any]) -> None:
        """Start play: the first player in join order has the turn."""
        require_story_permissions(interaction)
        actor = actor_from_user(interaction.user)
        view = await self.bot.runtime.story.lifecycle.begin(channel_id_of(interaction), actor)
        lead = f"🎬 **{plain(view.title)}** begins! Rotation: {participant_names(view.rotation)}."
        await announce(interaction, lead, view, actor_id=actor.user_id, prompt=True)

    @app_commands.command(name="pause", description="Pause the story and its clock (host)")
    async def pause(self, interaction: discord.Interaction[Any]) -> None:
        """Stop the clock and refuse turns until resumed."""
        actor = actor_from_user(interaction.user)
        view = await self.bot.runtime.story.lifecycle.pause(channel_id_of(interaction), actor)
        await reply(
            interaction,
            f"⏸️ {plain(actor.display_name)} pauses **{plain(view.title)}**. "
            "The host or a moderator can `/story resume` it.",
        )

    @app_commands.command(name="resume", description="Resume a paused story (host)")
    async def resume(self, interaction: discord.Interaction[Any]) -> None:
        """Continue a paused story; the current player's clock starts afresh."""
        require_story_permissions(interaction)
        await require_open_thread(interaction)
        actor = actor_from_user(interaction.user)
        view = await self.bot.runtime.story.lifecycle.resume(channel_id_of(interaction), actor)
        lead = f"▶️ {plain(actor.display_name)} resumes **{plain(view.title)}**."
        await announce(interaction, lead, view, actor_id=actor.user_id, prompt=True)

    @app_commands.command(name="end", description="End the story; it stays exportable (host)")
    async def end(self, interaction: discord.Interaction[Any]) -> None:
        """Finish the story and free the channel."""
        actor = actor_from_user(interaction.user)
        view = await self.bot.runtime.story.lifecycle.end(channel_id_of(interaction), actor)
        await self.bot.narration.discard_session(view.id)
        await reply(
            interaction,
            f"🏁 **{plain(view.title)}** ends after {view.turn_count} turns. "
            "Get it as a file with `/story export`.",
        )

    # Turns ----------------------------------------------------------------------------------------
    @app_commands.command(name="write", description="Write your turn")
    @app_commands.describe(text="What happens next, in your words")
    async def write(
        self,
        interaction: discord.Interaction[Any],
        text: app_commands.Range[str, 1, MAX_WRITE_CHARS],
    ) -> None:
        """Store the caller's turn, show it, and call the narrator or the next player."""
        runtime = self.bot.runtime
        actor = actor_from_user(interaction.user)
        channel_id = channel_id_of(interaction)
        # Answered before the turn is stored: an answer Discord refuses stores nothing.
        await acknowledge(interaction)

        async def show(stored: StoredTurn) -> None:
            chunks = split_message(f"**{plain(stored.turn.author_name)}:** {stored.turn.text}")
            first_id = await reply(interaction, chunks[0])
            for chunk in chunks[1:]:
                await reply(interaction, chunk)
            if first_id is not None:
                await runtime.story.turns.set_turn_message(
                    stored.session.id, stored.turn.number, first_id
                )

        written = await runtime.table.write_turn(channel_id, actor, text, show=show)
        if written.narrator is not None:
            if written.narrator.refusal is not None:
                await reply(interaction, f"⏳ {written.narrator.refusal}")
            return
        ping = turn_prompt(written.session, via_messages=self.bot.via_messages)
        if ping is not None:
            await reply(interaction, ping.content, allowed_mentions=ping.allowed_mentions)

    @app_commands.command(name="skip", description="Skip the current player (host), or vote to")
    async def skip(self, interaction: discord.Interaction[Any]) -> None:
        """Skip at once for the host or moderators; a vote for other players."""
        actor = actor_from_user(interaction.user)
        channel_id = channel_id_of(interaction)
        before = await self.bot.runtime.story.queries.in_channel(channel_id)
        outcome = await self.bot.runtime.story.turns.skip(channel_id, actor)
        who = plain(actor.display_name)
        if outcome.cancelled_narration:
            await self.bot.narration.discard_session(outcome.session.id)
            lead = f"⏭️ {who} cancels the narrator's passage."
        elif outcome.skipped is not None:
            votes = f" ({outcome.votes} of {outcome.votes_needed} votes)" if outcome.votes else ""
            lead = f"⏭️ {plain(outcome.skipped.display_name)} is skipped{votes}."
        else:
            target = before.current_player if before is not None else None
            name = plain(target.display_name) if target is not None else "the current player"
            await reply(
                interaction,
                f"🗳️ {who} votes to skip {name}: {outcome.votes} of {outcome.votes_needed} "
                "votes needed.",
            )
            return
        await announce(interaction, lead, outcome.session, actor_id=actor.user_id, prompt=True)

    @app_commands.command(name="undo", description="Take back the latest turn")
    async def undo(self, interaction: discord.Interaction[Any]) -> None:
        """Remove the latest turn and restore the rotation."""
        await undo_turn(interaction)

    @app_commands.command(
        name="retry", description="Ask for another version of the narrator's passage"
    )
    async def retry(self, interaction: discord.Interaction[Any]) -> None:
        """Regenerate the narrator's latest passage; earlier versions stay selectable."""
        await retry_passage(interaction)

    @app_commands.command(name="continue", description="Ask the narrator to speak now")
    async def continue_(self, interaction: discord.Interaction[Any]) -> None:
        """Ask the narrator for a passage now."""
        await ask_narrator(
            interaction,
            self.bot.runtime.table.call_narrator,
            f"📜 {plain(interaction.user.display_name)} calls on the narrator.",
        )

    @app_commands.command(
        name="note", description="Set the author's note the narrator follows (host)"
    )
    @app_commands.describe(
        text="A short steer for the narrator, e.g. 'keep it light'; empty clears"
    )
    async def note(
        self,
        interaction: discord.Interaction[Any],
        text: app_commands.Range[str, 0, MAX_AUTHORS_NOTE_CHARS] = "",
    ) -> None:
        """Set or clear the author's note."""
        actor = actor_from_user(interaction.user)
        await self.bot.runtime.story.lifecycle.set_authors_note(
            channel_id_of(interaction), actor, text
        )
        await reply(
            interaction,
            "📝 Author's note set." if text.strip() else "📝 Author's note cleared.",
            ephemeral=True,
        )

    # Reading --------------------------------------------------------------------------------------
    @app_commands.command(
        name="status", description="Show the rotation, whose turn it is and the deadline"
    )
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        """Show the story's status to the caller."""
        view = await self._current(interaction)
        hint = ""
        if view.current_player is not None and view.current_player.user_id == interaction.user.id:
            hint = f"It's your turn. {write_hint(via_messages=self.bot.via_messages)}."
        await reply(interaction, hint or None, embed=status_embed(view), ephemeral=True)

    @app_commands.command(name="recap", description="Show the summary so far and the latest turns")
    async def recap(self, interaction: discord.Interaction[Any]) -> None:
        """Show the caller a recap of the story."""
        recap = await self.bot.runtime.story.queries.recap(channel_id_of(interaction))
        await reply(interaction, embed=recap_embed(recap), ephemeral=True)

    async def _current(self, interaction: discord.Interaction[Any]) -> SessionView:
        view = await self.bot.runtime.story.queries.in_channel(channel_id_of(interaction))
        if view is None:
            raise SessionNotFound(
                "There is no story in this channel. Start one with `/story start`."
            )
        return view

    # Export ---------------------------------------------------------------------------------------
    @app_commands.command(name="export", description="Get a story as a file")
    @app_commands.rename(fmt="format")
    @app_commands.describe(
        fmt="The file format",
        story="A story of this server (default: this channel's current or latest story)",
        table_talk="Include out-of-character table talk",
        alternatives="Include earlier versions of retried passages",
    )
    @app_commands.choices(fmt=FORMAT_CHOICES)
    async def export(
        self,
        interaction: discord.Interaction[Any],
        fmt: app_commands.Choice[str],
        story: app_commands.Range[str, 1, MAX_TITLE_CHARS] | None = None,
        table_talk: bool = False,
        alternatives: bool = False,
    ) -> None:
        """Send the story as an attachment (zipped if needed) or say how to get it."""
        guild_id = guild_id_of(interaction)
        channel_id = channel_id_of(interaction)
        actor = actor_from_user(interaction.user)
        # Rendering and zipping take a moment; the file is for the caller only.
        await interaction.response.defer(ephemeral=True, thinking=True)
        session_id = await self._export_target(guild_id, channel_id, actor, story)
        export_format = ExportFormat(fmt.value)
        options = ExportOptions(include_table_talk=table_talk, include_alternatives=alternatives)
        file = await self.bot.exports.export(
            session_id, export_format, options, actor=actor, guild_id=guild_id
        )
        limit = getattr(interaction, "filesize_limit", None) or DEFAULT_ATTACHMENT_LIMIT
        delivery = await asyncio.to_thread(plan_delivery, file, limit, zip_export)
        if delivery.file is None:
            await reply(
                interaction,
                too_large_message(delivery, limit, session_id, export_format, options),
                ephemeral=True,
            )
            return
        note = f" (zipped: {format_size(delivery.original_size)} is over this server's limit)"
        await reply(
            interaction,
            f"📦 `{delivery.file.filename}`{note if delivery.zipped else ''}",
            ephemeral=True,
            file=discord.File(io.BytesIO(delivery.file.data), filename=delivery.file.filename),
        )

    async def _export_target(
        self, guild_id: int, channel_id: int, actor: Actor, story: str | None
    ) -> int:
        """Return the story to export: the chosen one, else this channel's current or latest."""
        if story:
            if story.strip().isdigit():
                return int(story.strip())
            found = await self.bot.exports.find(guild_id, actor, story, limit=1)
            if not found:
                raise SessionNotFound(f"No story you can export matches {story!r}.")
            return found[0].session_id
        current = await self.bot.runtime.story.queries.in_channel(channel_id)
        if current is not None:
            return current.id
        for view in await self.bot.runtime.story.queries.list_sessions(guild_id):
            if view.channel_id == channel_id:
                return view.id
        raise SessionNotFound(
            "There is no story in this channel; pick one with the `story` option."
        )

    @export.autocomplete("story")
    async def _story_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.guild_id is None:
            return []
        try:
            found = await self.bot.exports.find(
                interaction.guild_id, actor_from_user(interaction.user), current, limit=25
            )
        except Exception:
            log.exception("story autocomplete failed")
            return []
        return [
            app_commands.Choice(
                name=truncate(
                    f"{choice.title} · {choice.status} · {choice.created_at:%Y-%m-%d}",
                    CHOICE_NAME_LIMIT,
                ),
                value=str(choice.session_id),
            )
            for choice in found
        ]

    # Lore -----------------------------------------------------------------------------------------
    @lore.command(name="add", description="Add or replace a lore entry")
    @app_commands.describe(
        name="The entry's name, e.g. a place, person or object",
        keywords="Comma-separated words that remind the narrator of it (default: the name)",
        text="What the narrator should know",
    )
    async def lore_add(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, MAX_LORE_NAME_CHARS],
        text: app_commands.Range[str, 1, MAX_LORE_TEXT_CHARS],
        keywords: app_commands.Range[str, 0, MAX_LORE_KEYWORDS_TEXT] = "",
    ) -> None:
        """Store a lore entry for this story."""
        actor = actor_from_user(interaction.user)
        entry = await self.bot.runtime.story.lore.add_lore(
            channel_id_of(interaction), actor, name, keywords.split(","), text
        )
        await reply(
            interaction,
            f"📚 {plain(actor.display_name)} adds lore **{plain(entry.name)}** "
            f"(keywords: {plain(', '.join(entry.keywords))}).",
        )

    @lore.command(name="list", description="List this story's lore")
    async def lore_list(self, interaction: discord.Interaction[Any]) -> None:
        """Show the story's lore entries to the caller."""
        view = await self._current(interaction)
        entries = await self.bot.runtime.story.lore.list_lore(view.id)
        await reply(interaction, embed=lore_embed(view.title, entries), ephemeral=True)

    @lore.command(name="remove", description="Remove a lore entry")
    @app_commands.describe(name="The entry to remove")
    async def lore_remove(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, MAX_LORE_NAME_CHARS],
    ) -> None:
        """Delete a lore entry (its author, the host or a moderator)."""
        actor = actor_from_user(interaction.user)
        await self.bot.runtime.story.lore.remove_lore(channel_id_of(interaction), actor, name)
        await reply(interaction, f"📚 {plain(actor.display_name)} removes lore **{plain(name)}**.")

    @lore_remove.autocomplete("name")
    async def _lore_names(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        if interaction.channel_id is None:
            return []
        try:
            view = await self.bot.runtime.story.queries.in_channel(interaction.channel_id)
            entries = await self.bot.runtime.story.lore.list_lore(view.id) if view else []
        except Exception:
            log.exception("lore autocomplete failed")
            return []
        needle = current.casefold()
        return [
            app_commands.Choice(name=truncate(e.name, CHOICE_NAME_LIMIT), value=e.name)
            for e in entries
            if needle in e.name.casefold()
        ][:25]
