"""The story session service: the whole round-robin life cycle of a story."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from engine.actors import Actor
from engine.errors import (
    ConcurrentChange,
    InvalidState,
    NotYourTurn,
    PermissionDenied,
    SessionNotFound,
    StoryError,
    TurnRejected,
)
from engine.rules.genres import get_preset
from engine.rules.guard import ContentGuard, ContentRefused, RateLimited, Where, effective_rating
from engine.rules.guild_config import GuildConfig, is_moderator
from engine.rules.throttles import Throttles
from engine.safety import TextKind
from engine.story.rotation import active_seats, next_after, wraps_round
from engine.story.views import (
    LoreView,
    NarrationOutcome,
    NarrationRequest,
    ParticipantView,
    Recap,
    SessionView,
    SkipOutcome,
    StoryTranscript,
    SummaryView,
    TableTalkView,
    TimeoutOutcome,
    TurnOutcome,
    TurnView,
    UndoOutcome,
)
from storage import repositories as repo
from storage.models import (
    ContentRating,
    LoreEntry,
    NarratorCadence,
    Participant,
    ParticipantStatus,
    SessionStatus,
    SkipVote,
    StorySession,
    StorySummary,
    TableTalk,
    Turn,
    TurnAlternative,
    TurnKind,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

MAX_TITLE_CHARS = 200
MAX_PREMISE_CHARS = 2000
MAX_AUTHORS_NOTE_CHARS = 500
MAX_LORE_TEXT_CHARS = 1000
MAX_LORE_KEYWORDS = 10
MAX_TABLE_TALK_CHARS = 2000
# A player is reminded once, when this share of their turn's time is left.
REMINDER_FRACTION = 0.25
NARRATOR_NAME = "Narrator"


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """Return a fresh id for a generation job."""
    return uuid.uuid4().hex


def _new_participant(actor: Actor, *, join_order: int) -> Participant:
    return Participant(
        user_id=actor.user_id,
        display_name=actor.display_name,
        join_order=join_order,
        status=ParticipantStatus.ACTIVE,
        consecutive_timeouts=0,
    )


@dataclass(frozen=True)
class StoryRules:
    """A story with its server's configuration and the content rating in force there."""

    session: SessionView
    config: GuildConfig
    rating: ContentRating


@dataclass
class _Loaded:
    """A locked session with its guild configuration, inside one transaction."""

    db: AsyncSession
    story: StorySession
    config: GuildConfig
    rating: ContentRating

    def where(self, actor: Actor | None = None) -> Where:
        return Where(
            guild_id=self.story.guild_id,
            channel_id=self.story.channel_id,
            session_id=self.story.id,
            user_id=actor.user_id if actor else None,
        )

    def participant_of(self, user_id: int) -> Participant | None:
        return next((p for p in self.story.participants if p.user_id == user_id), None)

    def participant(self, participant_id: int | None) -> Participant | None:
        return next((p for p in self.story.participants if p.id == participant_id), None)

    @property
    def current(self) -> Participant | None:
        return self.participant(self.story.current_participant_id)


class SessionService:
    """Start, play and end stories; every method is one transaction and checks its rules."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        on_change: Callable[[], None] | None = None,
        guard: ContentGuard | None = None,
        throttles: Throttles | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.guard = guard if guard is not None else ContentGuard(sessions)
        # No rate limits unless the runtime sets them (scripted callers act fast on purpose).
        self._throttles = throttles
        # Called after a commit that may have moved a deadline (the timeout scheduler listens).
        self.on_change = on_change

    # Infrastructure ---------------------------------------------------------------------------
    async def _transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        for attempt in range(3):
            try:
                async with self._sessions() as db, db.begin():
                    result = await work(db)
                if self.on_change is not None:
                    self.on_change()
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

    async def _load(
        self, db: AsyncSession, *, channel_id: int | None = None, session_id: int | None = None
    ) -> _Loaded:
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
        row = await repo.get_guild_settings(db=db, guild_id=story.guild_id)
        config = GuildConfig.from_row(row)
        rating = await self._rating(
            db, config, story.channel_id, story.parent_channel_id, story.age_restricted
        )
        return _Loaded(db=db, story=story, config=config, rating=rating)

    @staticmethod
    async def _rating(
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

    def _check_content(
        self, loaded: _Loaded, actor: Actor | None, text: str, kind: TextKind
    ) -> None:
        self.guard.check(loaded.config, loaded.rating, text, kind, loaded.where(actor))

    def _deadline(self, loaded: _Loaded) -> datetime:
        return self._clock() + timedelta(seconds=loaded.config.turn_timeout_seconds)

    @staticmethod
    def _has_host_powers(loaded: _Loaded, actor: Actor) -> bool:
        return actor.user_id == loaded.story.host_id or is_moderator(actor, loaded.config)

    def _require_host(self, loaded: _Loaded, actor: Actor, action: str) -> None:
        if not self._has_host_powers(loaded, actor):
            raise PermissionDenied(f"Only the story's host or a moderator can {action}.")

    @staticmethod
    def _require_status(loaded: _Loaded, *allowed: SessionStatus) -> None:
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

    def _set_current(self, loaded: _Loaded, participant: Participant | None) -> None:
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
        story.turn_deadline = None if story.narrator_pending else self._deadline(loaded)

    def _advance_from(self, loaded: _Loaded, participant: Participant) -> None:
        self._set_current(loaded, next_after(loaded.story.participants, participant.join_order))

    def _snapshot(self, story: StorySession) -> dict[str, Any]:
        return {
            "current_participant_id": story.current_participant_id,
            "narrator_job_id": story.narrator_job_id,
            "narrator_retry_turn": story.narrator_retry_turn,
        }

    def _request_narration(self, story: StorySession, retry_of: int | None) -> NarrationRequest:
        story.narrator_job_id = new_job_id()
        story.narrator_retry_turn = retry_of
        story.turn_deadline = None  # the player's clock starts once the narrator has spoken
        return NarrationRequest(
            session_id=story.id, job_id=story.narrator_job_id, retry_of_turn=retry_of
        )

    @staticmethod
    async def _refresh(db: AsyncSession, story: StorySession) -> SessionView:
        await db.flush()
        await db.refresh(story)
        return SessionView.of(story)

    # Queries ----------------------------------------------------------------------------------
    async def get(self, session_id: int) -> SessionView:
        """Return a session by id."""
        async with self._sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            return SessionView.of(story)

    async def in_channel(self, channel_id: int) -> SessionView | None:
        """Return the unfinished session of a channel, if any."""
        async with self._sessions() as db:
            story = await repo.get_open_session_in_channel(db=db, channel_id=channel_id)
            return SessionView.of(story) if story else None

    async def list_sessions(self, guild_id: int | None = None) -> list[SessionView]:
        """Return sessions (of one server, or all), newest first."""
        async with self._sessions() as db:
            return [SessionView.of(s) for s in await repo.list_sessions(db=db, guild_id=guild_id)]

    async def recap(self, channel_id: int, *, turns: int = 6) -> Recap:
        """Return the status, the rolling summary and the latest turns of a channel's story."""
        async with self._sessions() as db:
            story = await repo.get_open_session_in_channel(db=db, channel_id=channel_id)
            if story is None:
                raise SessionNotFound("There is no story in this channel.")
            summary = await repo.latest_summary(db=db, session_id=story.id)
            recent = await repo.list_turns(db=db, session_id=story.id, limit=turns)
            return Recap(
                session=SessionView.of(story),
                summary=SummaryView.of(summary) if summary else None,
                recent_turns=tuple(TurnView.of(t) for t in recent),
            )

    async def transcript(self, session_id: int) -> StoryTranscript:
        """Return everything about a story, for export."""
        async with self._sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            turns = await repo.list_turns(db=db, session_id=session_id)
            lore = await repo.list_lore(db=db, session_id=session_id)
            summaries = await repo.list_summaries(db=db, session_id=session_id)
            talk = await repo.list_table_talk(db=db, session_id=session_id)
            return StoryTranscript(
                session=SessionView.of(story),
                turns=tuple(TurnView.of(t) for t in turns),
                lore=tuple(LoreView.of(e) for e in lore),
                summaries=tuple(SummaryView.of(s) for s in summaries),
                table_talk=tuple(TableTalkView.of(t) for t in talk),
            )

    async def record_table_talk(
        self, channel_id: int, actor: Actor, text: str, *, message_id: int | None = None
    ) -> TableTalkView | None:
        """Keep a player's out-of-character remark for export (others' chatter is not stored)."""
        text = text.strip()
        if not text:
            return None
        text = text[:MAX_TABLE_TALK_CHARS]

        async def work(db: AsyncSession) -> TableTalkView | None:
            try:
                loaded = await self._load(db, channel_id=channel_id)
            except SessionNotFound:
                return None  # chatter in a channel without a story
            player = loaded.participant_of(actor.user_id)
            if player is None:
                return None
            self._check_content(loaded, actor, text, TextKind.TABLE_TALK)
            story = loaded.story
            row = TableTalk(
                session_id=story.id,
                author_id=actor.user_id,
                author_name=player.display_name,
                text=text,
                after_turn=story.turn_count,
                discord_message_id=message_id,
            )
            db.add(row)
            await db.flush()
            await db.refresh(row)
            return TableTalkView.of(row)

        return await self._transaction(work)

    async def turns(self, session_id: int, *, after: int = 0) -> list[TurnView]:
        """Return a session's turns after number AFTER."""
        async with self._sessions() as db:
            rows = await repo.list_turns(db=db, session_id=session_id, after=after)
            return [TurnView.of(t) for t in rows]

    # Life cycle -------------------------------------------------------------------------------
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
            rating = await self._rating(db, config, channel_id, parent_channel_id, age_restricted)
            where = Where(guild_id=guild_id, channel_id=channel_id, user_id=actor.user_id)
            self.guard.check(config, rating, title, TextKind.TITLE, where)
            if premise:
                self.guard.check(config, rating, premise, TextKind.PREMISE, where)
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
            story.participants.append(_new_participant(actor, join_order=1))
            db.add(story)
            return await self._refresh(db, story)

        try:
            return await self._transaction(work)
        except IntegrityError as exc:
            # The partial unique index on open sessions per channel decided the race.
            raise InvalidState("A story is already running in this channel.") from exc

    async def join(self, channel_id: int, actor: Actor) -> SessionView:
        """Add the actor to the rotation (at its end), or bring them back from away."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_status(
                loaded, SessionStatus.LOBBY, SessionStatus.ACTIVE, SessionStatus.PAUSED
            )
            story = loaded.story
            was_empty = not active_seats(story.participants)
            me = loaded.participant_of(actor.user_id)
            last_order = max((p.join_order for p in story.participants), default=0)
            if me is None:
                me = _new_participant(actor, join_order=last_order + 1)
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
                self._set_current(loaded, me)
            return await self._refresh(db, story)

        return await self._transaction(work)

    async def leave(self, channel_id: int, actor: Actor) -> SessionView:
        """Take the actor out of the rotation; the turn passes on if it was theirs."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_status(
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
                self._advance_from(loaded, me)
            elif story.status == SessionStatus.ACTIVE and not active_seats(story.participants):
                self._set_current(loaded, None)
            return await self._refresh(db, story)

        return await self._transaction(work)

    async def begin(self, channel_id: int, actor: Actor) -> SessionView:
        """Start play: the first player in join order has the turn."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_host(loaded, actor, "begin the story")
            self._require_status(loaded, SessionStatus.LOBBY)
            seats = active_seats(loaded.story.participants)
            if not seats:
                raise InvalidState("Nobody has joined the story yet.")
            loaded.story.status = SessionStatus.ACTIVE
            self._set_current(loaded, seats[0])
            return await self._refresh(db, loaded.story)

        return await self._transaction(work)

    async def pause(self, channel_id: int, actor: Actor) -> SessionView:
        """Stop the clock and refuse turns until resumed."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_host(loaded, actor, "pause the story")
            self._require_status(loaded, SessionStatus.ACTIVE)
            loaded.story.status = SessionStatus.PAUSED
            loaded.story.turn_deadline = None
            return await self._refresh(db, loaded.story)

        return await self._transaction(work)

    async def resume(self, channel_id: int, actor: Actor) -> SessionView:
        """Continue a paused story; the current player's clock starts afresh."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_host(loaded, actor, "resume the story")
            self._require_status(loaded, SessionStatus.PAUSED)
            current = loaded.current
            if current is None or current.status != ParticipantStatus.ACTIVE:
                after = current.join_order if current else 0
                current = next_after(loaded.story.participants, after)
            if current is None:
                raise InvalidState("Nobody is left in the rotation; players must join first.")
            loaded.story.status = SessionStatus.ACTIVE
            self._set_current(loaded, current)
            return await self._refresh(db, loaded.story)

        return await self._transaction(work)

    async def end(self, channel_id: int, actor: Actor) -> SessionView:
        """Finish the story; it stays readable and exportable."""

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_host(loaded, actor, "end the story")
            story = loaded.story
            story.status = SessionStatus.ENDED
            story.ended_at = self._clock()
            story.turn_deadline = None
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            story.current_participant_id = None
            return await self._refresh(db, story)

        return await self._transaction(work)

    async def set_authors_note(self, channel_id: int, actor: Actor, note: str) -> SessionView:
        """Set the author's note the narrator sees near the end of its prompt."""
        note = note.strip()
        if len(note) > MAX_AUTHORS_NOTE_CHARS:
            raise TurnRejected(
                f"The author's note is too long (the limit is {MAX_AUTHORS_NOTE_CHARS})."
            )

        async def work(db: AsyncSession) -> SessionView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_host(loaded, actor, "change the author's note")
            if note:
                self._check_content(loaded, actor, note, TextKind.AUTHORS_NOTE)
            loaded.story.authors_note = note
            return await self._refresh(db, loaded.story)

        return await self._transaction(work)

    # Turns ------------------------------------------------------------------------------------
    @staticmethod
    def _check_text(text: str, config: GuildConfig) -> str:
        text = text.strip()
        if not text:
            raise TurnRejected("Your turn is empty; write something for the story.")
        if len(text) < config.min_turn_chars:
            raise TurnRejected(
                f"Your turn is too short ({len(text)} characters; "
                f"at least {config.min_turn_chars} are needed)."
            )
        if len(text) > config.max_turn_chars:
            raise TurnRejected(
                f"Your turn is too long ({len(text)} characters; "
                f"the limit is {config.max_turn_chars})."
            )
        return text

    def _require_current_player(self, loaded: _Loaded, actor: Actor) -> Participant:
        self._require_status(loaded, SessionStatus.ACTIVE)
        if loaded.story.narrator_pending:
            raise NotYourTurn("The narrator is still writing; wait for its passage.")
        current = loaded.current
        if current is None or current.user_id != actor.user_id:
            whose = current.display_name if current else "nobody"
            raise NotYourTurn(f"It is {whose}'s turn, not yours.")
        return current

    async def submit_turn(
        self,
        channel_id: int,
        actor: Actor,
        text: str,
        *,
        message_id: int | None = None,
    ) -> TurnOutcome:
        """Store the current player's turn and pass the turn on (the narrator first if due)."""

        async def work(db: AsyncSession) -> TurnOutcome:
            loaded = await self._load(db, channel_id=channel_id)
            writer = self._require_current_player(loaded, actor)
            clean = self._check_text(text, loaded.config)
            if self._throttles is not None:
                self._throttles.turn(loaded.where(actor))
            self._check_content(loaded, actor, clean, TextKind.TURN)
            story = loaded.story
            turn = Turn(
                session_id=story.id,
                number=story.turn_count + 1,
                kind=TurnKind.PLAYER,
                participant_id=writer.id,
                author_id=actor.user_id,
                author_name=writer.display_name,
                text=clean,
                discord_message_id=message_id,
                rotation_before=self._snapshot(story),
            )
            db.add(turn)
            story.turn_count = turn.number
            writer.consecutive_timeouts = 0
            following = next_after(story.participants, writer.join_order)
            cadence = loaded.config.narrator_cadence
            narrate = cadence == NarratorCadence.EVERY_TURN or (
                cadence == NarratorCadence.EVERY_ROUND
                and following is not None
                and wraps_round(writer.join_order, following.join_order)
            )
            narration = self._request_narration(story, None) if narrate else None
            self._set_current(loaded, following)
            await db.flush()
            await db.refresh(turn)
            return TurnOutcome(
                session=await self._refresh(db, story),
                turn=TurnView.of(turn),
                narration=narration,
            )

        try:
            return await self._transaction(work)
        except IntegrityError as exc:
            # The unique (session, number) constraint caught a concurrent writer.
            raise NotYourTurn("Another turn was just written; yours was not recorded.") from exc

    async def edit_turn(
        self, channel_id: int, actor: Actor, text: str, *, message_id: int | None = None
    ) -> TurnView:
        """Change the actor's own latest turn while no later turn exists."""

        async def work(db: AsyncSession) -> TurnView:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_status(loaded, SessionStatus.ACTIVE, SessionStatus.PAUSED)
            last = await repo.last_turn(db=db, session_id=loaded.story.id)
            if (
                last is None
                or last.kind != TurnKind.PLAYER
                or last.author_id != actor.user_id
                or (message_id is not None and last.discord_message_id != message_id)
            ):
                raise InvalidState(
                    "Only your latest turn can be edited, and only before the next one is written."
                )
            clean = self._check_text(text, loaded.config)
            self._check_content(loaded, actor, clean, TextKind.TURN)
            last.text = clean
            last.edited_at = self._clock()
            await db.flush()
            return TurnView.of(last)

        return await self._transaction(work)

    async def set_turn_message(self, session_id: int, number: int, message_id: int) -> None:
        """Remember which chat message shows a turn."""

        async def work(db: AsyncSession) -> None:
            turn = await repo.get_turn(db=db, session_id=session_id, number=number)
            if turn is not None:
                turn.discord_message_id = message_id

        await self._transaction(work)

    async def undo(self, channel_id: int, actor: Actor) -> UndoOutcome:
        """Remove the latest turn and put the rotation back as it was before it."""

        async def work(db: AsyncSession) -> UndoOutcome:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_status(loaded, SessionStatus.ACTIVE, SessionStatus.PAUSED)
            story = loaded.story
            last = await repo.last_turn(db=db, session_id=story.id)
            if last is None:
                raise InvalidState("There is no turn to undo.")
            if not self._may_undo(loaded, actor, last):
                raise PermissionDenied(
                    "You can undo only your own latest turn (or the narrator's reply to it); "
                    "the host and moderators can undo any."
                )
            removed = TurnView.of(last)
            before = last.rotation_before or {}
            await db.delete(last)
            story.turn_count = last.number - 1
            if last.kind == TurnKind.NARRATOR:
                # The job that wrote it is done: do not wait for it again.
                story.narrator_job_id = None
                story.narrator_retry_turn = None
            else:
                story.narrator_job_id = before.get("narrator_job_id")
                story.narrator_retry_turn = before.get("narrator_retry_turn")
            restored = loaded.participant(before.get("current_participant_id"))
            if restored is None or restored.status != ParticipantStatus.ACTIVE:
                after = restored.join_order if restored else 0
                restored = next_after(story.participants, after)
            if story.status == SessionStatus.ACTIVE:
                self._set_current(loaded, restored)
            elif restored is not None:
                story.current_participant_id = restored.id
                story.rotation_step += 1
            return UndoOutcome(session=await self._refresh(db, story), removed=removed)

        return await self._transaction(work)

    def _may_undo(self, loaded: _Loaded, actor: Actor, last: Turn) -> bool:
        if self._has_host_powers(loaded, actor):
            return True
        if last.kind == TurnKind.PLAYER:
            return last.author_id == actor.user_id
        # A narrator turn may be undone by the player whose turn it answered.
        answered = loaded.participant(last.rotation_before.get("answered_participant_id"))
        return answered is not None and answered.user_id == actor.user_id

    async def skip(self, channel_id: int, actor: Actor) -> SkipOutcome:
        """Skip the current player: at once for the host or moderators, else by majority vote."""

        async def work(db: AsyncSession) -> SkipOutcome:
            loaded = await self._load(db, channel_id=channel_id)
            self._require_status(loaded, SessionStatus.ACTIVE)
            story = loaded.story
            seats = active_seats(story.participants)
            needed = len(seats) // 2 + 1
            if self._has_host_powers(loaded, actor):
                if story.narrator_pending:
                    story.narrator_job_id = None
                    story.narrator_retry_turn = None
                    story.turn_deadline = self._deadline(loaded)
                    story.rotation_step += 1
                    return SkipOutcome(
                        session=await self._refresh(db, story),
                        skipped=None,
                        votes=0,
                        votes_needed=needed,
                        cancelled_narration=True,
                    )
                return await self._do_skip(loaded, votes=0, needed=needed)
            me = loaded.participant_of(actor.user_id)
            if me is None or me.status != ParticipantStatus.ACTIVE:
                raise PermissionDenied("Only players in this story can vote to skip a turn.")
            if story.narrator_pending:
                raise InvalidState("The narrator is writing; there is no player turn to skip.")
            voters = await repo.skip_voters(
                db=db, session_id=story.id, rotation_step=story.rotation_step
            )
            if actor.user_id in voters:
                raise InvalidState(
                    f"You have already voted to skip ({len(voters)} of {needed} votes)."
                )
            db.add(
                SkipVote(
                    session_id=story.id, rotation_step=story.rotation_step, voter_id=actor.user_id
                )
            )
            votes = len(voters) + 1
            if votes >= needed:
                return await self._do_skip(loaded, votes=votes, needed=needed)
            return SkipOutcome(
                session=await self._refresh(db, story),
                skipped=None,
                votes=votes,
                votes_needed=needed,
            )

        return await self._transaction(work)

    async def _do_skip(self, loaded: _Loaded, *, votes: int, needed: int) -> SkipOutcome:
        current = loaded.current
        assert current is not None
        skipped = ParticipantView.of(current)
        self._advance_from(loaded, current)
        await repo.clear_skip_votes(db=loaded.db, session_id=loaded.story.id)
        return SkipOutcome(
            session=await self._refresh(loaded.db, loaded.story),
            skipped=skipped,
            votes=votes,
            votes_needed=needed,
        )

    async def expire_overdue(self) -> list[TimeoutOutcome]:
        """Skip every player whose deadline has passed; mark repeat offenders away."""
        now = self._clock()
        async with self._sessions() as db:
            due = await repo.overdue_session_ids(db=db, now=now)
        outcomes = []
        for session_id in due:
            try:
                outcome = await self._expire_one(session_id, now)
            except StoryError as exc:
                log.info("timeout of session %s not applied: %s", session_id, exc)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def _expire_one(self, session_id: int, now: datetime) -> TimeoutOutcome | None:
        async def work(db: AsyncSession) -> TimeoutOutcome | None:
            loaded = await self._load(db, session_id=session_id)
            story = loaded.story
            # Re-check under the lock: a turn may have been written since the sweep looked.
            if (
                story.status != SessionStatus.ACTIVE
                or story.turn_deadline is None
                or story.turn_deadline > now
                or loaded.current is None
            ):
                return None
            current = loaded.current
            current.consecutive_timeouts += 1
            marked_away = current.consecutive_timeouts >= loaded.config.max_consecutive_timeouts
            if marked_away:
                current.status = ParticipantStatus.AWAY
            skipped = ParticipantView.of(current)
            self._advance_from(loaded, current)
            await repo.clear_skip_votes(db=db, session_id=story.id)
            log.info(
                "session %s: %s timed out (away=%s)", story.id, current.display_name, marked_away
            )
            return TimeoutOutcome(
                session=await self._refresh(db, story), skipped=skipped, marked_away=marked_away
            )

        return await self._transaction(work)

    # Reminders --------------------------------------------------------------------------------
    @staticmethod
    def _reminder_time(story: StorySession, config: GuildConfig) -> datetime | None:
        if story.turn_deadline is None:
            return None
        lead = timedelta(seconds=config.turn_timeout_seconds * REMINDER_FRACTION)
        return story.turn_deadline - lead

    async def _unreminded(self, db: AsyncSession) -> list[tuple[StorySession, datetime]]:
        pending = []
        for story in await repo.unreminded_sessions(db=db):
            row = await repo.get_guild_settings(db=db, guild_id=story.guild_id)
            at = self._reminder_time(story, GuildConfig.from_row(row))
            if at is not None:
                pending.append((story, at))
        return pending

    async def next_reminder(self) -> datetime | None:
        """Return when the next turn reminder falls due."""
        async with self._sessions() as db:
            return min((at for _, at in await self._unreminded(db)), default=None)

    async def take_due_reminders(self) -> list[SessionView]:
        """Return the stories whose current player should be reminded now (each turn once)."""
        now = self._clock()
        async with self._sessions() as db:
            due = [story.id for story, at in await self._unreminded(db) if at <= now]
        reminded = []
        for session_id in due:

            async def work(db: AsyncSession, session_id: int = session_id) -> SessionView | None:
                loaded = await self._load(db, session_id=session_id)
                story = loaded.story
                at = self._reminder_time(story, loaded.config)
                # Re-check under the lock: the turn may have been written meanwhile.
                if (
                    story.status != SessionStatus.ACTIVE
                    or story.narrator_pending
                    or loaded.current is None
                    or at is None
                    or at > now
                    or story.reminded_step == story.rotation_step
                ):
                    return None
                story.reminded_step = story.rotation_step
                return await self._refresh(db, story)

            try:
                view = await self._transaction(work)
            except StoryError as exc:
                log.info("reminder for session %s not sent: %s", session_id, exc)
                continue
            if view is not None:
                reminded.append(view)
        return reminded

    async def next_deadline(self) -> datetime | None:
        """Return the soonest turn deadline over all active stories."""
        async with self._sessions() as db:
            return await repo.earliest_deadline(db=db)

    # Narrator ---------------------------------------------------------------------------------
    async def _load_for_narration(
        self, db: AsyncSession, channel_id: int, actor: Actor, verb: str
    ) -> _Loaded:
        """Load an active story whose narrator is idle, for a player, host or moderator."""
        loaded = await self._load(db, channel_id=channel_id)
        self._require_status(loaded, SessionStatus.ACTIVE)
        me = loaded.participant_of(actor.user_id)
        in_story = me is not None and me.status == ParticipantStatus.ACTIVE
        if not (in_story or self._has_host_powers(loaded, actor)):
            raise PermissionDenied(f"Only players in this story can {verb} the narrator.")
        if loaded.story.narrator_pending:
            raise InvalidState("The narrator is already writing.")
        return loaded

    async def request_narration(self, channel_id: int, actor: Actor) -> NarrationRequest:
        """Ask the narrator to speak now (any player, the host or a moderator)."""

        async def work(db: AsyncSession) -> NarrationRequest:
            loaded = await self._load_for_narration(db, channel_id, actor, "call on")
            if self._throttles is not None:
                self._throttles.narration(loaded.where(actor))
            return self._request_narration(loaded.story, None)

        return await self._transaction(work)

    async def retry_narration(self, channel_id: int, actor: Actor) -> NarrationRequest:
        """Ask for a new version of the latest narrator passage; the old one is kept."""

        async def work(db: AsyncSession) -> NarrationRequest:
            loaded = await self._load_for_narration(db, channel_id, actor, "retry")
            last = await repo.last_turn(db=db, session_id=loaded.story.id)
            if last is None or last.kind != TurnKind.NARRATOR:
                raise InvalidState("Only the narrator's latest passage can be retried.")
            if self._throttles is not None:
                self._throttles.narration(loaded.where(actor))
            return self._request_narration(loaded.story, last.number)

        return await self._transaction(work)

    async def record_narration(
        self, session_id: int, job_id: str, text: str
    ) -> NarrationOutcome | None:
        """Store the narrator's passage for a job; repeated deliveries change nothing."""

        async def work(db: AsyncSession) -> NarrationOutcome | None:
            existing = await repo.turn_by_job(db=db, job_id=job_id)
            loaded = await self._load(db, session_id=session_id)
            story = loaded.story
            if existing is not None:
                await db.refresh(existing)
                return NarrationOutcome(
                    session=SessionView.of(story), turn=TurnView.of(existing), duplicate=True
                )
            if story.narrator_job_id != job_id or story.status == SessionStatus.ENDED:
                log.info("session %s: result of stale job %s ignored", session_id, job_id)
                return None
            retry_of = story.narrator_retry_turn
            if retry_of is not None:
                turn = await repo.get_turn(db=db, session_id=story.id, number=retry_of)
                if turn is None:
                    return None
                turn.alternatives.append(TurnAlternative(text=turn.text, job_id=turn.job_id))
                turn.text = text
                turn.job_id = job_id
                turn.edited_at = self._clock()
            else:
                answered = await repo.last_turn(db=db, session_id=story.id)
                snapshot = self._snapshot(story)
                if answered is not None and answered.kind == TurnKind.PLAYER:
                    snapshot["answered_participant_id"] = answered.participant_id
                turn = Turn(
                    session_id=story.id,
                    number=story.turn_count + 1,
                    kind=TurnKind.NARRATOR,
                    author_name=NARRATOR_NAME,
                    text=text,
                    job_id=job_id,
                    rotation_before=snapshot,
                )
                db.add(turn)
                story.turn_count = turn.number
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            if story.status == SessionStatus.ACTIVE and loaded.current is not None:
                story.turn_deadline = self._deadline(loaded)
            await db.flush()
            await db.refresh(turn)
            return NarrationOutcome(
                session=await self._refresh(db, story), turn=TurnView.of(turn), duplicate=False
            )

        try:
            return await self._transaction(work)
        except IntegrityError:
            # A concurrent delivery of the same job stored it first.
            async with self._sessions() as db:
                existing = await repo.turn_by_job(db=db, job_id=job_id)
                story_row = await repo.get_session(db=db, session_id=session_id)
                if existing is None or story_row is None:
                    raise
                await db.refresh(existing)
                return NarrationOutcome(
                    session=SessionView.of(story_row), turn=TurnView.of(existing), duplicate=True
                )

    async def regenerate_narration(self, session_id: int, job_id: str) -> NarrationRequest | None:
        """Replace a pending narrator job whose text was filtered by a new job for the same turn."""

        async def work(db: AsyncSession) -> NarrationRequest | None:
            loaded = await self._load(db, session_id=session_id)
            story = loaded.story
            if story.narrator_job_id != job_id:
                return None
            return self._request_narration(story, story.narrator_retry_turn)

        return await self._transaction(work)

    async def content_rules(self, session_id: int) -> StoryRules:
        """Return a story with its server's configuration and the rating in force there."""
        async with self._sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            config = GuildConfig.from_row(
                await repo.get_guild_settings(db=db, guild_id=story.guild_id)
            )
            rating = await self._rating(
                db, config, story.channel_id, story.parent_channel_id, story.age_restricted
            )
            return StoryRules(session=SessionView.of(story), config=config, rating=rating)

    async def narration_failed(self, session_id: int, job_id: str) -> SessionView | None:
        """Give the turn back to the players when a narrator job could not be done."""

        async def work(db: AsyncSession) -> SessionView | None:
            loaded = await self._load(db, session_id=session_id)
            story = loaded.story
            if story.narrator_job_id != job_id:
                return None
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            if story.status == SessionStatus.ACTIVE and loaded.current is not None:
                story.turn_deadline = self._deadline(loaded)
            return await self._refresh(db, story)

        return await self._transaction(work)

    async def choose_alternative(
        self, session_id: int, actor: Actor, number: int, index: int
    ) -> TurnView:
        """Swap a narrator turn's text with one of its earlier versions."""

        async def work(db: AsyncSession) -> TurnView:
            loaded = await self._load(db, session_id=session_id)
            me = loaded.participant_of(actor.user_id)
            if not (me is not None or self._has_host_powers(loaded, actor)):
                raise PermissionDenied("Only players in this story can choose a version.")
            turn = await repo.get_turn(db=db, session_id=session_id, number=number)
            if turn is None or turn.kind != TurnKind.NARRATOR:
                raise InvalidState("That narrator passage no longer exists.")
            if not 0 <= index < len(turn.alternatives):
                raise InvalidState("That version does not exist.")
            chosen = turn.alternatives[index]
            chosen.text, turn.text = turn.text, chosen.text
            chosen.job_id, turn.job_id = turn.job_id, chosen.job_id
            await db.flush()
            return TurnView.of(turn)

        return await self._transaction(work)

    async def record_summary(
        self, session_id: int, job_id: str, text: str, covers_through_turn: int
    ) -> SummaryView:
        """Store a new rolling summary version (idempotent on the job id)."""

        async def work(db: AsyncSession) -> SummaryView:
            existing = await repo.summary_by_job(db=db, job_id=job_id)
            if existing is not None:
                return SummaryView.of(existing)
            row = StorySummary(
                session_id=session_id,
                text=text.strip(),
                covers_through_turn=covers_through_turn,
                job_id=job_id,
            )
            db.add(row)
            await db.flush()
            await db.refresh(row)
            return SummaryView.of(row)

        return await self._transaction(work)

    async def latest_summary(self, session_id: int) -> SummaryView | None:
        """Return a story's current rolling summary."""
        async with self._sessions() as db:
            row = await repo.latest_summary(db=db, session_id=session_id)
            return SummaryView.of(row) if row else None

    # Lore -------------------------------------------------------------------------------------
    async def add_lore(
        self, channel_id: int, actor: Actor, name: str, keywords: list[str], text: str
    ) -> LoreView:
        """Add or replace a lore entry (players, the host and moderators)."""
        name, text = name.strip(), text.strip()
        clean_keywords = sorted({k.strip() for k in keywords if k.strip()}, key=str.casefold)
        if not name or len(name) > 100:
            raise TurnRejected("A lore entry needs a name of at most 100 characters.")
        if not text or len(text) > MAX_LORE_TEXT_CHARS:
            raise TurnRejected(
                f"A lore entry needs a text of at most {MAX_LORE_TEXT_CHARS} characters."
            )
        if len(clean_keywords) > MAX_LORE_KEYWORDS:
            raise TurnRejected(f"At most {MAX_LORE_KEYWORDS} keywords per lore entry.")
        if not clean_keywords:
            clean_keywords = [name]

        async def work(db: AsyncSession) -> LoreView:
            loaded = await self._load(db, channel_id=channel_id)
            me = loaded.participant_of(actor.user_id)
            if not (me is not None or self._has_host_powers(loaded, actor)):
                raise PermissionDenied("Only players in this story can add lore.")
            lore_text = "\n".join([name, *clean_keywords, text])
            self._check_content(loaded, actor, lore_text, TextKind.LORE)
            entry = await repo.get_lore(db=db, session_id=loaded.story.id, name=name)
            if entry is None:
                entry = LoreEntry(session_id=loaded.story.id, name=name, created_by=actor.user_id)
                db.add(entry)
            elif entry.created_by != actor.user_id and not self._has_host_powers(loaded, actor):
                raise PermissionDenied(f"Lore entry {name!r} belongs to someone else.")
            entry.keywords = clean_keywords
            entry.text = text
            await db.flush()
            return LoreView.of(entry)

        return await self._transaction(work)

    async def list_lore(self, session_id: int) -> list[LoreView]:
        """Return a story's lore entries."""
        async with self._sessions() as db:
            return [LoreView.of(e) for e in await repo.list_lore(db=db, session_id=session_id)]

    async def remove_lore(self, channel_id: int, actor: Actor, name: str) -> None:
        """Delete a lore entry (its author, the host or a moderator)."""

        async def work(db: AsyncSession) -> None:
            loaded = await self._load(db, channel_id=channel_id)
            entry = await repo.get_lore(db=db, session_id=loaded.story.id, name=name.strip())
            if entry is None:
                raise InvalidState(f"There is no lore entry named {name!r}.")
            if entry.created_by != actor.user_id and not self._has_host_powers(loaded, actor):
                raise PermissionDenied("Only its author, the host or a moderator can remove it.")
            await db.delete(entry)

        await self._transaction(work)
