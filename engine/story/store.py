"""Where every story change starts: one transaction, the story locked with its rules."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import object_session
from sqlalchemy.orm.exc import StaleDataError

from engine.actors import Actor
from engine.database import reporting_sessions
from engine.errors import (
    ConcurrentChange,
    InvalidState,
    PermissionDenied,
    SessionNotFound,
    StoryError,
)
from engine.protocol import new_job_id
from engine.rules.guard import ContentGuard, ContentRefused, RateLimited, Where, effective_rating
from engine.rules.guild_config import GuildConfig, is_moderator
from engine.rules.throttles import Throttles
from engine.safety import TextKind
from engine.story.channels import StoryChannels
from engine.story.clock import Clock, utc_now
from engine.story.rotation import next_after
from engine.story.views import NarrationRequest, SessionView
from storage import repositories as repo
from storage.models import (
    ContentRating,
    Participant,
    ParticipantStatus,
    SessionStatus,
    StorySession,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# db.info key: the channels a transaction found holding a story or not, kept until commit.
_CHANNELS_SEEN = "taleweaver.channels_seen"
_REPLACED_JOBS = "taleweaver.replaced_jobs"


@event.listens_for(StorySession.narrator_job_id, "set")
def _note_replaced_job(
    target: StorySession, value: object, old: object, _initiator: object
) -> None:
    """Remember, in the database session, each narrator job a story stops waiting for."""
    if isinstance(old, str) and old != value:
        session = object_session(target)
        if session is not None:
            session.info.setdefault(_REPLACED_JOBS, set()).add(old)


def new_participant(actor: Actor, *, join_order: int) -> Participant:
    """Return a fresh, active seat for ACTOR at JOIN_ORDER."""
    return Participant(
        user_id=actor.user_id,
        display_name=actor.display_name,
        join_order=join_order,
        status=ParticipantStatus.ACTIVE,
        consecutive_timeouts=0,
    )


@dataclass
class LoadedStory:
    """A locked story with its server's configuration, inside one transaction."""

    db: AsyncSession
    story: StorySession
    config: GuildConfig
    rating: ContentRating

    def where(self, actor: Actor | None = None) -> Where:
        """Return where an action on this story happens, for rate limits and the audit log."""
        return Where(
            guild_id=self.story.guild_id,
            channel_id=self.story.channel_id,
            session_id=self.story.id,
            user_id=actor.user_id if actor else None,
        )

    def participant_of(self, user_id: int) -> Participant | None:
        """Return the user's seat in this story, if any."""
        return next((p for p in self.story.participants if p.user_id == user_id), None)

    def participant(self, participant_id: int | None) -> Participant | None:
        """Return a seat by its id, if any."""
        return next((p for p in self.story.participants if p.id == participant_id), None)

    @property
    def current(self) -> Participant | None:
        """Return the seat whose turn it is."""
        return self.participant(self.story.current_participant_id)


class StoryStore:
    """Open transactions on stories and apply the rules every change shares."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        guard: ContentGuard | None = None,
        throttles: Throttles | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        # A database that does not answer ends every call in StoryUnavailable.
        self.sessions = reporting_sessions(sessions)
        self.clock = clock
        self.guard = guard if guard is not None else ContentGuard(self.sessions)
        # No rate limits unless the runtime sets them (scripted callers act fast on purpose).
        self.throttles = throttles
        # Called after a commit that may have moved a deadline (the timeout scheduler listens).
        self.on_change = on_change
        # Called after a commit with the narrator jobs its stories stopped waiting for
        # (passages stored, failed, undone, skipped, ended); the narrator cancels those
        # still running.
        self.on_jobs_replaced: Callable[[set[str]], None] | None = None
        # Which channels hold a story, so that chatter elsewhere costs no database work.
        self.channels = StoryChannels(self.sessions)

    async def transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run WORK in one transaction, retrying lost races; refusals are audited apart."""
        for attempt in range(3):
            try:
                async with self.sessions() as db, db.begin():
                    result = await work(db)
                    seen: dict[int, bool] = db.info.pop(_CHANNELS_SEEN, {})
                    replaced: set[str] = db.info.pop(_REPLACED_JOBS, set())
                for channel_id, holds_story in seen.items():
                    self.channels.note(channel_id, holds_story=holds_story)
                if self.on_change is not None:
                    self.on_change()
                if replaced and self.on_jobs_replaced is not None:
                    self.on_jobs_replaced(replaced)
                return result
            except StaleDataError:
                log.info("concurrent change detected, retrying (attempt %d)", attempt + 1)
            except ContentRefused as refused:
                # The story's transaction is rolled back; the audit record is kept on its own.
                await self.guard.record_refusal(refused)
                raise
            except RateLimited as limited:
                await self.guard.record_rate_limit(limited)
                raise
        raise ConcurrentChange("The story changed while you were acting; please try again.")

    async def load(
        self, db: AsyncSession, *, channel_id: int | None = None, session_id: int | None = None
    ) -> LoadedStory:
        """Lock a story (by id, or the open one of a channel) and read its rules with it."""
        if session_id is not None:
            story = await repo.get_session(db=db, session_id=session_id, for_update=True)
        else:
            assert channel_id is not None
            story = await repo.get_open_session_in_channel(
                db=db, channel_id=channel_id, for_update=True
            )
        if story is None:
            if session_id is not None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            raise SessionNotFound(
                "There is no story in this channel. Start one with `/story start`."
            )
        config, rating = await self.rules_of(db, story)
        return LoadedStory(db=db, story=story, config=config, rating=rating)

    @classmethod
    async def rules_of(
        cls, db: AsyncSession, story: StorySession
    ) -> tuple[GuildConfig, ContentRating]:
        """Read a story's server configuration and the content rating in force in its channel."""
        config = GuildConfig.from_row(await repo.get_guild_settings(db=db, guild_id=story.guild_id))
        rating = await cls.rating(
            db, config, story.channel_id, story.parent_channel_id, story.age_restricted
        )
        return config, rating

    @staticmethod
    async def rating(
        db: AsyncSession,
        config: GuildConfig,
        channel_id: int,
        parent_channel_id: int | None,
        age_restricted: bool,
    ) -> ContentRating:
        """Return the rating in force: a channel (or parent) override, else the server's."""
        override: ContentRating | None = None
        for channel in (channel_id, parent_channel_id):
            if channel is None:
                continue
            row = await repo.get_channel_settings(db=db, channel_id=channel)
            if row is not None and row.content_rating is not None:
                override = row.content_rating
                break
        return effective_rating(config, override, age_restricted=age_restricted)

    def check_content(
        self, loaded: LoadedStory, actor: Actor | None, text: str, kind: TextKind
    ) -> None:
        """Refuse TEXT when the story's content rules forbid it (the refusal is audited)."""
        self.guard.check(loaded.config, loaded.rating, text, kind, loaded.where(actor))

    def deadline(self, loaded: LoadedStory) -> datetime:
        """Return when a turn handed out now runs out (while a vote is open: when it closes).

        The next player's clock starts only once the players have chosen the passage.
        """
        story = loaded.story
        if story.vote_turn is not None and story.vote_closes_at is not None:
            return story.vote_closes_at
        return self.clock() + timedelta(seconds=loaded.config.turn_timeout_seconds)

    @staticmethod
    def require_no_vote(loaded: LoadedStory, error: type[StoryError] = InvalidState) -> None:
        """Refuse while the players are choosing the narrator's latest passage."""
        if loaded.story.vote_turn is not None:
            raise error(
                "The players are voting on the narrator's passage; "
                "the story goes on when the vote closes."
            )

    @staticmethod
    def has_host_powers(loaded: LoadedStory, actor: Actor) -> bool:
        """Tell whether ACTOR hosts the story or moderates its server."""
        return actor.user_id == loaded.story.host_id or is_moderator(actor, loaded.config)

    def require_host(self, loaded: LoadedStory, actor: Actor, action: str) -> None:
        """Refuse ACTION unless the actor has host powers."""
        if not self.has_host_powers(loaded, actor):
            raise PermissionDenied(f"Only the story's host or a moderator can {action}.")

    @staticmethod
    def require_status(loaded: LoadedStory, *allowed: SessionStatus) -> None:
        """Refuse unless the story is in one of the ALLOWED states, saying why."""
        status = loaded.story.status
        if status in allowed:
            return
        reasons = {
            SessionStatus.LOBBY: "The story has not begun yet; the host starts it with `begin`.",
            SessionStatus.PAUSED: "The story is paused; the host can `resume` it.",
            SessionStatus.ENDED: "The story has ended.",
            SessionStatus.ACTIVE: "The story is already under way.",
        }
        raise InvalidState(reasons[status])

    def set_current(self, loaded: LoadedStory, participant: Participant | None) -> None:
        """Hand the turn to PARTICIPANT (or pause when nobody is left) and restart the clock."""
        story = loaded.story
        story.rotation_step += 1
        if participant is None:
            story.current_participant_id = None
            story.turn_deadline = None
            if story.status == SessionStatus.ACTIVE:
                story.status = SessionStatus.PAUSED
                log.info("session %s paused: no active players left", story.id)
            return
        story.current_participant_id = participant.id
        story.turn_deadline = None if story.narrator_pending else self.deadline(loaded)

    def advance_from(self, loaded: LoadedStory, participant: Participant) -> None:
        """Hand the turn to the player after PARTICIPANT."""
        self.set_current(loaded, next_after(loaded.story.participants, participant.join_order))

    @staticmethod
    def snapshot(story: StorySession) -> dict[str, Any]:
        """Return the rotation state a turn keeps so that undoing it can restore it."""
        return {
            "current_participant_id": story.current_participant_id,
            "narrator_job_id": story.narrator_job_id,
            "narrator_retry_turn": story.narrator_retry_turn,
        }

    def open_narration(self, story: StorySession, retry_of: int | None) -> NarrationRequest:
        """Mark the story as waiting for a new narrator job and return its request."""
        story.narrator_job_id = new_job_id()
        story.narrator_retry_turn = retry_of
        story.turn_deadline = None  # the player's clock starts once the narrator has spoken
        return NarrationRequest(
            session_id=story.id, job_id=story.narrator_job_id, retry_of_turn=retry_of
        )

    @staticmethod
    async def refresh(db: AsyncSession, story: StorySession) -> SessionView:
        """Flush and return a fresh snapshot of the story (its channel is noted at commit)."""
        await db.flush()
        await db.refresh(story)
        seen = db.info.setdefault(_CHANNELS_SEEN, {})
        seen[story.channel_id] = story.status != SessionStatus.ENDED
        return SessionView.of(story)
