"""StoryTable: one engine call per player action that may wake the narrator.

Storing a turn and enqueueing the narrator's job belong together: a front-end that
stored the one and forgot (or failed before) the other left a story waiting for a
job that was never queued. Every front-end therefore goes through this table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.actors import Actor
from engine.database import database_of, unavailable
from engine.errors import StoryUnavailable
from engine.narrator.coordinator import NarratorBusy, NarratorCoordinator
from engine.story import StoryService
from engine.story.views import NarrationRequest, SessionView, TurnView

log = logging.getLogger(__name__)

TURN_NOT_SAVED = (
    "The story database is unreachable; your turn was not saved. Try again in a moment."
)
NARRATOR_NOT_ASKED = (
    "The story database did not answer, so the narrator could not be asked yet. "
    "It will continue once the database is back, or the turn comes back to you."
)


@dataclass(frozen=True)
class NarratorCall:
    """What became of asking the narrator: queued, or refused with a message for the players."""

    session_id: int
    job_id: str
    # 1 = next, 0 = running or waiting behind the story's previous job; None = not queued.
    position: int | None
    refusal: str | None = None

    @property
    def queued(self) -> bool:
        """Tell whether the narrator will answer (its job is queued or waiting its turn)."""
        return self.refusal is None


@dataclass(frozen=True)
class StoredTurn:
    """A player's turn as stored, before the narrator (if due) was asked."""

    session: SessionView
    turn: TurnView
    narrator_due: bool


@dataclass(frozen=True)
class TurnWritten:
    """A stored turn and, when the narrator was due, what became of asking it."""

    session: SessionView
    turn: TurnView
    narrator: NarratorCall | None


ShowTurn = Callable[[StoredTurn], Awaitable[None]]
"""Shows a stored turn before the narrator starts writing (a failure here is reported later)."""
Announce = Callable[[], Awaitable[None]]
"""Tells the table that the narrator was asked, before its job is queued."""


class StoryTable:
    """Write turns and call or retry the narrator: store, then enqueue, in one call."""

    def __init__(self, story: StoryService, narrator: NarratorCoordinator) -> None:
        self._story = story
        self._narrator = narrator

    async def write_turn(
        self,
        channel_id: int,
        actor: Actor,
        text: str,
        *,
        message_id: int | None = None,
        show: ShowTurn | None = None,
    ) -> TurnWritten:
        """Store the current player's turn and, when the narrator is due, queue its job.

        SHOW runs between the two so that the turn appears before the narrator's text;
        the job is queued even when SHOW fails, and SHOW's error is raised afterwards.
        """
        try:
            outcome = await self._story.turns.submit_turn(
                channel_id, actor, text, message_id=message_id
            )
        except StoryUnavailable as exc:
            raise StoryUnavailable(TURN_NOT_SAVED) from exc
        log.info(
            "turn %d stored for %s",
            outcome.turn.number,
            actor.user_id,
            extra={"story_id": outcome.session.id},
        )
        stored = StoredTurn(outcome.session, outcome.turn, outcome.narration is not None)
        failure = await _run_shown(show, stored) if show is not None else None
        call = await self._ask(outcome.narration) if outcome.narration is not None else None
        if failure is not None:
            raise failure
        return TurnWritten(session=outcome.session, turn=outcome.turn, narrator=call)

    async def call_narrator(
        self, channel_id: int, actor: Actor, *, announce: Announce | None = None
    ) -> NarratorCall:
        """Ask the narrator to speak now (any player, the host or a moderator)."""
        request = await self._story.ledger.request_narration(channel_id, actor)
        return await self._announced(request, announce)

    async def retry_narrator(
        self, channel_id: int, actor: Actor, *, announce: Announce | None = None
    ) -> NarratorCall:
        """Ask for another version of the narrator's latest passage; the old one is kept."""
        request = await self._story.ledger.retry_narration(channel_id, actor)
        return await self._announced(request, announce)

    async def _announced(
        self, request: NarrationRequest, announce: Announce | None
    ) -> NarratorCall:
        failure = await _run_shown(announce) if announce is not None else None
        call = await self._ask(request)
        if failure is not None:
            raise failure
        return call

    async def _ask(self, request: NarrationRequest) -> NarratorCall:
        try:
            position = await self._narrator.request(request)
        except NarratorBusy as busy:
            # The coordinator has handed the turn back to the players or, when the queue
            # is unreachable (NarratorDelayed), keeps it pending and queues it later.
            return NarratorCall(request.session_id, request.job_id, None, refusal=str(busy))
        except Exception as exc:
            # The turn (or the call) is stored and the story waits for this job; the
            # narrator's own reads may still find the database gone. The pending job is
            # queued again once the database answers, like one the queue could not take.
            if not isinstance(exc, StoryUnavailable) and (
                unavailable(exc, database_of(self._story.store.sessions)) is None
            ):
                raise
            return NarratorCall(
                request.session_id, request.job_id, None, refusal=NARRATOR_NOT_ASKED
            )
        log.info(
            "narrator job queued at position %s",
            position,
            extra={"story_id": request.session_id, "job_id": request.job_id},
        )
        return NarratorCall(request.session_id, request.job_id, position)


async def _run_shown(
    callback: Callable[..., Awaitable[None]], *args: object
) -> BaseException | None:
    """Run a front-end's display callback; return (not raise) what it failed with."""
    try:
        await callback(*args)
    except (Exception, asyncio.CancelledError) as exc:
        # Even a cancelled front-end task must not leave the story waiting for a job
        # that was never queued: the job is queued first, then this is raised.
        log.warning("a front-end's display step failed; the narrator is asked anyway: %r", exc)
        return exc
    return None
