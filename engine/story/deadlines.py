"""Turn deadlines: timeouts, reminders, and the background task that applies them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from engine.errors import (
    StoryError,
)
from engine.rules.guild_config import GuildConfig
from engine.story.clock import Clock, utc_now
from engine.story.passage_votes import PassageVotes
from engine.story.store import StoryStore
from engine.story.views import (
    ParticipantView,
    SessionView,
    TimeoutOutcome,
    VoteClosed,
)
from storage import repositories as repo
from storage.models import (
    ParticipantStatus,
    SessionStatus,
)

log = logging.getLogger(__name__)

# A player is reminded once, when this share of their turn's time is left.
REMINDER_FRACTION = 0.25
# The turn timeout of a server that never stored its settings.
DEFAULT_TURN_TIMEOUT_SECONDS = GuildConfig().turn_timeout_seconds


@dataclass(frozen=True)
class TurnClocks:
    """Every running turn clock at one moment, read in one statement."""

    now: datetime
    # Stories whose current player ran out of time, and those due a reminder.
    overdue: tuple[int, ...] = ()
    reminders_due: tuple[int, ...] = ()
    # Stories whose vote on the narrator's passage is due to close.
    votes_due: tuple[int, ...] = ()
    # The soonest deadline and the soonest reminder, passed or not.
    next_deadline: datetime | None = None
    next_reminder: datetime | None = None
    # The soonest deadline or reminder still ahead: when to look again.
    wake_at: datetime | None = None


class TurnDeadlines:
    """Find and apply timeouts and reminders that have fallen due."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store
        self._votes = PassageVotes(store)

    async def read_clocks(self, *, reminders: bool = True) -> TurnClocks:
        """Read every running turn clock at once (one statement, however many stories)."""
        now = self._store.clock()
        async with self._store.sessions() as db:
            rows = await repo.running_clocks(db=db)
        overdue: list[int] = []
        due: list[int] = []
        votes_due: list[int] = []
        deadlines: list[datetime] = []
        reminder_times: list[datetime] = []
        for session_id, deadline, awaits_reminder, timeout, voting in rows:
            deadlines.append(deadline)
            if deadline <= now:
                (votes_due if voting else overdue).append(session_id)
                continue
            if not (reminders and awaits_reminder):
                continue
            at = reminder_time(deadline, timeout or DEFAULT_TURN_TIMEOUT_SECONDS)
            reminder_times.append(at)
            if at <= now:
                due.append(session_id)
        ahead = [at for at in (*deadlines, *reminder_times) if at > now]
        return TurnClocks(
            now=now,
            overdue=tuple(overdue),
            reminders_due=tuple(due),
            votes_due=tuple(votes_due),
            next_deadline=min(deadlines, default=None),
            next_reminder=min(reminder_times, default=None),
            wake_at=min(ahead, default=None),
        )

    async def expire_overdue(self, clocks: TurnClocks | None = None) -> list[TimeoutOutcome]:
        """Skip every player whose deadline has passed; mark repeat offenders away."""
        if clocks is None:
            clocks = await self.read_clocks(reminders=False)
        outcomes = []
        for session_id in clocks.overdue:
            try:
                outcome = await self._expire_one(session_id, clocks.now)
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
                or story.vote_turn is not None  # the vote closes; the player has not begun
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

    async def close_due_votes(self, clocks: TurnClocks | None = None) -> list[VoteClosed]:
        """Close every vote on a narrator passage whose time is up."""
        if clocks is None:
            clocks = await self.read_clocks(reminders=False)
        closed = []
        for session_id in clocks.votes_due:
            try:
                outcome = await self._votes.close(session_id, clocks.now)
            except StoryError as exc:
                log.info("vote of session %s not closed: %s", session_id, exc)
                continue
            if outcome is not None:
                closed.append(outcome)
        return closed

    async def next_reminder(self) -> datetime | None:
        """Return when the next turn reminder falls due."""
        return (await self.read_clocks()).next_reminder

    async def take_due_reminders(self, clocks: TurnClocks | None = None) -> list[SessionView]:
        """Return the stories whose current player should be reminded now (each turn once)."""
        if clocks is None:
            clocks = await self.read_clocks()
        now = clocks.now
        reminded = []
        for session_id in clocks.reminders_due:

            async def work(db: AsyncSession, session_id: int = session_id) -> SessionView | None:
                loaded = await self._store.load(db, session_id=session_id)
                story = loaded.story
                deadline = story.turn_deadline
                timeout = loaded.config.turn_timeout_seconds
                at = None if deadline is None else reminder_time(deadline, timeout)
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
        return (await self.read_clocks(reminders=False)).next_deadline


def reminder_time(deadline: datetime, timeout_seconds: int) -> datetime:
    """Return when a turn running out at DEADLINE gets its reminder."""
    return deadline - timedelta(seconds=timeout_seconds * REMINDER_FRACTION)


TimeoutListener = Callable[[TimeoutOutcome], Awaitable[None]]
ReminderListener = Callable[[SessionView], Awaitable[None]]
VoteListener = Callable[[VoteClosed], Awaitable[None]]


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
        # Called when a vote on a narrator passage has closed (front-ends set it).
        self.on_vote_closed: VoteListener | None = None
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
        outcomes, _ = await self._sweep()
        return outcomes

    async def _sweep(self) -> tuple[list[TimeoutOutcome], float]:
        """Apply what is due; return it and how long to sleep before looking again.

        One statement reads every clock; only a timeout or reminder that fell due costs
        its own transaction.
        """
        clocks = await self._deadlines.read_clocks(reminders=self.on_reminder is not None)
        outcomes = await self._deadlines.expire_overdue(clocks)
        for outcome in outcomes:
            try:
                await self._on_timeout(outcome)
            except Exception:
                log.exception("timeout listener failed for session %s", outcome.session.id)
        # Votes close whether or not a front-end listens: a story must not wait on one.
        votes = await self._deadlines.close_due_votes(clocks)
        for closed in votes:
            if self.on_vote_closed is None:
                continue
            try:
                await self.on_vote_closed(closed)
            except Exception:
                log.exception("vote listener failed for session %s", closed.session.id)
        reminded: list[SessionView] = []
        if self.on_reminder is not None:
            reminded = await self._deadlines.take_due_reminders(clocks)
            for session in reminded:
                try:
                    await self.on_reminder(session)
                except Exception:
                    log.exception("reminder listener failed for session %s", session.id)
        if outcomes or reminded or votes:
            # Those turns have new clocks the reading above did not see.
            return outcomes, 0.0
        if clocks.wake_at is None:
            return outcomes, self._max_sleep
        ahead = (clocks.wake_at - self._clock()).total_seconds()
        return outcomes, max(0.0, min(self._max_sleep, ahead))

    async def run(self) -> None:
        """Sweep until stop() asks the loop to end."""
        while not self._stopping:
            # Cleared before reading: a poke during the sweep is answered by the next one.
            self._wake.clear()
            try:
                _, delay = await self._sweep()
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
