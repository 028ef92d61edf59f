"""Turn deadlines: timeouts, reminders, and the background task that applies them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import (
    StoryError,
)
from engine.rules.guild_config import GuildConfig
from engine.story.clock import Clock, utc_now
from engine.story.store import StoryStore
from engine.story.views import (
    ParticipantView,
    SessionView,
    TimeoutOutcome,
)
from storage import repositories as repo
from storage.models import (
    ParticipantStatus,
    SessionStatus,
    StorySession,
)

log = logging.getLogger(__name__)

# A player is reminded once, when this share of their turn's time is left.
REMINDER_FRACTION = 0.25


class TurnDeadlines:
    """Find and apply timeouts and reminders that have fallen due."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def expire_overdue(self) -> list[TimeoutOutcome]:
        """Skip every player whose deadline has passed; mark repeat offenders away."""
        now = self._store.clock()
        async with self._store.sessions() as db:
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
            loaded = await self._store.load(db, session_id=session_id)
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
            self._store.advance_from(loaded, current)
            await repo.clear_skip_votes(db=db, session_id=story.id)
            log.info(
                "session %s: %s timed out (away=%s)", story.id, current.display_name, marked_away
            )
            return TimeoutOutcome(
                session=await self._store.refresh(db, story),
                skipped=skipped,
                marked_away=marked_away,
            )

        return await self._store.transaction(work)

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
        async with self._store.sessions() as db:
            return min((at for _, at in await self._unreminded(db)), default=None)

    async def take_due_reminders(self) -> list[SessionView]:
        """Return the stories whose current player should be reminded now (each turn once)."""
        now = self._store.clock()
        async with self._store.sessions() as db:
            due = [story.id for story, at in await self._unreminded(db) if at <= now]
        reminded = []
        for session_id in due:

            async def work(db: AsyncSession, session_id: int = session_id) -> SessionView | None:
                loaded = await self._store.load(db, session_id=session_id)
                story = loaded.story
                at = self._reminder_time(story, loaded.config)
                # Re-check under the lock: the turn may have been written meanwhile.
                if (
                    story.status != SessionStatus.ACTIVE
                    or story.narrator_pending
                    or loaded.current is None
                    or at is None
                    or at > now
                    # Out of time already: the timeout, not a reminder, is what comes next.
                    or (story.turn_deadline is not None and story.turn_deadline <= now)
                    or story.reminded_step == story.rotation_step
                ):
                    return None
                story.reminded_step = story.rotation_step
                return await self._store.refresh(db, story)

            try:
                view = await self._store.transaction(work)
            except StoryError as exc:
                log.info("reminder for session %s not sent: %s", session_id, exc)
                continue
            if view is not None:
                reminded.append(view)
        return reminded

    async def next_deadline(self) -> datetime | None:
        """Return the soonest turn deadline over all active stories."""
        async with self._store.sessions() as db:
            return await repo.earliest_deadline(db=db)


TimeoutListener = Callable[[TimeoutOutcome], Awaitable[None]]
ReminderListener = Callable[[SessionView], Awaitable[None]]


STOP_GRACE_SECONDS = 5.0
# Every story change pokes the scheduler, and a sweep reads the database: a burst of
# changes (many busy stories) is answered by one sweep this much later, not one each.
POKE_SETTLE_SECONDS = 0.05


class TurnTimeoutScheduler:
    """Sleep until the earliest stored deadline, expire overdue turns, repeat.

    Deadlines live in the database, so a restarted process simply resumes: the
    first sweep expires whatever fell due while it was down.
    """

    def __init__(
        self,
        deadlines: TurnDeadlines,
        on_timeout: TimeoutListener,
        *,
        clock: Clock = utc_now,
        max_sleep_seconds: float = 30.0,
        on_reminder: ReminderListener | None = None,
    ) -> None:
        self._deadlines = deadlines
        self._on_timeout = on_timeout
        # Called once per turn when a quarter of the player's time is left (front-ends set it).
        self.on_reminder = on_reminder
        self._clock = clock
        self._max_sleep = max_sleep_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Re-read deadlines now (call after anything that may have moved one)."""
        self._wake.set()

    async def sweep(self) -> list[TimeoutOutcome]:
        """Expire every overdue turn once and tell the listener about each."""
        outcomes = await self._deadlines.expire_overdue()
        for outcome in outcomes:
            try:
                await self._on_timeout(outcome)
            except Exception:
                log.exception("timeout listener failed for session %s", outcome.session.id)
        if self.on_reminder is not None:
            for session in await self._deadlines.take_due_reminders():
                try:
                    await self.on_reminder(session)
                except Exception:
                    log.exception("reminder listener failed for session %s", session.id)
        return outcomes

    async def _seconds_to_next_deadline(self) -> float:
        deadline = await self._deadlines.next_deadline()
        if self.on_reminder is not None:
            reminder = await self._deadlines.next_reminder()
            if reminder is not None and (deadline is None or reminder < deadline):
                deadline = reminder
        if deadline is None:
            return self._max_sleep
        return max(0.0, min(self._max_sleep, (deadline - self._clock()).total_seconds()))

    async def run(self) -> None:
        """Sweep until stop() asks the loop to end."""
        while not self._stopping:
            # Cleared before reading: a poke during the sweep is answered by the next one.
            self._wake.clear()
            try:
                await self.sweep()
                delay = await self._seconds_to_next_deadline()
            except Exception:
                log.exception("turn timeout sweep failed; retrying shortly")
                delay = min(5.0, self._max_sleep)
            if self._stopping:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))
            except TimeoutError:
                continue
            if not self._stopping:
                await asyncio.sleep(POKE_SETTLE_SECONDS)

    def start(self) -> None:
        """Run in the background."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="turn-timeouts")

    async def stop(self) -> None:
        """Stop the background task."""
        if self._task is None:
            return
        # Let a sweep finish its database work: cancelling inside a transaction can leave
        # the connection stuck. Cancel only a sweep that does not finish in time.
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_GRACE_SECONDS)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
