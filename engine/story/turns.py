"""Players' turns: write, edit, undo, skip, and table talk kept for export."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.actors import Actor
from engine.errors import (
    AlreadyRecorded,
    InvalidState,
    NotYourTurn,
    PermissionDenied,
    SessionNotFound,
    TurnRejected,
)
from engine.rules.guild_config import GuildConfig
from engine.safety import TextKind
from engine.story.rotation import active_seats, next_after, wraps_round
from engine.story.store import LoadedStory, StoryStore
from engine.story.views import (
    ParticipantView,
    SkipOutcome,
    TableTalkView,
    TurnOutcome,
    TurnView,
    UndoOutcome,
)
from storage import repositories as repo
from storage.models import (
    NarratorCadence,
    Participant,
    ParticipantStatus,
    SessionStatus,
    SkipVote,
    TableTalk,
    Turn,
    TurnKind,
)

log = logging.getLogger(__name__)

MAX_TABLE_TALK_CHARS = 2000


class StoryTurns:
    """Write, edit, undo and skip turns; every call is one transaction."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

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

    def _require_current_player(self, loaded: LoadedStory, actor: Actor) -> Participant:
        self._store.require_status(loaded, SessionStatus.ACTIVE)
        if loaded.story.narrator_pending:
            raise NotYourTurn("The narrator is still writing; wait for its passage.")
        self._store.require_no_vote(loaded, NotYourTurn)
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
            loaded = await self._store.load(db, channel_id=channel_id)
            if message_id is not None and await repo.message_is_stored(
                db=db, session_id=loaded.story.id, message_id=message_id
            ):
                # Read twice (live and from the channel's history): kept once.
                raise AlreadyRecorded("This message is already part of the story.")
            writer = self._require_current_player(loaded, actor)
            clean = self._check_text(text, loaded.config)
            if self._store.throttles is not None:
                await self._store.throttles.turn(loaded.where(actor))
            self._store.check_content(loaded, actor, clean, TextKind.TURN)
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
                rotation_before=self._store.snapshot(story),
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
            narration = self._store.open_narration(story, None) if narrate else None
            self._store.set_current(loaded, following)
            await db.flush()
            await db.refresh(turn)
            return TurnOutcome(
                session=await self._store.refresh(db, story),
                turn=TurnView.of(turn),
                narration=narration,
            )

        try:
            return await self._store.transaction(work)
        except IntegrityError as exc:
            # The unique (session, number) constraint caught a concurrent writer.
            raise NotYourTurn("Another turn was just written; yours was not recorded.") from exc

    async def edit_turn(
        self, channel_id: int, actor: Actor, text: str, *, message_id: int | None = None
    ) -> TurnView:
        """Change the actor's own latest turn while no later turn exists."""

        async def work(db: AsyncSession) -> TurnView:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_status(loaded, SessionStatus.ACTIVE, SessionStatus.PAUSED)
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
            self._store.check_content(loaded, actor, clean, TextKind.TURN)
            last.text = clean
            last.edited_at = self._store.clock()
            await db.flush()
            return TurnView.of(last)

        return await self._store.transaction(work)

    async def set_turn_message(self, session_id: int, number: int, message_id: int) -> None:
        """Remember which chat message shows a turn."""

        async def work(db: AsyncSession) -> None:
            turn = await repo.get_turn(db=db, session_id=session_id, number=number)
            if turn is not None:
                turn.discord_message_id = message_id

        await self._store.transaction(work)

    async def undo(self, channel_id: int, actor: Actor) -> UndoOutcome:
        """Remove the latest turn and put the rotation back as it was before it."""

        async def work(db: AsyncSession) -> UndoOutcome:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_status(loaded, SessionStatus.ACTIVE, SessionStatus.PAUSED)
            self._store.require_no_vote(loaded)
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
                self._store.set_current(loaded, restored)
            elif restored is not None:
                story.current_participant_id = restored.id
                story.rotation_step += 1
            return UndoOutcome(session=await self._store.refresh(db, story), removed=removed)

        return await self._store.transaction(work)

    def _may_undo(self, loaded: LoadedStory, actor: Actor, last: Turn) -> bool:
        if self._store.has_host_powers(loaded, actor):
            return True
        if last.kind == TurnKind.PLAYER:
            return last.author_id == actor.user_id
        # A narrator turn may be undone by the player whose turn it answered.
        answered = loaded.participant(last.rotation_before.get("answered_participant_id"))
        return answered is not None and answered.user_id == actor.user_id

    async def skip(self, channel_id: int, actor: Actor) -> SkipOutcome:
        """Skip the current player: at once for the host or moderators, else by majority vote."""

        async def work(db: AsyncSession) -> SkipOutcome:
            loaded = await self._store.load(db, channel_id=channel_id)
            self._store.require_status(loaded, SessionStatus.ACTIVE)
            self._store.require_no_vote(loaded)
            story = loaded.story
            seats = active_seats(story.participants)
            needed = len(seats) // 2 + 1
            if self._store.has_host_powers(loaded, actor):
                if story.narrator_pending:
                    story.narrator_job_id = None
                    story.narrator_retry_turn = None
                    story.turn_deadline = self._store.deadline(loaded)
                    story.rotation_step += 1
                    return SkipOutcome(
                        session=await self._store.refresh(db, story),
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
                session=await self._store.refresh(db, story),
                skipped=None,
                votes=votes,
                votes_needed=needed,
            )

        return await self._store.transaction(work)

    async def _do_skip(self, loaded: LoadedStory, *, votes: int, needed: int) -> SkipOutcome:
        current = loaded.current
        assert current is not None
        skipped = ParticipantView.of(current)
        self._store.advance_from(loaded, current)
        await repo.clear_skip_votes(db=loaded.db, session_id=loaded.story.id)
        return SkipOutcome(
            session=await self._store.refresh(loaded.db, loaded.story),
            skipped=skipped,
            votes=votes,
            votes_needed=needed,
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
                loaded = await self._store.load(db, channel_id=channel_id)
            except SessionNotFound:
                return None  # chatter in a channel without a story
            player = loaded.participant_of(actor.user_id)
            if player is None:
                return None
            if message_id is not None and await repo.message_is_stored(
                db=db, session_id=loaded.story.id, message_id=message_id
            ):
                return None  # read twice (live and from the channel's history): kept once
            self._store.check_content(loaded, actor, text, TextKind.TABLE_TALK)
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

        return await self._store.transaction(work)
