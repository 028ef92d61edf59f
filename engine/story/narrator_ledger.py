"""The narrator's ledger: which passage a story waits for, and what came back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.actors import Actor
from engine.errors import (
    InvalidState,
    PermissionDenied,
)
from engine.story.passage_votes import open_vote, vote_view
from engine.story.store import LoadedStory, StoryStore
from engine.story.views import (
    NarrationOutcome,
    NarrationRequest,
    SessionView,
    SummaryView,
    TurnView,
)
from storage import repositories as repo
from storage.models import (
    ParticipantStatus,
    SessionStatus,
    StorySummary,
    Turn,
    TurnAlternative,
    TurnKind,
)

log = logging.getLogger(__name__)

NARRATOR_NAME = "Narrator"


class NarratorLedger:
    """Record asked-for, delivered, failed and replaced narrator passages and summaries."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def _load_for_narration(
        self, db: AsyncSession, channel_id: int, actor: Actor, verb: str
    ) -> LoadedStory:
        """Load an active story whose narrator is idle, for a player, host or moderator."""
        loaded = await self._store.load(db, channel_id=channel_id)
        self._store.require_status(loaded, SessionStatus.ACTIVE)
        me = loaded.participant_of(actor.user_id)
        in_story = me is not None and me.status == ParticipantStatus.ACTIVE
        if not (in_story or self._store.has_host_powers(loaded, actor)):
            raise PermissionDenied(f"Only players in this story can {verb} the narrator.")
        if loaded.story.narrator_pending:
            raise InvalidState("The narrator is already writing.")
        self._store.require_no_vote(loaded)
        return loaded

    async def request_narration(self, channel_id: int, actor: Actor) -> NarrationRequest:
        """Ask the narrator to speak now (any player, the host or a moderator)."""

        async def work(db: AsyncSession) -> NarrationRequest:
            loaded = await self._load_for_narration(db, channel_id, actor, "call on")
            if self._store.throttles is not None:
                await self._store.throttles.narration(loaded.where(actor))
            return self._store.open_narration(loaded.story, None)

        return await self._store.transaction(work)

    async def retry_narration(self, channel_id: int, actor: Actor) -> NarrationRequest:
        """Ask for a new version of the latest narrator passage; the old one is kept."""

        async def work(db: AsyncSession) -> NarrationRequest:
            loaded = await self._load_for_narration(db, channel_id, actor, "retry")
            last = await repo.last_turn(db=db, session_id=loaded.story.id)
            if last is None or last.kind != TurnKind.NARRATOR:
                raise InvalidState("Only the narrator's latest passage can be retried.")
            if self._store.throttles is not None:
                await self._store.throttles.narration(loaded.where(actor))
            return self._store.open_narration(loaded.story, last.number)

        return await self._store.transaction(work)

    async def record_narration(
        self,
        session_id: int,
        job_id: str,
        text: str,
        *,
        spares: Sequence[str] = (),
        spare_id: int | None = None,
    ) -> NarrationOutcome | None:
        """Store the narrator's passage for a job; repeated deliveries change nothing.

        ``spares`` are the job's runner-up passages, kept as unseen versions of the turn;
        ``spare_id`` says ``text`` is such a spare of the retried turn, used now.
        """

        async def work(db: AsyncSession) -> NarrationOutcome | None:
            existing = await repo.turn_by_job(db=db, job_id=job_id)
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if existing is not None:
                await db.refresh(existing)
                return NarrationOutcome(
                    session=SessionView.of(story),
                    turn=TurnView.of(existing),
                    duplicate=True,
                    vote=vote_view(loaded, existing),
                )
            if story.narrator_job_id != job_id or story.status == SessionStatus.ENDED:
                log.info("session %s: result of stale job %s ignored", session_id, job_id)
                return None
            retry_of = story.narrator_retry_turn
            if retry_of is not None:
                turn = await repo.get_turn(db=db, session_id=story.id, number=retry_of)
                if turn is None:
                    return None
                if spare_id is not None:
                    used = next((a for a in turn.alternatives if a.id == spare_id), None)
                    if used is None or not used.spare:
                        return None  # already used by a concurrent retry
                    turn.alternatives.remove(used)
                turn.alternatives.append(TurnAlternative(text=turn.text, job_id=turn.job_id))
                turn.text = text
                turn.job_id = job_id
                turn.edited_at = self._store.clock()
            else:
                answered = await repo.last_turn(db=db, session_id=story.id)
                snapshot = self._store.snapshot(story)
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
            turn.alternatives.extend(TurnAlternative(text=spare, spare=True) for spare in spares)
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            if retry_of is None and story.status == SessionStatus.ACTIVE:
                open_vote(loaded, turn, self._store.clock())
            if story.status == SessionStatus.ACTIVE and loaded.current is not None:
                story.turn_deadline = self._store.deadline(loaded)
            await db.flush()
            await db.refresh(turn)
            return NarrationOutcome(
                session=await self._store.refresh(db, story),
                turn=TurnView.of(turn),
                duplicate=False,
                vote=vote_view(loaded, turn),
            )

        try:
            return await self._store.transaction(work)
        except IntegrityError:
            # A concurrent delivery of the same job stored it first.
            async with self._store.sessions() as db:
                existing = await repo.turn_by_job(db=db, job_id=job_id)
                story_row = await repo.get_session(db=db, session_id=session_id)
                if existing is None or story_row is None:
                    raise
                await db.refresh(existing)
                return NarrationOutcome(
                    session=SessionView.of(story_row), turn=TurnView.of(existing), duplicate=True
                )

    async def spare_passages(self, session_id: int, number: int) -> list[tuple[int, str]]:
        """Return the id and text of a narrator turn's unused spare versions, oldest first."""
        async with self._store.sessions() as db:
            turn = await repo.get_turn(db=db, session_id=session_id, number=number)
            if turn is None or turn.kind != TurnKind.NARRATOR:
                return []
            # The relationship is ordered by id: the runner-up ranked best comes first.
            return [(a.id, a.text) for a in turn.alternatives if a.spare]

    async def drop_spare(self, session_id: int, spare_id: int) -> None:
        """Forget a spare version that may no longer be shown."""

        async def work(db: AsyncSession) -> None:
            await self._store.load(db, session_id=session_id)  # the story's lock
            spare = await db.get(TurnAlternative, spare_id)
            if spare is not None and spare.spare:
                await db.delete(spare)

        await self._store.transaction(work)

    async def regenerate_narration(self, session_id: int, job_id: str) -> NarrationRequest | None:
        """Replace a pending narrator job whose text was filtered by a new job for the same turn."""

        async def work(db: AsyncSession) -> NarrationRequest | None:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if story.narrator_job_id != job_id:
                return None
            return self._store.open_narration(story, story.narrator_retry_turn)

        return await self._store.transaction(work)

    async def narration_failed(self, session_id: int, job_id: str) -> SessionView | None:
        """Give the turn back to the players when a narrator job could not be done."""

        async def work(db: AsyncSession) -> SessionView | None:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if story.narrator_job_id != job_id:
                return None
            story.narrator_job_id = None
            story.narrator_retry_turn = None
            if story.status == SessionStatus.ACTIVE and loaded.current is not None:
                story.turn_deadline = self._store.deadline(loaded)
            return await self._store.refresh(db, story)

        return await self._store.transaction(work)

    async def choose_alternative(
        self,
        session_id: int,
        actor: Actor,
        number: int,
        index: int,
        *,
        guild_id: int,
        channel_id: int,
    ) -> TurnView:
        """Swap a narrator turn's text with one of its earlier versions.

        The choice must come from the story's own server and channel (a front-end's
        control names the story it belongs to, and that name is not to be trusted), and
        an ended story's passages stay as they were.
        """

        async def work(db: AsyncSession) -> TurnView:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if story.guild_id != guild_id or story.channel_id != channel_id:
                raise InvalidState("That story is not played in this channel.")
            if story.status == SessionStatus.ENDED:
                raise InvalidState("The story has ended; its passages can no longer change.")
            me = loaded.participant_of(actor.user_id)
            if not (me is not None or self._store.has_host_powers(loaded, actor)):
                raise PermissionDenied("Only players in this story can choose a version.")
            turn = await repo.get_turn(db=db, session_id=session_id, number=number)
            if turn is None or turn.kind != TurnKind.NARRATOR:
                raise InvalidState("That narrator passage no longer exists.")
            if story.vote_turn == number:
                self._store.require_no_vote(loaded)
            if not 0 <= index < len(turn.alternatives):
                raise InvalidState("That version does not exist.")
            chosen = turn.alternatives[index]
            chosen.text, turn.text = turn.text, chosen.text
            chosen.job_id, turn.job_id = turn.job_id, chosen.job_id
            chosen.spare = False  # it now holds the version that was shown
            await db.flush()
            return TurnView.of(turn)

        return await self._store.transaction(work)

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

        return await self._store.transaction(work)
