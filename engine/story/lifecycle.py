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
    SessionView,
)
from storage import repositories as repo
from storage.models import (
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
        title, premise = title.strip(), premise.strip()
        if not title:
            raise TurnRejected("A story needs a title.")
        if len(title) > MAX_TITLE_CHARS:
            raise TurnRejected(f"The title is too long (the limit is {MAX_TITLE_CHARS}).")
        if len(premise) > MAX_PREMISE_CHARS:
            raise TurnRejected(f"The premise is too long (the limit is {MAX_PREMISE_CHARS}).")
        genre = get_preset(genre).key  # refuses unknown genres, listing the valid ones

        async def work(db: AsyncSession) -> SessionView:
            config = GuildConfig.from_row(await repo.get_guild_settings(db=db, guild_id=guild_id))
            if (
                config.starter_role_id is not None
                and config.starter_role_id not in actor.role_ids
                and not is_moderator(actor, config)
            ):
                raise PermissionDenied(
                    "Only members with the story-starter role can start stories."
                )
            if await repo.get_open_session_in_channel(db=db, channel_id=channel_id):
                raise InvalidState("A story is already running in this channel.")
            rating = await self._store.rating(
                db, config, channel_id, parent_channel_id, age_restricted
            )
            where = Where(guild_id=guild_id, channel_id=channel_id, user_id=actor.user_id)
            self._store.guard.check(config, rating, title, TextKind.TITLE, where)
            if premise:
                self._store.guard.check(config, rating, premise, TextKind.PREMISE, where)
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
            story = loaded.story
            story.status = SessionStatus.ENDED
            story.ended_at = self._store.clock()
            story.turn_deadline = None
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            story.current_participant_id = None
            return await self._store.refresh(db, story)

        return await self._store.transaction(work)

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
