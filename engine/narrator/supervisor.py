"""Watch every narration in flight: re-queue what the queue lost, hand back what waits too long.

A story waiting for its narrator holds a job id in the database; the job itself lives in
the queue. The two can part: Redis restarted without its data, a result could not be
stored while the database was down, a worker died with nobody to take over, or the
queue was unreachable when the job was asked for. Each sweep compares them:

- a job the queue no longer holds (for ``grace_sweeps`` sweeps in a row, so a result on
  its way is not mistaken for a loss) is queued again under the same id, so a late
  result of the first attempt is stored once and the second is ignored;
- after ``max_requeues`` such attempts, or once the narration has waited ``deadline_s``
  since this process first saw it, the turn is handed back to the players with a
  message saying why.

The same sweep runs once at start-up, without the grace, for narrations a previous
process promised but never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.narrator.coordinator import NarratorCoordinator
from engine.queue.errors import QueueUnavailable
from engine.story.queries import StoryQueries
from engine.story.views import NarrationRequest
from engine.telemetry.logs import log_context

log = logging.getLogger(__name__)

LOST_REASON = "the narrator's job was lost several times; the turn is yours again"
UNREACHABLE_REASON = "the narrator could not be reached; the turn is yours again"
LATE_REASON = "the narrator took too long; the turn is yours again"


@dataclass
class _Watch:
    """What this process knows of one pending narration."""

    job_id: str
    first_seen: float
    missing_sweeps: int = 0
    requeues: int = 0
    unreachable: bool = False


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    pending: int
    requeued: tuple[int, ...] = ()
    handed_back: tuple[int, ...] = ()


class NarrationSupervisor:
    """Give every pending narration a live job or, in bounded time, the turn back."""

    def __init__(
        self,
        narrator: NarratorCoordinator,
        queries: StoryQueries,
        *,
        interval_s: float = 5.0,
        grace_sweeps: int = 2,
        max_requeues: int = 3,
        deadline_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or grace_sweeps < 1 or max_requeues < 0 or deadline_s <= 0:
            raise ValueError("supervisor timings must be positive")
        self._narrator = narrator
        self._queries = queries
        self._interval_s = interval_s
        self._grace_sweeps = grace_sweeps
        self._max_requeues = max_requeues
        self._deadline_s = deadline_s
        self._clock = clock
        self._watches: dict[int, _Watch] = {}
        self._queue_down = False
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, *, startup: bool = False) -> SweepReport:
        """Check every pending narration once; at start-up, re-queue missing jobs at once."""
        pending = await self._queries.pending_narrations()
        now = self._clock()
        wanted = {request.session_id: request for request in pending}
        for session_id in list(self._watches):
            if session_id not in wanted:
                del self._watches[session_id]
        requeued: list[int] = []
        handed_back: list[int] = []
        unreachable = 0
        # Once the queue fails to answer in a sweep, the rest of the sweep does not wait
        # on it again: with many stories pending, an outage would make each sweep slow.
        self._queue_down = False
        for request in pending:
            watch = self._watches.get(request.session_id)
            if watch is None or watch.job_id != request.job_id:
                watch = self._watches[request.session_id] = _Watch(request.job_id, now)
            with log_context(story_id=request.session_id, job_id=request.job_id):
                try:
                    outcome = await self._check(request, watch, now, startup=startup)
                except Exception as error:
                    # One story's trouble (or an outage) must not stop the others' checks.
                    log.warning("could not check the pending narration: %r", error)
                    continue
            unreachable += watch.unreachable
            if outcome == "requeued":
                requeued.append(request.session_id)
            elif outcome == "handed back":
                handed_back.append(request.session_id)
                self._watches.pop(request.session_id, None)
        if unreachable:
            log.warning("the queue did not answer for %d pending narration(s)", unreachable)
        return SweepReport(len(pending), tuple(requeued), tuple(handed_back))

    async def _check(
        self, request: NarrationRequest, watch: _Watch, now: float, *, startup: bool
    ) -> str | None:
        if now - watch.first_seen >= self._deadline_s:
            log.warning(
                "narration still pending after %.0f s; handing the turn back",
                now - watch.first_seen,
            )
            await self._narrator.abandon(request, LATE_REASON)
            return "handed back"
        try:
            if self._queue_down:
                raise QueueUnavailable("the job queue", None)
            live = await self._narrator.has_live_job(request)
            watch.unreachable = False
        except QueueUnavailable as error:
            # Nobody can vouch for the job: counted as missing, so an outage that lasts
            # ends with the turn handed back rather than a story waiting in silence.
            log.debug("cannot ask the queue about the pending narration: %s", error)
            live, watch.unreachable, self._queue_down = False, True, True
        if live:
            watch.missing_sweeps = 0
            return None
        watch.missing_sweeps += 1
        if not startup and watch.missing_sweeps < self._grace_sweeps:
            return None
        if watch.requeues >= self._max_requeues:
            log.warning(
                "the narration's job was missing after %d attempts to queue it; "
                "handing the turn back",
                watch.requeues,
            )
            await self._narrator.abandon(
                request, UNREACHABLE_REASON if watch.unreachable else LOST_REASON
            )
            return "handed back"
        watch.requeues += 1
        watch.missing_sweeps = 0
        log.warning(
            "%s; queueing the pending narration's job again (attempt %d of %d)",
            "the queue cannot be reached" if watch.unreachable else "the queue lost its job",
            watch.requeues,
            self._max_requeues,
        )
        if self._queue_down or not await self._narrator.requeue(request):
            watch.unreachable = self._queue_down = True
        return "requeued"

    async def run(self) -> None:
        """Sweep every interval until cancelled; a failed sweep is logged and retried."""
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except Exception as error:
                log.warning("could not check pending narrations: %r", error)

    def start(self) -> None:
        """Sweep in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="narration-supervisor")

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
