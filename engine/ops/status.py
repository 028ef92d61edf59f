"""`taleweaver status`: the database migrated, the queue reachable, the workers alive.

Everything is read-only: the database is neither created nor migrated and the queue is
looked at without joining it, so the command is safe as a container health check.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.ops.database_admin import safe_url
from engine.queue.errors import QueueUnavailable
from engine.queue.factory import open_inspector
from engine.queue.presence import WorkerPresence
from engine.queue.stats import QueueStats
from storage.database import create_engine, create_session_factory
from storage.migrate import current_revision, head_revision
from storage.models import SessionStatus, StorySession

NEEDS = ("database", "queue", "workers", "host-worker")
"""What a caller may require: the database (reachable, at head), the queue (reachable),
a live worker anywhere, a live worker on this host (a worker container's health check)."""
DEFAULT_NEEDS = ("database", "queue")


@dataclass(frozen=True)
class StoryCounts:
    """Stories by state, and how many of them wait for a narrator passage."""

    by_state: dict[str, int]
    narrations_pending: dict[str, int]


async def count_stories(sessions: async_sessionmaker[AsyncSession]) -> StoryCounts:
    """Count the stories in each state and those with a narrator job pending."""
    query = select(
        StorySession.status, func.count(), func.count(StorySession.narrator_job_id)
    ).group_by(StorySession.status)
    async with sessions() as db:
        rows = (await db.execute(query)).all()
    by_state = {state.value: 0 for state in SessionStatus}
    pending = {state.value: 0 for state in SessionStatus}
    for state, total, waiting in rows:
        by_state[str(state)] = int(total)
        pending[str(state)] = int(waiting)
    return StoryCounts(by_state, pending)


@dataclass(frozen=True)
class DatabaseStatus:
    """The database as status found it."""

    url: str
    reachable: bool
    revision: str | None = None
    head: str | None = None
    error: str | None = None

    @property
    def at_head(self) -> bool:
        """Tell whether every migration has been applied."""
        return self.reachable and self.revision == self.head


@dataclass(frozen=True)
class QueueStatus:
    """The queue as status found it; an in-process queue cannot be seen from outside."""

    url: str
    in_process: bool
    reachable: bool
    stats: QueueStats | None = None
    workers: list[WorkerPresence] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """Everything `taleweaver status` prints, and what is wrong for the needs asked."""

    database: DatabaseStatus
    queue: QueueStatus
    stories: StoryCounts | None
    needs: tuple[str, ...]
    problems: list[str]
    checked_at: float

    @property
    def healthy(self) -> bool:
        """Tell whether everything needed is up."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        data = asdict(self)
        data["healthy"] = self.healthy
        data["database"]["at_head"] = self.database.at_head
        for worker in data["queue"]["workers"]:
            worker["seconds_since_seen"] = round(self.checked_at - worker["last_seen"], 1)
        return data

    def format(self) -> str:
        """Return the report as lines for a terminal."""
        db = self.database
        if db.reachable:
            behind = "" if db.at_head else f", head is {db.head}: run `taleweaver migrate`"
            db_line = f"ok    {db.url} at revision {db.revision or 'none (empty)'}{behind}"
        else:
            db_line = f"DOWN  {db.url}: {db.error}"
        lines = [f"database  {db_line}"]
        queue = self.queue
        if queue.in_process:
            lines.append(f"queue     in-process ({queue.url}): the bot runs its own worker")
        elif not queue.reachable:
            lines.append(f"queue     DOWN  {queue.url}: {queue.error}")
        else:
            stats = queue.stats
            assert stats is not None
            oldest = (
                "no jobs"
                if stats.oldest_job_age_s is None
                else f"oldest job {stats.oldest_job_age_s:.1f} s old"
            )
            lines.append(
                f"queue     ok    {queue.url}: {stats.waiting} waiting, {stats.running} running, "
                f"{oldest}, {stats.dead_letters} dead letters"
            )
            lines.append(f"workers   {len(queue.workers)} alive")
            for w in queue.workers:
                lines.append(
                    f"  {w.worker_id}  host {w.host}  {w.model} {w.quantization} on {w.device}, "
                    f"batch {w.max_batch}, {w.running_jobs} running, "
                    f"last seen {max(0.0, self.checked_at - w.last_seen):.1f} s ago"
                )
        if self.stories is not None:
            states = ", ".join(f"{n} {s}" for s, n in self.stories.by_state.items())
            pending = sum(self.stories.narrations_pending.values())
            lines.append(f"stories   {states}; {pending} waiting for the narrator")
        verdict = "healthy" if self.healthy else "UNHEALTHY: " + "; ".join(self.problems)
        lines.append(f"status    {verdict} (needs: {', '.join(self.needs)})")
        return "\n".join(lines)


def _is_file(path: str) -> bool:
    return os.path.isfile(os.path.expanduser(path))


async def _check_database(url: str) -> tuple[DatabaseStatus, StoryCounts | None]:
    shown = safe_url(url)
    head = head_revision()
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        # Connecting would create an empty file; a health check must not.
        if not await asyncio.to_thread(_is_file, parsed.database):
            error = f"no database file at {parsed.database} (run `taleweaver migrate`)"
            return DatabaseStatus(shown, False, head=head, error=error), None
    engine = create_engine(url)
    try:
        revision = await current_revision(engine)
        counts = None
        if revision is not None:
            counts = await count_stories(create_session_factory(engine))
        return DatabaseStatus(shown, True, revision=revision, head=head), counts
    except Exception as exc:  # any failure to connect or read is "down", in words
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        error = f"{type(exc).__name__}: {reason[0] if reason else ''}".rstrip(": ")
        return DatabaseStatus(shown, False, head=head, error=error), None
    finally:
        await engine.dispose()


async def _check_queue(url: str, limits: dict[str, Any]) -> QueueStatus:
    inspector = open_inspector(url, **limits)
    try:
        stats = await inspector.stats()
        workers = await inspector.workers()
    except QueueUnavailable as exc:
        return QueueStatus(inspector.url, inspector.in_process, False, error=str(exc.__cause__))
    finally:
        await inspector.close()
    return QueueStatus(inspector.url, inspector.in_process, True, stats, workers)


async def _bounded(work: Any, seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        return what


async def check_status(
    database_url: str,
    queue_url: str,
    *,
    needs: tuple[str, ...] = DEFAULT_NEEDS,
    timeout_s: float = 10.0,
    queue_limits: dict[str, Any] | None = None,
) -> StatusReport:
    """Look at the database and the queue (each within TIMEOUT_S) and judge them by NEEDS.

    QUEUE_LIMITS are QueueConfig fields (its key prefix) when the queue is not the default.
    """
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"unknown needs: {', '.join(sorted(unknown))}")
    db_result, queue = await asyncio.gather(
        _bounded(_check_database(database_url), timeout_s, "timeout"),
        _bounded(_check_queue(queue_url, queue_limits or {}), timeout_s, "timeout"),
    )
    if db_result == "timeout":
        db = DatabaseStatus(safe_url(database_url), False, head=head_revision(), error="timed out")
        stories = None
    else:
        db, stories = db_result
    if queue == "timeout":
        in_process = queue_url.startswith("memory://")
        queue = QueueStatus(queue_url.split("@")[-1], in_process, False, error="timed out")
    return StatusReport(db, queue, stories, needs, _problems(db, queue, needs), time.time())


def _problems(db: DatabaseStatus, queue: QueueStatus, needs: tuple[str, ...]) -> list[str]:
    problems = []
    if "database" in needs:
        if not db.reachable:
            problems.append("the database is unreachable")
        elif not db.at_head:
            problems.append(f"the database is at revision {db.revision}, not {db.head}")
    if queue.in_process:
        return problems  # the queue and its worker live inside the bot: nothing to reach
    if any(need in needs for need in ("queue", "workers", "host-worker")) and not queue.reachable:
        problems.append("the queue is unreachable")
    elif "workers" in needs and not queue.workers:
        problems.append("no worker is alive")
    elif "host-worker" in needs:
        host = socket.gethostname()
        if not any(w.host == host for w in queue.workers):
            problems.append(f"no worker is alive on this host ({host})")
    return problems
