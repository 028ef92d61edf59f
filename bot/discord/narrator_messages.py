"""Show the narrator in Discord: stream passages into messages, finish them, announce turns."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.discord.departures import Departures
from bot.discord.formatting import (
    ELLIPSIS,
    NO_MENTIONS,
    Ping,
    plain,
    turn_prompt,
    vote_message,
    vote_result,
)
from bot.discord.permissions import describe_closed_thread, describe_refused_post
from bot.discord.splitting import MESSAGE_LIMIT, split_message
from bot.discord.throttle import EditThrottle, MonotonicClock
from engine.story import StoryService
from engine.story.views import (
    NarrationOutcome,
    PassageVoteView,
    SessionView,
    TimeoutOutcome,
    TurnView,
    VoteClosed,
)

log = logging.getLogger(__name__)

# Shown after the text while the narrator is still writing.
CURSOR = " ▌"
DEFAULT_EDIT_INTERVAL = 1.5
# A stream nobody finished (its job was cancelled or lost) is forgotten after this long.
STALE_STREAM_SECONDS = 15 * 60.0
# Cancelled jobs remembered so their late progress is not shown again (oldest forgotten first).
WITHDRAWN_JOBS_KEPT = 256
# Discord's answers to a post in a channel that is gone, and in an archived or locked thread.
UNKNOWN_CHANNEL = 10003
THREAD_CLOSED = 50083

ChannelResolver = Callable[[int], Awaitable["discord.abc.Messageable | None"]]
ChannelGetter = Callable[[], Awaitable["discord.abc.Messageable | None"]]
ViewFactory = Callable[[int, TurnView], "discord.ui.View | None"]
VoteViewFactory = Callable[[int, PassageVoteView], "discord.ui.View | None"]


class PassageStream:
    """One narrator passage shown while it grows, in as many messages as its length needs.

    Edits are at least ``interval`` seconds apart and always show the latest text: updates
    that arrive in between replace each other instead of queueing stale edits.
    """

    def __init__(
        self,
        session_id: int,
        job_id: str,
        channel: ChannelGetter,
        *,
        interval: float = DEFAULT_EDIT_INTERVAL,
        clock: MonotonicClock = time.monotonic,
        limit: int = MESSAGE_LIMIT,
    ) -> None:
        self.session_id = session_id
        self.job_id = job_id
        self._get_channel = channel
        self._channel: discord.abc.Messageable | None = None
        self._resolved = False
        self._throttle = EditThrottle(interval, clock)
        self._clock = clock
        self._limit = limit
        self._latest = ""
        self._shown: str | None = None
        self._contents: list[str] = []
        self.messages: list[discord.Message] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._closed = False
        self._broken = False
        self.touched = clock()

    @property
    def closed(self) -> bool:
        """Tell whether the passage was finished or discarded."""
        return self._closed

    async def channel(self) -> discord.abc.Messageable | None:
        """Return the story's channel, looked up once."""
        if not self._resolved:
            self._channel = await self._get_channel()
            self._resolved = True
        return self._channel

    def update(self, text: str) -> None:
        """Show TEXT as soon as the edit interval allows (replacing any text not yet shown)."""
        if self._closed or self._broken:
            return
        self._latest = text
        self.touched = self._clock()
        if self._pump_task is None or self._pump_task.done():
            self._pump_task = asyncio.create_task(
                self._pump(), name=f"narrator-stream-{self.job_id}"
            )

    async def _pump(self) -> None:
        try:
            while not self._closed and self._latest != self._shown:
                delay = self._throttle.wait_time()
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    continue
                text = self._latest
                async with self._lock:
                    if self._closed:
                        break
                    await self._render(text, streaming=True)
                self._throttle.mark()
        except discord.HTTPException as exc:
            # Streaming is a courtesy: stop editing, the final text is still posted.
            self._broken = True
            log.warning("session %s: streaming stopped (%s)", self.session_id, exc)

    def abandon(self) -> None:
        """Stop streaming without waiting; what was shown stays."""
        self._closed = True
        self._wake.set()

    async def _stop_pump(self) -> None:
        self.abandon()
        if self._pump_task is not None:
            with contextlib.suppress(Exception):
                await self._pump_task

    async def finish(
        self,
        text: str,
        view: discord.ui.View | None,
        *,
        embeds: list[discord.Embed] | None = None,
    ) -> list[discord.Message]:
        """Show the final TEXT (always) with VIEW and EMBEDS on its last message.

        Returns the messages.
        """
        await self._stop_pump()
        async with self._lock:
            await self._render(text, streaming=False, view=view, embeds=embeds)
        return list(self.messages)

    async def discard(self) -> None:
        """Stop streaming and delete what was shown (the passage will not be kept)."""
        await self._stop_pump()
        async with self._lock:
            for message in self.messages:
                with contextlib.suppress(discord.HTTPException):
                    await message.delete()
            self.messages.clear()
            self._contents.clear()

    async def _render(
        self,
        text: str,
        *,
        streaming: bool,
        view: discord.ui.View | None = None,
        embeds: list[discord.Embed] | None = None,
    ) -> None:
        channel = await self.channel()
        if channel is None:
            return
        room = self._limit - (len(CURSOR) if streaming else 0)
        chunks = split_message(text, room) or [ELLIPSIS]
        if streaming:
            chunks[-1] += CURSOR
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            kwargs: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
            if last and not streaming:
                kwargs["view"] = view
                if embeds:
                    kwargs["embeds"] = embeds
            if index < len(self.messages):
                if self._contents[index] == chunk and "view" not in kwargs:
                    continue
                try:
                    await self.messages[index].edit(content=chunk, **kwargs)
                except discord.NotFound:
                    # Someone deleted this part; post it again so the passage stays whole.
                    if kwargs.get("view") is None:
                        kwargs.pop("view", None)
                    self.messages[index] = await channel.send(chunk, **kwargs)
                self._contents[index] = chunk
            else:
                if kwargs.get("view") is None:
                    kwargs.pop("view", None)
                self.messages.append(await channel.send(chunk, **kwargs))
                self._contents.append(chunk)
        for extra in self.messages[len(chunks) :]:
            with contextlib.suppress(discord.HTTPException):
                await extra.delete()
        del self.messages[len(chunks) :]
        del self._contents[len(chunks) :]
        self._shown = text


class DiscordNarrationListener:
    """Stream narrator passages into channels, finish them with buttons, ping the next player.

    Slow Discord calls never hold up the narrator's event loop: finishing a passage runs
    as a background task (``drain`` waits for them, for tests and shutdown).
    """

    def __init__(
        self,
        resolve_channel: ChannelResolver,
        *,
        view_factory: ViewFactory,
        vote_view_factory: VoteViewFactory | None = None,
        via_messages: bool = True,
        edit_interval: float = DEFAULT_EDIT_INTERVAL,
        clock: MonotonicClock = time.monotonic,
        stale_after: float = STALE_STREAM_SECONDS,
        departures: Departures | None = None,
    ) -> None:
        self._resolve_channel = resolve_channel
        # Finds out, before a turn is announced, whether its player has left the server.
        self._departures = departures
        self._view_factory = view_factory
        self._vote_view_factory = vote_view_factory
        self._via_messages = via_messages
        self._edit_interval = edit_interval
        self._clock = clock
        self._stale_after = stale_after
        self._sessions: StoryService | None = None
        self._streams: dict[str, PassageStream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # A cancelled job may still report progress until its worker sees the cancellation.
        self._withdrawn: dict[str, None] = {}

    def bind(self, sessions: StoryService) -> None:
        """Use SESSIONS to find stories' channels and record message ids."""
        self._sessions = sessions

    @property
    def sessions(self) -> StoryService:
        """Return the bound session service."""
        if self._sessions is None:
            raise RuntimeError("the narration listener is not bound to a session service")
        return self._sessions

    def _spawn(
        self, name: str, session_id: int, work: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        # The coroutine is created inside the task, so cancelling a task that never ran
        # leaves no un-awaited coroutine behind.
        task = asyncio.create_task(self._logged(name, session_id, work, *args), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(
        self, name: str, session_id: int, work: Callable[..., Awaitable[None]], *args: Any
    ) -> None:
        try:
            await work(*args)
        except discord.Forbidden as exc:
            log.warning("%s: Discord refused (%s)", name, exc)
            await self._suspend(session_id, functools.partial(describe_refused_post, error=exc))
        except discord.HTTPException as exc:
            log.warning("%s: Discord refused (%s)", name, exc)
            if exc.code == THREAD_CLOSED:
                # An archived thread the bot could not reopen, or a locked one.
                await self._suspend(session_id, describe_closed_thread)
            elif exc.code == UNKNOWN_CHANNEL:
                await self._close_deleted(session_id)
        except Exception:
            log.exception("%s failed", name)

    async def _suspend(self, session_id: int, describe: Callable[[object], str]) -> None:
        """Pause a story whose channel refuses the bot's posts, and say why to its host.

        Without this every passage, ping and reminder would vanish while the clock ran
        on, and the players would time out one after another without being told.
        """
        try:
            channel = await self._session_channel(session_id)
            await self.sessions.lifecycle.suspend(session_id, describe(channel))
        except Exception:
            log.exception("session %s: could not pause after a refused post", session_id)

    async def _close_deleted(self, session_id: int) -> None:
        """End a story whose channel Discord no longer knows (it was deleted)."""
        try:
            view = await self.sessions.queries.get(session_id)
            await self.sessions.lifecycle.close_deleted_channel(view.channel_id)
        except Exception:
            log.exception("session %s: could not end it after its channel was deleted", session_id)

    async def drain(self) -> None:
        """Wait until every background Discord call has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def withdraw_unfinished(self) -> None:
        """Delete the messages of passages still being written (call before disconnecting).

        After a restart nobody knows these messages any more: the next process posts the
        passage whole, so a half-written copy with its cursor would otherwise stay behind.
        """
        for job_id, stream in list(self._streams.items()):
            del self._streams[job_id]
            await stream.discard()

    async def close(self) -> None:
        """Cancel background work and forget every stream."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for stream in self._streams.values():
            await stream._stop_pump()
        self._streams.clear()

    async def _session_channel(self, session_id: int) -> discord.abc.Messageable | None:
        view = await self.sessions.queries.get(session_id)
        return await self._resolve_channel(view.channel_id)

    def _new_stream(self, session_id: int, job_id: str, channel: ChannelGetter) -> PassageStream:
        return PassageStream(
            session_id, job_id, channel, interval=self._edit_interval, clock=self._clock
        )

    def _forget_stale(self) -> None:
        now = self._clock()
        for job_id, stream in list(self._streams.items()):
            if now - stream.touched > self._stale_after:
                log.info("session %s: forgetting stale stream %s", stream.session_id, job_id)
                del self._streams[job_id]
                stream.abandon()

    # NarrationListener ----------------------------------------------------------------------
    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Show partial narrator text, coalescing updates into throttled edits."""
        if job_id in self._withdrawn:
            return
        stream = self._streams.get(job_id)
        if stream is None:
            self._forget_stale()

            async def channel() -> discord.abc.Messageable | None:
                return await self._session_channel(session_id)

            stream = self._streams[job_id] = self._new_stream(session_id, job_id, channel)
        stream.update(text)

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Finish the passage with its buttons, record its message and ping the next player."""
        job_id = outcome.turn.job_id or ""
        stream = self._streams.pop(job_id, None)
        if stream is None:
            channel_id = outcome.session.channel_id

            async def channel() -> discord.abc.Messageable | None:
                return await self._resolve_channel(channel_id)

            stream = self._new_stream(outcome.session.id, job_id, channel)
        self._spawn(f"finish-passage-{job_id}", outcome.session.id, self._finish, stream, outcome)

    async def _finish(self, stream: PassageStream, outcome: NarrationOutcome) -> None:
        if outcome.vote is not None:
            await self._open_vote(stream, outcome, outcome.vote)
            return
        view = self._view_factory(outcome.session.id, outcome.turn)
        messages = await stream.finish(outcome.turn.text, view)
        channel = await stream.channel()
        if channel is None:
            log.warning("session %s: its channel is gone", outcome.session.id)
            return
        if messages:
            newest = messages[-1].id
            await self.sessions.turns.set_turn_message(
                outcome.session.id, outcome.turn.number, newest
            )
            previous = outcome.turn.discord_message_id
            if previous is not None and previous != newest:
                # A retry: the new version replaces the old message (older versions stay
                # selectable from the new one).
                await delete_message(channel, previous)
        if await self._player_left(outcome.session):
            return
        await send_ping(channel, turn_prompt(outcome.session, via_messages=self._via_messages))

    # Votes on passages ---------------------------------------------------------------------
    async def _open_vote(
        self, stream: PassageStream, outcome: NarrationOutcome, vote: PassageVoteView
    ) -> None:
        """Show the candidates with a button each; the turn is announced when the vote closes."""
        content, embeds = vote_message(vote)
        buttons = None
        if self._vote_view_factory is not None:
            buttons = self._vote_view_factory(outcome.session.id, vote)
        messages = await stream.finish(content, buttons, embeds=embeds)
        if messages:
            await self.sessions.turns.set_turn_message(
                outcome.session.id, outcome.turn.number, messages[-1].id
            )

    async def vote_closed(self, closed: VoteClosed) -> None:
        """Put the chosen passage in place of the vote and ping the next player."""
        self._spawn(f"vote-closed-{closed.session.id}", closed.session.id, self._closed, closed)

    async def _closed(self, closed: VoteClosed) -> None:
        channel = await self._resolve_channel(closed.session.channel_id)
        if channel is None:
            return
        if closed.turn.discord_message_id is not None:
            await delete_message(channel, closed.turn.discord_message_id)

        async def same_channel() -> discord.abc.Messageable | None:
            return channel

        stream = self._new_stream(closed.session.id, closed.turn.job_id or "", same_channel)
        view = self._view_factory(closed.session.id, closed.turn)
        messages = await stream.finish(closed.turn.text, view)
        if messages:
            await self.sessions.turns.set_turn_message(
                closed.session.id, closed.turn.number, messages[-1].id
            )
        lead = vote_result(closed)
        left = await self._player_left(closed.session, announce=False)
        ping = (
            None
            if left
            else turn_prompt(closed.session, via_messages=self._via_messages, lead=lead)
        )
        await send_ping(channel, ping or Ping(lead.strip(), NO_MENTIONS))
        if left:
            await self._announce_departure(closed.session)

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Drop the unfinished passage and tell the players the turn is theirs."""
        self._spawn(f"narration-failed-{session.id}", session.id, self._failed, session, reason)

    async def _failed(self, session: SessionView, reason: str) -> None:
        await self.discard_session(session.id)
        channel = await self._resolve_channel(session.channel_id)
        if channel is None:
            return
        lead = f"⚠️ The narrator could not continue ({plain(reason)}). "
        left = await self._player_left(session, announce=False)
        ping = None if left else turn_prompt(session, via_messages=self._via_messages, lead=lead)
        if ping is None:
            ping = Ping(lead.strip(), NO_MENTIONS)
        await send_ping(channel, ping)
        if left:
            await self._announce_departure(session)

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Withdraw a passage that broke the story's content rules."""
        self._spawn(
            f"narration-filtered-{job_id}", session.id, self._filtered, session, job_id, replaced
        )

    async def _filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        stream = self._streams.pop(job_id, None)
        if stream is not None:
            await stream.discard()
        if not replaced:
            return
        channel = await self._resolve_channel(session.channel_id)
        if channel is not None:
            await channel.send(
                "The narrator's passages kept breaking this story's content rules, so a "
                "neutral line stands in. The host may want to `/story retry`.",
                allowed_mentions=NO_MENTIONS,
            )

    async def timed_out(self, outcome: TimeoutOutcome) -> None:
        """Say who ran out of time and ping only the next player."""
        self._spawn(f"timeout-{outcome.session.id}", outcome.session.id, self._timed_out, outcome)

    async def _timed_out(self, outcome: TimeoutOutcome) -> None:
        channel = await self._resolve_channel(outcome.session.channel_id)
        if channel is None:
            return
        name = plain(outcome.skipped.display_name)
        lead = f"⏰ {name} ran out of time and is skipped"
        if outcome.marked_away:
            lead += "; they are away until they `/story join` again"
        left = await self._player_left(outcome.session, announce=False)
        ping = (
            None
            if left
            else turn_prompt(outcome.session, via_messages=self._via_messages, lead=f"{lead}. ")
        )
        await send_ping(channel, ping or Ping(f"{lead}.", NO_MENTIONS))
        if left:
            await self._announce_departure(outcome.session)

    async def turn_reminder(self, session: SessionView) -> None:
        """Remind the current player, and only them, that their time is running out."""
        self._spawn(f"reminder-{session.id}", session.id, self._turn_reminder, session)

    async def _turn_reminder(self, session: SessionView) -> None:
        if await self._player_left(session):
            return  # their turn passed on, and the next player was pinged instead
        channel = await self._resolve_channel(session.channel_id)
        if channel is None:
            return
        ping = turn_prompt(session, via_messages=self._via_messages, lead="⏳ A reminder: ")
        if ping is not None:
            await send_ping(channel, ping)

    # Players who left the server ---------------------------------------------------------------
    async def _player_left(self, session: SessionView, *, announce: bool = True) -> bool:
        """Tell whether the player about to be pinged left the server.

        When they did, they are marked away in the server's stories and their turn passes
        on; with ANNOUNCE, the story's channel is told (and the next player pinged) now.
        """
        if self._departures is None or not await self._departures.current_player_left(session):
            return False
        if announce:
            await self._announce_departure(session)
        return True

    async def _announce_departure(self, session: SessionView) -> None:
        assert self._departures is not None and session.current_player is not None
        await self._departures.member_left(session.guild_id, session.current_player.user_id)

    # Commands that cancel narration --------------------------------------------------------
    async def discard_session(self, session_id: int, *, keep_job: str | None = None) -> None:
        """Delete the unfinished passages of a story (its narration was cancelled)."""
        for job_id, stream in list(self._streams.items()):
            if stream.session_id == session_id and job_id != keep_job:
                del self._streams[job_id]
                self._remember_withdrawn(job_id)
                await stream.discard()

    def _remember_withdrawn(self, job_id: str) -> None:
        self._withdrawn[job_id] = None
        while len(self._withdrawn) > WITHDRAWN_JOBS_KEPT:
            del self._withdrawn[next(iter(self._withdrawn))]


async def send_ping(channel: discord.abc.Messageable, ping: Ping | None) -> None:
    """Send a message that may ping only the users it names."""
    if ping is not None:
        await channel.send(ping.content, allowed_mentions=ping.allowed_mentions)


def partial_message(channel: object, message_id: int) -> discord.PartialMessage | None:
    """Return a handle on a message by id in channels that have messages, else None."""
    get_partial = getattr(channel, "get_partial_message", None)
    return get_partial(message_id) if callable(get_partial) else None


async def delete_message(channel: object, message_id: int) -> None:
    """Delete one of the bot's own messages by id; gone already is fine."""
    partial = partial_message(channel, message_id)
    if partial is not None:
        with contextlib.suppress(discord.HTTPException):
            await partial.delete()
