"""A story's life: open, join, leave, begin, pause, resume, end, and its author's note."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.actors import Actor
from engine.errors import (
    InvalidState,
    PermissionDenied,
    TurnRejected,
)
from engine.rules.genres import get_preset
from engine.rules.guard import Where
from engine.rules.guild_config import GuildConfig, is_moderator
from engine.safety import TextKind
from engine.story.rotation import active_seats, next_after
from engine.story.store import StoryStore, new_participant
from engine.story.views import (
    DepartureOutcome,
    ParticipantView,
    SessionView,
)
from storage import repositories as repo
from storage.models import (
    ContentRating,
    ParticipantStatus,
    SessionStatus,
    StorySession,
    ViolationAction,
)

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
MAX_PREMISE_CHARS = 2000
MAX_AUTHORS_NOTE_CHARS = 500
MAX_HOST_NOTICE_CHARS = 1000
# The audit log's rule for a story paused because its text could not be posted.
SUSPENDED_RULE = "cannot_post"
# The audit log's rule, and its detail, for a story ended because its channel was deleted.
CHANNEL_DELETED_RULE = "channel_deleted"
CHANNEL_DELETED_DETAIL = (
    "The story's channel or thread was deleted, so the story ended. "
    "It can still be exported with /story export."
)


class StoryLifecycle:
    """Open, staff, start, pause and end stories; every call is one transaction."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def start(
        self,
        *,
        guild_id: int,
        channel_id: int,
        actor: Actor,
        title: str,
        genre: str,
        premise: str = "",
        parent_channel_id: int | None = None,
        age_restricted: bool = False,
    ) -> SessionView:
        """Open a story in a channel with the actor as host and first player."""
        title, premise, genre = self._start_text(title, premise, genre)

        async def work(db: AsyncSession) -> SessionView:
            config = GuildConfig.from_row(await repo.get_guild_settings(db=db, guild_id=guild_id))
            self._require_starter(config, actor)
            if await repo.get_open_session_in_channel(db=db, channel_id=channel_id):
                raise InvalidState("A story is already running in this channel.")
            rating = await self._store.rating(
                db, config, channel_id, parent_channel_id, age_restricted
            )
            where = Where(guild_id=guild_id, channel_id=channel_id, user_id=actor.user_id)
            self._check_start_text(config, rating, where, title, premise)
            story = StorySession(
                guild_id=guild_id,
                channel_id=channel_id,
                parent_channel_id=parent_channel_id,
                title=title,
                genre=genre,
                premise=premise,
                authors_note="",
                age_restricted=age_restricted,
                status=SessionStatus.LOBBY,
                host_id=actor.user_id,
                rotation_step=0,
                turn_count=0,
            )
            story.participants.append(new_participant(actor, join_order=1))
            db.add(story)
            return await self._store.refresh(db, story)

        try:
            return await self._store.transaction(work)
        except IntegrityError as exc:
            # The partial unique index on open sessions per channel decided the race.
            raise InvalidState("A story is already running in this channel.") from exc

    async def check_start(
        self,
        *,
        guild_id: int,
        channel_id: int,
        actor: Actor,
        title: str,
        genre: str,
        premise: str = "",
        age_restricted: bool = False,
    ) -> None:
        """Refuse a story that `start` would refuse in a new thread of CHANNEL_ID.

        Called before the thread exists, so that a refused title or premise never names a
        thread (a thread follows its parent channel's rating). A refusal is audited.
        """
        title, premise, genre = self._start_text(title, premise, genre)

        async def work(db: AsyncSession) -> None:
            config = GuildConfig.from_row(await repo.get_guild_settings(db=db, guild_id=guild_id))
            self._require_starter(config, actor)
            rating = await self._store.rating(db, config, channel_id, None, age_restricted)
            where = Where(guild_id=guild_id, channel_id=channel_id, user_id=actor.user_id)
            self._check_start_text(config, rating, where, title, premise)

        await self._store.transaction(work)

    @staticmethod
    def _start_text(title: str, premise: str, genre: str) -> tuple[str, str, str]:
        title, premise = title.strip(), premise.strip()
        if not title:
            raise TurnRejected("A story needs a title.")
        if len(title) > MAX_TITLE_CHARS:
            raise TurnRejected(f"The title is too long (the limit is {MAX_TITLE_CHARS}).")
        if len(premise) > MAX_PREMISE_CHARS:
            raise TurnRejected(f"The premise is too long (the limit is {MAX_PREMISE_CHARS}).")
        return title, premise, get_preset(genre).key  # refuses unknown genres, listing them

    @staticmethod
    def _require_starter(config: GuildConfig, actor: Actor) -> None:
        if (
            config.starter_role_id is not None
            and config.starter_role_id not in actor.role_ids
            and not is_moderator(actor, config)
        ):
            raise PermissionDenied("Only members with the story-starter role can start stories.")

    def _check_start_text(
        self, config: GuildConfig, rating: ContentRating, where: Where, title: str, premise: str
    ) -> None:
        self._store.guard.check(config, rating, title, TextKind.TITLE, where)
        if premise:
            self._store.guard.check(config, rating, premise, TextKind.PREMISE, where)

    async def join(self, channel_id: int, actor: Actor) -> SessionView:
        """Add the actor to the rotation (at its end), or bring them back from away."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_status(
                loaded, SessionStatus.LOBBY, SessionStatus.ACTIVE, SessionStatus.PAUSED
            )
            story = loaded.story
            was_empty = not active_seats(story.participants)
            me = loaded.participant_of(actor.user_id)
            last_order = max((p.join_order for p in story.participants), default=0)
            if me is None:
                me = new_participant(actor, join_order=last_order + 1)
                story.participants.append(me)
            elif me.status == ParticipantStatus.ACTIVE:
                raise InvalidState("You are already in this story.")
            elif me.status == ParticipantStatus.LEFT:
                # Someone who left re-enters at the end of the rotation.
                me.join_order = last_order + 1
                me.status = ParticipantStatus.ACTIVE
            else:
                # Back from away: keep their place.
                me.status = ParticipantStatus.ACTIVE
            me.consecutive_timeouts = 0
            me.display_name = actor.display_name
            await db.flush()
            if story.status == SessionStatus.PAUSED and was_empty:
                # The story paused itself when everybody had gone; a returning player revives it.
                story.status = SessionStatus.ACTIVE
                self._store.set_current(loaded, me)
            return await self._store.refresh(db, story)

        return await self._store.transaction(work)

    async def leave(self, channel_id: int, actor: Actor) -> SessionView:
        """Take the actor out of the rotation; the turn passes on if it was theirs."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_status(
                loaded, SessionStatus.LOBBY, SessionStatus.ACTIVE, SessionStatus.PAUSED
            )
            story = loaded.story
            me = loaded.participant_of(actor.user_id)
            if me is None or me.status == ParticipantStatus.LEFT:
                raise InvalidState("You are not in this story.")
            was_current = story.current_participant_id == me.id
            me.status = ParticipantStatus.LEFT
            if story.host_id == actor.user_id:
                heir = next(iter(active_seats(story.participants)), None)
                if heir is not None:
                    story.host_id = heir.user_id
            if story.status == SessionStatus.ACTIVE and was_current:
                self._store.advance_from(loaded, me)
            elif story.status == SessionStatus.ACTIVE and not active_seats(story.participants):
                self._store.set_current(loaded, None)
            return await self._store.refresh(db, story)

        return await self._store.transaction(work)

    async def begin(self, channel_id: int, actor: Actor) -> SessionView:
        """Start play: the first player in join order has the turn."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_host(loaded, actor, "begin the story")
            self._store.require_status(loaded, SessionStatus.LOBBY)
            seats = active_seats(loaded.story.participants)
            if not seats:
                raise InvalidState("Nobody has joined the story yet.")
            loaded.story.status = SessionStatus.ACTIVE
            self._store.set_current(loaded, seats[0])
            return await self._store.refresh(db, loaded.story)

        return await self._store.transaction(work)

    async def pause(self, channel_id: int, actor: Actor) -> SessionView:
        """Stop the clock and refuse turns until resumed."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_host(loaded, actor, "pause the story")
            self._store.require_status(loaded, SessionStatus.ACTIVE)
            loaded.story.status = SessionStatus.PAUSED
            loaded.story.turn_deadline = None
            return await self._store.refresh(db, loaded.story)

        return await self._store.transaction(work)

    async def resume(self, channel_id: int, actor: Actor) -> SessionView:
        """Continue a paused story; the current player's clock starts afresh."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_host(loaded, actor, "resume the story")
            self._store.require_status(loaded, SessionStatus.PAUSED)
            current = loaded.current
            if current is None or current.status != ParticipantStatus.ACTIVE:
                after = current.join_order if current else 0
                current = next_after(loaded.story.participants, after)
            if current is None:
                raise InvalidState("Nobody is left in the rotation; players must join first.")
            loaded.story.status = SessionStatus.ACTIVE
            loaded.story.host_notice = None  # whatever paused it, the host has seen to it
            self._store.set_current(loaded, current)
            return await self._store.refresh(db, loaded.story)

        return await self._store.transaction(work)

    async def suspend(self, session_id: int, reason: str) -> SessionView | None:
        """Pause a story that cannot go on for a reason outside the players' hands.

        REASON (what went wrong and how to fix it) is kept for the host, who is told at
        their next command in the story, and recorded in the server's audit log. A story
        already paused for the same reason is left alone; an ended one is not touched.
        Returns the paused story, or None when nothing changed.
        """
        reason = reason.strip()[:MAX_HOST_NOTICE_CHARS]

        async def work(db: AsyncSession) -> SessionView | None:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if story.status == SessionStatus.ENDED:
                return None
            if story.status != SessionStatus.ACTIVE and story.host_notice == reason:
                return None
            if story.status == SessionStatus.ACTIVE:
                story.status = SessionStatus.PAUSED
                story.turn_deadline = None
            story.host_notice = reason
            return await self._store.refresh(db, story)

        view = await self._store.transaction(work)
        if view is not None:
            log.warning("session %s paused: %s", session_id, reason)
            where = Where(guild_id=view.guild_id, channel_id=view.channel_id, session_id=view.id)
            await self._store.guard.record(where, SUSPENDED_RULE, ViolationAction.PAUSED, reason)
        return view

    async def suspend_guild(self, guild_id: int, reason: str) -> list[SessionView]:
        """Pause every unfinished story of a server the bot can no longer reach (see suspend)."""
        async with self._store.sessions() as db:
            session_ids = await repo.open_session_ids_in_guild(db=db, guild_id=guild_id)
        paused = []
        for session_id in session_ids:
            view = await self.suspend(session_id, reason)
            if view is not None:
                paused.append(view)
        return paused

    async def depart(self, guild_id: int, user_id: int) -> list[DepartureOutcome]:
        """Mark a member who left the server away in each of its stories there.

        Their turn, if it was theirs, passes on at once instead of running out. They keep
        their place: once back on the server, `join` returns them to it. A host who left
        hands hosting to the earliest remaining player; nobody left pauses the story.
        """
        async with self._store.sessions() as db:
            session_ids = await repo.open_session_ids_seating(
                db=db, guild_id=guild_id, user_id=user_id
            )
        outcomes = []
        for session_id in session_ids:

            async def work(
                db: AsyncSession, session_id: int = session_id
            ) -> DepartureOutcome | None:
                loaded = await self._store.load(db, session_id=session_id)
                story = loaded.story
                seat = loaded.participant_of(user_id)
                # Re-checked under the lock: they may have left the story meanwhile.
                if (
                    story.status == SessionStatus.ENDED
                    or seat is None
                    or seat.status != ParticipantStatus.ACTIVE
                ):
                    return None
                had_turn = (
                    story.status == SessionStatus.ACTIVE and story.current_participant_id == seat.id
                )
                seat.status = ParticipantStatus.AWAY
                if story.host_id == user_id:
                    heir = next(iter(active_seats(story.participants)), None)
                    if heir is not None:
                        story.host_id = heir.user_id
                if had_turn:
                    self._store.advance_from(loaded, seat)
                    await repo.clear_skip_votes(db=db, session_id=story.id)
                elif story.status == SessionStatus.ACTIVE and not active_seats(story.participants):
                    self._store.set_current(loaded, None)
                return DepartureOutcome(
                    session=await self._store.refresh(db, story),
                    departed=ParticipantView.of(seat),
                    had_turn=had_turn,
                )

            outcome = await self._store.transaction(work)
            if outcome is not None:
                log.info(
                    "session %s: %s left the server (had the turn: %s)",
                    session_id,
                    user_id,
                    outcome.had_turn,
                )
                outcomes.append(outcome)
        return outcomes

    async def close_deleted_channel(self, channel_id: int) -> list[SessionView]:
        """End the stories of a deleted channel or thread (and of a deleted channel's threads).

        Each stays readable and exportable; the server's audit log says why it ended.
        """
        async with self._store.sessions() as db:
            session_ids = await repo.open_session_ids_played_in(db=db, channel_id=channel_id)
        ended = []
        for session_id in session_ids:

            async def work(db: AsyncSession, session_id: int = session_id) -> SessionView | None:
                loaded = await self._store.load(db, session_id=session_id)
                if loaded.story.status == SessionStatus.ENDED:
                    return None
                self._finish(loaded.story)
                return await self._store.refresh(db, loaded.story)

            view = await self._store.transaction(work)
            if view is None:
                continue
            log.warning("session %s ended: its channel %s was deleted", view.id, channel_id)
            where = Where(guild_id=view.guild_id, channel_id=view.channel_id, session_id=view.id)
            await self._store.guard.record(
                where, CHANNEL_DELETED_RULE, ViolationAction.ENDED, CHANNEL_DELETED_DETAIL
            )
            ended.append(view)
        return ended

    async def take_host_notice(self, channel_id: int, actor: Actor) -> str | None:
        """Return, once, why the actor's story in this channel was paused for them.

        Only the story's host gets it; it is gone once taken (or once the story resumes).
        """
        async with self._store.sessions() as db:
            story = await repo.get_open_session_in_channel(db=db, channel_id=channel_id)
            if story is None or story.host_id != actor.user_id or story.host_notice is None:
                return None
            session_id = story.id

        async def work(db: AsyncSession) -> str | None:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            notice = story.host_notice
            if notice is None or story.host_id != actor.user_id:
                return None  # another command of the host's took it first
            story.host_notice = None
            await db.flush()
            return notice

        return await self._store.transaction(work)

    async def end(self, channel_id: int, actor: Actor) -> SessionView:
        """Finish the story; it stays readable and exportable."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_host(loaded, actor, "end the story")
            self._finish(loaded.story)
            return await self._store.refresh(db, loaded.story)

        return await self._store.transaction(work)

    def _finish(self, story: StorySession) -> None:
        story.status = SessionStatus.ENDED
        story.ended_at = self._store.clock()
        story.turn_deadline = None
        story.narrator_job_id = None
        story.narrator_retry_turn = None
        story.current_participant_id = None

    async def set_authors_note(self, channel_id: int, actor: Actor, note: str) -> SessionView:
        """Set the author's note the narrator sees near the end of its prompt."""
        note = note.strip()
        if len(note) > MAX_AUTHORS_NOTE_CHARS:
            raise TurnRejected(
                f"The author's note is too long (the limit is {MAX_AUTHORS_NOTE_CHARS})."
            )

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_host(loaded, actor, "change the author's note")
            if note:
                self._store.check_content(loaded, actor, note, TextKind.AUTHORS_NOTE)
            loaded.story.authors_note = note
            return await self._store.refresh(db, loaded.story)

        return await self._store.transaction(work)
