"""Wire the engine together from settings: database, services, queue, narrator, timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import NarrationListener, NarratorCoordinator
from engine.ops.database_admin import migrate
from engine.queue.factory import open_queue, open_worker_queue
from engine.queue.interfaces import BatchProcessor, JobQueue
from engine.rules.guild_config import GuildConfigService
from engine.rules.moderation import ModerationService
from engine.rules.throttles import RateLimits, Throttles
from engine.settings import Settings
from engine.story.service import Clock, SessionService, utc_now
from engine.story.timeout_scheduler import TimeoutListener, TurnTimeoutScheduler
from engine.worker.loop import WorkerLoop
from storage.database import create_engine, create_session_factory

log = logging.getLogger(__name__)

LoadProgress = Callable[[str], None]
ProcessorFactory = Callable[[], Awaitable[BatchProcessor]]
"""Builds the in-process worker's batch processor (tests pass a tiny model's)."""


@dataclass
class StoryRuntime:
    """Everything a front-end needs, opened and closed together."""

    db_engine: AsyncEngine
    sessions: SessionService
    configs: GuildConfigService
    contexts: StoryContextBuilder
    queue: JobQueue
    narrator: NarratorCoordinator
    timers: TurnTimeoutScheduler
    throttles: Throttles
    moderation: ModerationService
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _worker: WorkerLoop | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        listener: NarrationListener,
        on_timeout: TimeoutListener,
        clock: Clock = utc_now,
        load_progress: LoadProgress | None = None,
        processor_factory: ProcessorFactory | None = None,
        queue_limits: dict[str, object] | None = None,
    ) -> StoryRuntime:
        """Migrate the database, open the queue and, for memory://, start an in-process worker."""
        await migrate(settings.database_url)
        db_engine = create_engine(settings.database_url)
        factory = create_session_factory(db_engine)
        configs = GuildConfigService(factory)
        contexts = StoryContextBuilder(factory)
        queue = await open_queue(settings.queue_url, **(queue_limits or {}))
        throttles = Throttles(
            RateLimits(
                commands_per_minute=settings.commands_per_minute,
                turns_per_minute=settings.turns_per_minute,
                narrations_per_minute=settings.narrations_per_minute,
            )
        )
        sessions = SessionService(factory, clock=clock, throttles=throttles)
        timers = TurnTimeoutScheduler(sessions, on_timeout, clock=clock)
        sessions.on_change = timers.poke
        narrator = NarratorCoordinator(
            service=sessions, contexts=contexts, queue=queue, listener=listener
        )
        runtime = cls(
            db_engine=db_engine,
            sessions=sessions,
            configs=configs,
            contexts=contexts,
            queue=queue,
            narrator=narrator,
            timers=timers,
            throttles=throttles,
            moderation=ModerationService(factory, sessions.guard),
        )
        try:
            if settings.queue_url.startswith("memory://"):
                if processor_factory is None:
                    from engine.worker.main import load_processor

                    processor = await asyncio.to_thread(
                        load_processor, settings, load_progress
                    )
                else:
                    processor = await processor_factory()
                worker_queue = await open_worker_queue(settings.queue_url, **(queue_limits or {}))
                runtime._worker = WorkerLoop(worker_queue, processor)
                runtime._background.append(
                    asyncio.create_task(runtime._worker.run(), name="in-process-worker")
                )
            narrator.start()
            timers.start()
            await narrator.resume_pending()
        except BaseException:
            await runtime.close()
            raise
        return runtime

    async def close(self) -> None:
        """Stop background work and release connections."""
        await self.timers.stop()
        await self.narrator.stop()
        if self._worker is not None:
            self._worker.stop()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        await self.queue.close()
        await self.db_engine.dispose()
