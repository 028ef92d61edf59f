"""The bot's gauges that are read rather than counted: queue depth, workers, stories."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.ops.status import count_stories
from engine.queue.errors import QueueUnavailable
from engine.queue.inspection import QueueInspector
from engine.telemetry.metrics import (
    DATABASE_ERRORS,
    NARRATIONS_PENDING,
    QUEUE_DEAD_LETTERS,
    QUEUE_DEPTH,
    QUEUE_ERRORS,
    QUEUE_OLDEST_JOB_AGE,
    QUEUE_RUNNING,
    STORIES,
    WORKERS_ALIVE,
)

log = logging.getLogger(__name__)


def count_database_errors(engine: AsyncEngine) -> None:
    """Count every error the database raises through ENGINE, by its SQLAlchemy class."""

    def counted(context: Any) -> None:
        error = context.sqlalchemy_exception or context.original_exception
        DATABASE_ERRORS.labels(type(error).__name__).inc()

    event.listen(engine.sync_engine, "handle_error", counted)


class OperationsSampler:
    """Every few seconds, set the queue, worker and story gauges from what is there now."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inspector: QueueInspector,
        *,
        interval_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._inspector = inspector
        self._interval_s = interval_s

    async def sample(self) -> None:
        """Read the queue and the stories once and set the gauges."""
        try:
            stats = await self._inspector.stats()
            workers = await self._inspector.workers()
        except QueueUnavailable as error:
            QUEUE_ERRORS.labels("unavailable").inc()
            log.warning("metrics: cannot read the queue: %s", error)
        else:
            QUEUE_DEPTH.set(stats.waiting)
            QUEUE_RUNNING.set(stats.running)
            QUEUE_OLDEST_JOB_AGE.set(stats.oldest_job_age_s or 0.0)
            QUEUE_DEAD_LETTERS.set(stats.dead_letters)
            # An in-process queue always has its one worker inside this process.
            WORKERS_ALIVE.set(1 if self._inspector.in_process else len(workers))
        try:
            counts = await count_stories(self._sessions)
        except (DBAPIError, SQLAlchemyError, OSError) as error:
            log.warning("metrics: cannot count stories: %s", error)
            return
        for state, total in counts.by_state.items():
            STORIES.labels(state).set(total)
        for state, waiting in counts.narrations_pending.items():
            NARRATIONS_PENDING.labels(state).set(waiting)

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await self.sample()
            await asyncio.sleep(self._interval_s)
