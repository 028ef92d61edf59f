"""Bridge between the story engine and the job queue: enqueue narrator work, store results."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from typing import Any, Protocol

from engine.errors import StoryError, StoryUnavailable
from engine.narrator.context_builder import StoryContextBuilder
from engine.protocol.requests import NarrateRequest, SummariseRequest
from engine.protocol.sampling import SamplingSettings
from engine.queue.errors import QueueError, QueueFull, QueueUnavailable, SessionBusy
from engine.queue.interfaces import JobQueue
from engine.queue.jobs import GenerationJob, JobCompleted, JobEvent, JobFailed, JobProgress
from engine.rules.genres import get_preset
from engine.rules.guard import Where
from engine.safety import ContentPolicy, TextKind, strip_control_characters
from engine.story import StoryService
from engine.story.queries import StoryRules
from engine.story.views import NarrationOutcome, NarrationRequest, SessionView
from engine.telemetry.logs import log_context
from storage.models import ViolationAction

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
# Finished jobs remembered so a story letting go of one asks the queue nothing.
JOBS_REMEMBERED_OVER = 4096

# Stored instead of a passage the filters refused every time; the players carry on from it.
NEUTRAL_PASSAGE = "The scene shifts quietly, and the story waits for its next turn."


def summary_job_id(session_id: int, covers_through_turn: int) -> str:
    """Name a summary job after what it covers, so a restarted process can store its result."""
    return f"summary-{session_id}-{covers_through_turn}"


def parse_summary_job_id(job_id: str) -> int | None:
    """Return the last turn a summary job covers, or None for a foreign id."""
    prefix, _, covers = job_id.rpartition("-")
    return int(covers) if prefix.startswith("summary-") and covers.isdigit() else None


class NarratorBusy(StoryError):
    """The queue refused the job; the turn went back to the players (``session``, if known)."""

    def __init__(self, message: str, session: SessionView | None = None) -> None:
        super().__init__(message)
        self.session = session


class NarratorDelayed(NarratorBusy):
    """The queue is unreachable; the narration stays pending and is queued when it is back."""


DELAYED_MESSAGE = (
    "The narrator cannot be reached right now. Your turn is saved; the narrator will "
    "continue as soon as it is back, or the turn comes back to you."
)


class NarrationListener(Protocol):
    """What a front-end wants to hear about the narrator."""

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Show partial narrator text."""

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Show a stored narrator passage."""

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Tell the players the narrator could not speak and the turn is theirs."""

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Withdraw a filtered passage's partial text; when REPLACED, tell the host why."""


class NarratorCoordinator:
    """Turn narration requests into queue jobs and queue events into stored turns."""

    def __init__(
        self,
        *,
        service: StoryService,
        contexts: StoryContextBuilder,
        queue: JobQueue,
        listener: NarrationListener,
    ) -> None:
        self._service = service
        self._contexts = contexts
        self._queue = queue
        self._listener = listener
        # Narrations waiting for the session's previous or summary job to finish (one job
        # per session), with the id of the job they wait for.
        self._deferred: dict[int, NarrationRequest] = {}
        self._blockers: dict[int, str | None] = {}
        self._summary_jobs: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._handling: asyncio.Future[None] | None = None
        # Filtered passages per session since its last stored one (bounded by the server's limit).
        self._regenerations: dict[int, int] = {}
        # Jobs whose partial text broke a rule: nothing more of them is shown.
        self._hidden: set[str] = set()
        # Each running job's rules, read once when it is queued (or first seen after a
        # restart) instead of on every progress event; dropped with the job's final event
        # and whenever its server's rules change.
        self._job_rules: dict[str, tuple[StoryRules, ContentPolicy]] = {}
        # Jobs known to be over (their final event handled, or never queued), newest last:
        # a story that stops waiting for one of these has nothing to cancel.
        self._over: OrderedDict[str, None] = OrderedDict()
        self._withdrawals: set[asyncio.Task[None]] = set()

    async def _rules(self, session_id: int) -> tuple[StoryRules, ContentPolicy]:
        """Read a story and its server's rules once, with the content policy they make."""
        rules = await self._service.queries.content_rules(session_id)
        return rules, self._service.guard.policy(rules.config, rules.rating)

    async def _rules_of_job(self, session_id: int, job_id: str) -> tuple[StoryRules, ContentPolicy]:
        """Return the rules a job runs under, reading them only when not known yet."""
        known = self._job_rules.get(job_id)
        if known is None:
            known = self._job_rules[job_id] = await self._rules(session_id)
        return known

    def _mark_over(self, job_id: str) -> None:
        self._over[job_id] = None
        while len(self._over) > JOBS_REMEMBERED_OVER:
            self._over.popitem(last=False)

    def withdraw(self, job_ids: set[str]) -> None:
        """Cancel, in the queue, jobs that stories stopped waiting for and that may still run.

        Called after a commit (see StoryStore.on_jobs_replaced): a passage undone, skipped
        or ended mid-generation frees its worker's rows at the next step instead of running
        to its end. Best effort: a job the queue cannot cancel finishes and is ignored.
        """
        running = sorted(job_id for job_id in job_ids if job_id not in self._over)
        if not running:
            return
        task = asyncio.get_running_loop().create_task(
            self._cancel_in_queue(running), name="narrator-withdraw"
        )
        self._withdrawals.add(task)
        task.add_done_callback(self._withdrawals.discard)

    async def _cancel_in_queue(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            try:
                await self._queue.cancel(job_id)
            except QueueError as error:
                log.info("could not cancel job %s in the queue (%s)", job_id, error)
                return
            log.info("narrator job %s cancelled: its story no longer waits for it", job_id)

    def forget_rules(self, guild_id: int) -> None:
        """Drop the rules kept for a server's running jobs (its configuration changed)."""
        for job_id, (rules, _) in list(self._job_rules.items()):
            if rules.session.guild_id == guild_id:
                del self._job_rules[job_id]

    @staticmethod
    def _sampling(rules: StoryRules) -> dict[str, Any]:
        preset_sampling: dict[str, Any] = {}
        if rules.session.genre != "custom":
            preset_sampling = dict(get_preset(rules.session.genre).sampling)
        return {**preset_sampling, **rules.config.sampling}

    async def request(self, request: NarrationRequest) -> int:
        """Enqueue a narrator job and return its queue position (0 when deferred).

        A retry first uses a spare passage the previous job left (a runner-up
        candidate that still passes the rules): it is stored at once, and no job runs.
        """
        if request.retry_of_turn is not None and await self._use_spare(request):
            return 0
        rules, context = await self._contexts.narrator_job(
            request.session_id, retry_of_turn=request.retry_of_turn
        )
        policy = self._service.guard.policy(rules.config, rules.rating)
        self._job_rules[request.job_id] = (rules, policy)
        job = GenerationJob(
            job_id=request.job_id,
            session_id=request.session_id,
            guild_id=rules.session.guild_id,
            request=NarrateRequest(
                context=context,
                sampling=SamplingSettings(**self._sampling(rules)),
                # Blocked words are kept out of generation itself; the result is checked anyway.
                banned_phrases=policy.banned_phrases(),
            ),
        )
        try:
            return await self._queue.enqueue(job)
        except SessionBusy as busy:
            if self._summary_jobs and request.session_id in self._summary_jobs.values():
                self._defer(request, busy.job_id)
                log.info("session %s: narration waits for its summary job", request.session_id)
                return 0
            # Already queued earlier (a repeat request for the same pending job).
            position = await self._queue.position(request.job_id)
            if position is not None:
                return position
            # A job this story no longer wants (undone, skipped, ended) is still running:
            # this one follows as soon as that one's result comes back.
            self._defer(request, busy.job_id)
            log.info("session %s: narration waits for the story's previous job", request.session_id)
            return 0
        except QueueFull as exc:
            session = await self._give_up(request.session_id, request.job_id, "queue full")
            raise NarratorBusy(
                f"The narrator is busy: {exc.in_flight} stories are waiting. "
                "The turn is yours again; ask with `continue` in a moment.",
                session,
            ) from exc
        except QueueUnavailable as exc:
            # Nothing is lost: the story stays pending and the supervisor queues the job
            # again when the queue answers (or hands the turn back after a while). The
            # queue's address is the operator's business, not the players'.
            self._job_rules.pop(request.job_id, None)
            log.warning(
                "narration not queued now, will retry: %s",
                exc,
                extra={"story_id": request.session_id, "job_id": request.job_id},
            )
            raise NarratorDelayed(DELAYED_MESSAGE) from exc
        except QueueError as exc:
            session = await self._give_up(request.session_id, request.job_id, str(exc))
            raise NarratorBusy(
                "The narrator cannot take this story now; the turn is yours again. "
                "Ask with `continue` in a moment.",
                session,
            ) from exc

    def _defer(self, request: NarrationRequest, blocker: str | None) -> None:
        self._deferred[request.session_id] = request
        self._blockers[request.session_id] = blocker

    async def has_live_job(self, request: NarrationRequest) -> bool:
        """Tell whether the queue holds the narration's job, or the job it waits behind."""
        if await self._queue.position(request.job_id) is not None:
            return True
        deferred = self._deferred.get(request.session_id)
        if deferred is None or deferred.job_id != request.job_id:
            return False
        blocker = self._blockers.get(request.session_id)
        return blocker is not None and await self._queue.position(blocker) is not None

    async def requeue(self, request: NarrationRequest) -> bool:
        """Queue a pending narration's job again under its id (the queue lost it).

        Return False when the queue could not be reached.
        """
        self._deferred.pop(request.session_id, None)
        self._blockers.pop(request.session_id, None)
        return await self._request_unattended(request)

    async def _request_unattended(self, request: NarrationRequest) -> bool:
        """Ask for a narration no player is waiting on a reply for (a retry, a re-queue).

        Return False when the queue could not be reached (the narration stays pending).
        """
        try:
            await self.request(request)
        except NarratorDelayed:
            return False
        except NarratorBusy as busy:
            # Handed back already; nobody is waiting on a reply, so tell the table here.
            if busy.session is not None:
                await self._listener.narration_failed(busy.session, str(busy))
        return True

    async def abandon(self, request: NarrationRequest, reason: str) -> None:
        """Hand a pending narration's turn back to the players and tell them why."""
        self._deferred.pop(request.session_id, None)
        self._blockers.pop(request.session_id, None)
        self._job_rules.pop(request.job_id, None)
        session = await self._service.ledger.narration_failed(request.session_id, request.job_id)
        if session is not None:
            await self._listener.narration_failed(session, reason)

    async def _use_spare(self, request: NarrationRequest) -> bool:
        """Store a retried turn's spare passage for the request; False when there is none."""
        assert request.retry_of_turn is not None
        ledger = self._service.ledger
        spares = await ledger.spare_passages(request.session_id, request.retry_of_turn)
        if not spares:
            return False
        _, policy = await self._rules(request.session_id)
        for spare_id, text in spares:
            if not policy.check(text, TextKind.NARRATION).allowed:
                # The server's rules changed since it was kept: it can never be used.
                await ledger.drop_spare(request.session_id, spare_id)
                continue
            self._mark_over(request.job_id)  # answered without a job
            outcome = await ledger.record_narration(
                request.session_id, request.job_id, text, spare_id=spare_id
            )
            if outcome is None:
                return False
            log.info(
                "narrator retry answered with a spare passage",
                extra={"story_id": request.session_id, "job_id": request.job_id},
            )
            await self._listener.narration_stored(outcome)
            return True
        return False

    async def _give_up(self, session_id: int, job_id: str, reason: str) -> SessionView | None:
        self._job_rules.pop(job_id, None)
        self._mark_over(job_id)  # never queued
        log.warning("session %s: narration %s not queued (%s)", session_id, job_id, reason)
        return await self._service.ledger.narration_failed(session_id, job_id)

    async def handle(self, event: JobEvent) -> None:
        """Apply one queue event: store results, report progress and failures, then ack."""
        if isinstance(event, JobProgress):
            shown = await self._partial_to_show(event)
            if shown is not None:
                await self._listener.narration_progress(event.session_id, event.job_id, shown)
            return
        if isinstance(event, JobCompleted) and event.kind == "summarise":
            covers = parse_summary_job_id(event.job_id)
            if covers is not None:
                # Model noise such as a NUL byte would not store on PostgreSQL.
                await self._service.ledger.record_summary(
                    event.session_id, event.job_id, strip_control_characters(event.text), covers
                )
            await self._queue.ack(event)
            await self._after_summary(event.job_id)
            return
        if isinstance(event, JobCompleted):
            await self._store_narration(event)
            await self._release_deferred(event.session_id)
            return
        await self._handle_failure(event)
        await self._release_deferred(event.session_id)

    async def _partial_to_show(self, event: JobProgress) -> str | None:
        """Return the partial text cleaned for showing, or None when it must stay hidden."""
        if event.job_id in self._hidden:
            return None
        if await self._service.queries.pending_job(event.session_id) != event.job_id:
            # Cancelled (undo, skip, end) or replaced: its text will never be stored.
            return None
        _, policy = await self._rules_of_job(event.session_id, event.job_id)
        text = strip_control_characters(event.text)
        # The last word may still be growing ("as" of "astonished"): check whole words only.
        settled = text.rsplit(None, 1)[0] if " " in text.strip() else ""
        if not settled:
            return text
        if policy.check(settled, TextKind.NARRATION).allowed:
            return text
        self._hidden.add(event.job_id)
        return None

    async def _store_narration(self, event: JobCompleted) -> None:
        # Stray control characters and edge whitespace are model noise, not a rule broken on
        # purpose: drop them (Discord would not show the whitespace either).
        text = strip_control_characters(event.text).strip()
        rules, policy = await self._rules_of_job(event.session_id, event.job_id)
        self._job_rules.pop(event.job_id, None)  # the job is over, whatever happens next
        self._mark_over(event.job_id)
        verdict = policy.check(text, TextKind.NARRATION)
        replaced = False
        if not verdict.allowed:
            attempts = self._regenerations.get(event.session_id, 0) + 1
            self._regenerations[event.session_id] = attempts
            session = rules.session
            where = Where(
                guild_id=session.guild_id, channel_id=session.channel_id, session_id=session.id
            )
            detail = f"narration: matched {verdict.matched or '-'}; attempt {attempts}"
            if attempts <= rules.config.narrator_regenerations:
                retry = await self._service.ledger.regenerate_narration(
                    event.session_id, event.job_id
                )
                await self._service.guard.record(
                    where, verdict.rule or "unknown", ViolationAction.REGENERATED, detail
                )
                await self._queue.ack(event)
                self._hidden.discard(event.job_id)
                if retry is not None:
                    await self._listener.narration_filtered(session, event.job_id, False)
                    await self._request_unattended(retry)
                return
            await self._service.guard.record(
                where, verdict.rule or "unknown", ViolationAction.REPLACED, detail
            )
            text, replaced = NEUTRAL_PASSAGE, True
        self._regenerations.pop(event.session_id, None)
        self._hidden.discard(event.job_id)
        spares = () if replaced else self._allowed_spares(event, policy)
        outcome = await self._service.ledger.record_narration(
            event.session_id, event.job_id, text, spares=spares
        )
        await self._queue.ack(event)
        if outcome is not None and not outcome.duplicate:
            if replaced:
                await self._listener.narration_filtered(outcome.session, event.job_id, True)
            await self._listener.narration_stored(outcome)
            await self._maybe_summarise(event.session_id, rules)

    @staticmethod
    def _allowed_spares(event: JobCompleted, policy: ContentPolicy) -> tuple[str, ...]:
        """Return the job's runner-up passages that pass the story's rules."""
        offered = event.meta.get("alternatives")
        if not isinstance(offered, list):
            return ()
        cleaned = (strip_control_characters(t).strip() for t in offered if isinstance(t, str))
        return tuple(t for t in cleaned if t and policy.check(t, TextKind.NARRATION).allowed)

    async def _handle_failure(self, event: JobFailed) -> None:
        if event.kind == "summarise":
            await self._queue.ack(event)
            await self._after_summary(event.job_id)
            return
        self._job_rules.pop(event.job_id, None)
        self._mark_over(event.job_id)
        session = await self._service.ledger.narration_failed(event.session_id, event.job_id)
        await self._queue.ack(event)
        if session is not None:
            await self._listener.narration_failed(session, event.reason)

    async def _after_summary(self, job_id: str) -> None:
        session_id = self._summary_jobs.pop(job_id, None)
        if session_id is not None:
            await self._release_deferred(session_id)

    async def _release_deferred(self, session_id: int) -> None:
        """Enqueue the narration that waited for this story's previous job, if still wanted."""
        deferred = self._deferred.pop(session_id, None)
        self._blockers.pop(session_id, None)
        if deferred is None:
            return
        if await self._service.queries.pending_job(session_id) != deferred.job_id:
            return  # cancelled meanwhile
        await self._request_unattended(deferred)

    async def _maybe_summarise(self, session_id: int, rules: StoryRules) -> None:
        """Queue a summary job when old turns no longer fit, under the passage's own rules."""
        task = await self._contexts.summary_task(session_id)
        if task is None:
            return
        job = GenerationJob(
            job_id=summary_job_id(session_id, task.covers_through_turn),
            session_id=session_id,
            guild_id=rules.session.guild_id,
            request=SummariseRequest(
                previous_summary=task.previous_summary,
                turns=task.turns,
                sampling=SamplingSettings(**{**self._sampling(rules), "max_new_tokens": 256}),
            ),
        )
        try:
            await self._queue.enqueue(job)
        except QueueError as exc:
            # Not urgent: the next narrator passage tries again.
            log.info("session %s: summary not queued now (%s)", session_id, exc)
            return
        self._summary_jobs[job.job_id] = session_id

    async def run(self) -> None:
        """Consume queue events until cancelled; a failing event is logged, not fatal."""
        async for event in self._queue.events():
            # Shielded: stopping waits for an event's database work instead of cutting a
            # transaction in half.
            self._handling = asyncio.ensure_future(self._handle_logged(event))
            await asyncio.shield(self._handling)

    async def _handle_logged(self, event: JobEvent) -> None:
        with log_context(story_id=event.session_id, job_id=event.job_id):
            try:
                await self.handle(event)
            except StoryUnavailable as error:
                # The database is down: the event stays unacknowledged and is offered
                # again (the queue's redeliver_s), so nothing is lost; no traceback.
                log.warning(
                    "could not apply queue event %s now (%s); will retry", event.job_id, error
                )
            except Exception:
                log.exception("could not apply queue event %r", event)

    def start(self) -> None:
        """Consume events in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="narrator-events")

    async def stop(self) -> None:
        """Stop consuming events, letting the event being applied finish first."""
        if self._withdrawals:
            await asyncio.wait(set(self._withdrawals), timeout=STOP_GRACE_SECONDS)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        handling, self._handling = self._handling, None
        if handling is not None and not handling.done():
            try:
                await asyncio.wait_for(handling, timeout=STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("stopped while a queue event was still being applied")
