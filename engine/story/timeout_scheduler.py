"""Turn deadlines: a background task that reminds players and skips those whose time ran out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from engine.story.service import Clock, SessionService, utc_now
from engine.story.views import SessionView, TimeoutOutcome

log = logging.getLogger(__name__)

TimeoutListener = Callable[[TimeoutOutcome], Awaitable[None]]
ReminderListener = Callable[[SessionView], Awaitable[None]]


STOP_GRACE_SECONDS = 5.0


class TurnTimeoutScheduler:
    """Sleep until the earliest stored deadline, expire overdue turns, repeat.

    Deadlines live in the database, so a restarted process simply resumes: the
    first sweep expires whatever fell due while it was down.
    """

    def __init__(
        self,
        service: SessionService,
        on_timeout: TimeoutListener,
        *,
        clock: Clock = utc_now,
        max_sleep_seconds: float = 30.0,
        on_reminder: ReminderListener | None = None,
    ) -> None:
        self._service = service
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
        outcomes = await self._service.expire_overdue()
        for outcome in outcomes:
            try:
                await self._on_timeout(outcome)
            except Exception:
                log.exception("timeout listener failed for session %s", outcome.session.id)
        if self.on_reminder is not None:
            for session in await self._service.take_due_reminders():
                try:
                    await self.on_reminder(session)
                except Exception:
                    log.exception("reminder listener failed for session %s", session.id)
        return outcomes

    async def _seconds_to_next_deadline(self) -> float:
        deadline = await self._service.next_deadline()
        if self.on_reminder is not None:
            reminder = await self._service.next_reminder()
            if reminder is not None and (deadline is None or reminder < deadline):
                deadline = reminder
        if deadline is None:
            return self._max_sleep
        return max(0.0, min(self._max_sleep, (deadline - self._clock()).total_seconds()))

    async def run(self) -> None:
        """Sweep until stop() asks the loop to end."""
        while not self._stopping:
            try:
                await self.sweep()
                delay = await self._seconds_to_next_deadline()
            except Exception:
                log.exception("turn timeout sweep failed; retrying shortly")
                delay = min(5.0, self._max_sleep)
            if self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.01))

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
