"""Plain messages as turns: the current player's message is their turn.

Only loaded with the message content intent. Out-of-turn messages are not recorded and get
a ⏳ reaction; `((` and `//` start table talk. A refused turn gets a ❌ reaction (which
stays) and a reply with the reason that deletes itself: one lasting mark, no clutter.
When the story database does not answer, a player of the channel's story gets the same
❌ and reply saying their message was not saved; other people's chatter gets nothing.

Messages written while the bot was away (restarting, or reconnected without resuming) are
read from each active story's channel at READY and handled by the same rules, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from datetime import timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.discord.actors import actor_from_user
from bot.discord.formatting import NO_MENTIONS, truncate
from bot.discord.turn_rules import MessageRole, classify_message, is_table_talk, table_talk_text
from engine.errors import AlreadyRecorded, InvalidState, NotYourTurn, StoryError, StoryUnavailable
from engine.story.views import CatchUpPoint, SessionView

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot

log = logging.getLogger(__name__)

WAITING_REACTION = "⏳"
REFUSED_REACTION = "❌"
# Messages people write, as opposed to joins, pins and other system messages.
WRITTEN_TYPES = (discord.MessageType.default, discord.MessageType.reply)
# At most this many missed messages are read per story channel (one history request).
MISSED_MESSAGES_LIMIT = 100
# Message ids handled lately, so a message both heard live and read from history counts once.
HANDLED_IDS_KEPT = 1024
# The database's clock (a story's last change) and Discord's (message ids) may disagree a
# little: missed messages are read from this long before the change.
CLOCK_MARGIN = timedelta(seconds=2)


class TurnsCog(commands.Cog):
    """Record the current player's messages as turns and their edits as edits."""

    def __init__(self, bot: TaleweaverBot) -> None:
        self.bot = bot
        # The story last seen in each channel: while the database does not answer, it
        # tells a player of that story (who is told) from anyone else (who is not).
        self._last_seen: dict[int, SessionView] = {}
        # A channel's messages are handled one at a time, missed ones before new ones.
        self._channel_locks: dict[int, asyncio.Lock] = {}
        self._handled: OrderedDict[int, None] = OrderedDict()

    async def _story_in(self, channel_id: int) -> SessionView | None:
        view = await self.bot.runtime.story.queries.in_channel(channel_id)
        self._remember(channel_id, view)
        return view

    def _remember(self, channel_id: int, view: SessionView | None) -> None:
        if view is None:
            self._last_seen.pop(channel_id, None)
        else:
            self._last_seen[channel_id] = view

    def _plays_here(self, channel_id: int, user_id: int) -> bool:
        """Tell whether USER_ID played in the story last seen in the channel."""
        view = self._last_seen.get(channel_id)
        return classify_message(view, user_id) is not MessageRole.IGNORE

    @staticmethod
    def _is_candidate(message: discord.Message) -> bool:
        return (
            message.guild is not None
            and not message.author.bot
            and message.webhook_id is None
            and message.type in WRITTEN_TYPES
        )

    def _channel_lock(self, channel_id: int) -> asyncio.Lock:
        return self._channel_locks.setdefault(channel_id, asyncio.Lock())

    def _first_time(self, message_id: int) -> bool:
        """Tell whether a message is handled for the first time (and remember it)."""
        if message_id in self._handled:
            return False
        self._handled[message_id] = None
        while len(self._handled) > HANDLED_IDS_KEPT:
            self._handled.popitem(last=False)
        return True

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Treat a player's message as a turn, table talk, or an out-of-turn remark."""
        if not self._is_candidate(message):
            return
        async with self._channel_lock(message.channel.id):
            if self._first_time(message.id):
                await self._handle_message(message)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Read what was written while the bot was away: after a restart, or a new session."""
        if isinstance(self.bot, discord.AutoShardedClient):
            return  # each shard reads its own servers' channels when it is ready
        await self.bot.finish_before_close(self.catch_up())

    @commands.Cog.listener()
    async def on_shard_ready(self, shard_id: int) -> None:
        """Read what one shard's servers got while it was away (at start, or a new session)."""
        await self.bot.finish_before_close(self.catch_up(shard_id=shard_id))

    async def catch_up(self, *, shard_id: int | None = None) -> int:
        """Handle each active story's missed messages, in order; return how many were read.

        With SHARD_ID, only the stories of the servers Discord assigns to that shard.
        """
        try:
            points = await self.bot.runtime.story.queries.catch_up_points()
        except StoryError as exc:
            log.warning("missed messages not read: %s", exc)
            return 0
        shards = self.bot.shard_count or 1
        read = 0
        for point in points:
            if shard_id is not None and (point.guild_id >> 22) % shards != shard_id:
                continue
            # Stories of servers this client does not serve (another shard's) are not its own.
            if self.bot.get_guild(point.guild_id) is not None:
                read += await self._catch_up_channel(point)
        return read

    async def _catch_up_channel(self, point: CatchUpPoint) -> int:
        channel = await self.bot.resolve_channel(point.channel_id)
        if channel is None:
            return 0
        # Anything older was handled live, or belongs to a state of the story that is gone.
        since = discord.utils.time_snowflake(point.changed_at - CLOCK_MARGIN)
        after = max(point.after_message_id or 0, since)
        async with self._channel_lock(point.channel_id):
            try:
                history = [
                    message
                    async for message in channel.history(
                        limit=MISSED_MESSAGES_LIMIT, after=discord.Object(id=after)
                    )
                ]
            except discord.HTTPException as exc:
                log.warning("session %s: missed messages not read: %s", point.session_id, exc)
                return 0
            # A message the bot marked (⏳, ❌, ↩️) was seen live.
            missed = [
                message
                for message in history
                if self._is_candidate(message) and not any(r.me for r in message.reactions)
            ]
            for message in missed:
                if self._first_time(message.id):
                    await self._handle_message(message)
        if missed:
            log.info("session %s: read %d missed messages", point.session_id, len(missed))
        return len(missed)

    async def _handle_message(self, message: discord.Message) -> None:
        text = message.content.strip()
        if not text:
            return  # an image or sticker alone is not a turn
        sessions = self.bot.runtime.story
        channel_id = message.channel.id
        if not await sessions.queries.may_hold_story(channel_id):
            return  # chatter where no story is played costs no database work
        actor = actor_from_user(message.author)
        if is_table_talk(text):
            talk = table_talk_text(text)
            if talk:
                try:
                    await sessions.turns.record_table_talk(
                        channel_id, actor, talk, message_id=message.id
                    )
                except StoryError as exc:
                    # Table talk breaking the rules is not kept; say why, like for a turn.
                    await self.refuse(message, str(exc))
            return
        try:
            view = await self._story_in(channel_id)
        except StoryUnavailable as exc:
            if self._plays_here(channel_id, actor.user_id):
                await self.refuse(message, str(exc))
            return
        role = classify_message(view, actor.user_id)
        if role is MessageRole.IGNORE:
            return
        if role is MessageRole.OUT_OF_TURN:
            await self._react(message, WAITING_REACTION)
            return
        try:
            written = await self.bot.runtime.table.write_turn(
                channel_id, actor, text, message_id=message.id
            )
        except AlreadyRecorded:
            return  # heard live and read from the history: kept once
        except NotYourTurn:
            # Someone else's turn landed first.
            await self._react(message, WAITING_REACTION)
            return
        except StoryError as exc:
            await self.refuse(message, str(exc))
            return
        self._remember(channel_id, written.session)
        if written.narrator is not None:
            if written.narrator.refusal is not None:
                with contextlib.suppress(discord.HTTPException):
                    await message.reply(
                        f"⏳ {written.narrator.refusal}",
                        allowed_mentions=NO_MENTIONS,
                        mention_author=False,
                    )
            return
        await self.bot.departures.prompt_turn(message.channel, written.session)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Apply an edit of a player's latest turn to the story."""
        message = payload.message
        if not self._is_candidate(message) or "content" not in payload.data:
            return
        before = payload.cached_message
        if before is not None and before.content == message.content:
            return  # an embed unfurled; the text did not change
        text = message.content.strip()
        if not text or is_table_talk(text):
            return
        sessions = self.bot.runtime.story
        if not await sessions.queries.may_hold_story(payload.channel_id):
            return
        try:
            view = await self._story_in(payload.channel_id)
        except StoryUnavailable as exc:
            if self._plays_here(payload.channel_id, message.author.id):
                await self.refuse(message, f"Your edit was not saved: {exc}")
            return
        if view is None or not any(p.user_id == message.author.id for p in view.participants):
            return
        actor = actor_from_user(message.author)
        try:
            await sessions.turns.edit_turn(payload.channel_id, actor, text, message_id=message.id)
        except InvalidState:
            # Not their latest turn (or not a turn at all): nothing in the story changes.
            return
        except StoryError as exc:
            await self.refuse(message, f"Your edit was not saved: {exc}")
            return
        log.debug("session %s: turn message %s edited", view.id, message.id)

    async def refuse(self, message: discord.Message, reason: str) -> None:
        """Mark a message as not recorded and say why in a reply that deletes itself."""
        await self._react(message, REFUSED_REACTION)
        with contextlib.suppress(discord.HTTPException):
            await message.reply(
                truncate(f"{REFUSED_REACTION} {reason}", 2000),
                allowed_mentions=NO_MENTIONS,
                mention_author=False,
                delete_after=self.bot.options.refusal_seconds,
            )

    @staticmethod
    async def _react(message: discord.Message, emoji: str) -> None:
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException as exc:
            log.info("could not react to message %s: %s", message.id, exc)
