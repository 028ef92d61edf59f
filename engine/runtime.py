"""Wire the engine together from settings: database, services, queue, narrator, timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from engine.database import database_limits
from engine.export import ExportService
from engine.export.importer import import_story
from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import NarrationListener, NarratorCoordinator
from engine.narrator.supervisor import NarrationSupervisor
from engine.ops.database_admin import migrate
from engine.ops.metrics_sampler import OperationsSampler, count_database_errors
from engine.queue.factory import open_inspector, open_queue, open_worker_queue
from engine.queue.inspection import QueueInspector
from engine.queue.instrumented import InstrumentedProcessor, InstrumentedWorkerQueue
from engine.queue.interfaces import BatchProcessor, JobQueue
from engine.rules.guild_config import GuildConfigService
from engine.rules.moderation import ModerationService
from engine.rules.throttles import RateLimits, Throttles
from engine.settings import Settings
from engine.story import StoryService
from engine.story.clock import Clock, utc_now
from engine.story.deadlines import TimeoutListener, TurnTimeoutScheduler
from engine.story.views import SessionView
from engine.table import StoryTable
from engine.telemetry.metrics import MetricsEndpoint, start_metrics_endpoint
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
    story: StoryService
    table: StoryTable
    exports: ExportService
    configs: GuildConfigService
    contexts: StoryContextBuilder
    queue: JobQueue
    narrator: NarratorCoordinator
    supervisor: NarrationSupervisor
    timers: TurnTimeoutScheduler
    throttles: Throttles
    moderation: ModerationService
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _worker: WorkerLoop | None = None
    _metrics: MetricsEndpoint | None = None
    _inspector: QueueInspector | None = None

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
        db_engine = create_engine(settings.database_url, limits=database_limits(settings))
        factory = create_session_factory(db_engine)
        configs = GuildConfigService(factory)
        contexts = StoryContextBuilder(factory)
        count_database_errors(db_engine)
        queue = await open_queue(settings.queue_url, **(queue_limits or {}))
        limits = RateLimits(
            commands_per_minute=settings.commands_per_minute,
            turns_per_minute=settings.turns_per_minute,
            narrations_per_minute=settings.narrations_per_minute,
        )
        if settings.queue_url.startswith(("redis://", "rediss://")):
            # Every bot process behind this Redis enforces one limit.
            prefix = str((queue_limits or {}).get("key_prefix", "taleweaver"))
            throttles = Throttles.shared(settings.queue_url, limits, prefix=prefix)
        else:
            throttles = Throttles(limits)
        story = StoryService.create(factory, clock=clock, throttles=throttles)
        timers = TurnTimeoutScheduler(story.deadlines, on_timeout, clock=clock)
        story.store.on_change = timers.poke
        narrator = NarratorCoordinator(
            service=story, contexts=contexts, queue=queue, listener=listener
        )
        configs.subscribe(narrator.forget_rules)
        story.store.on_jobs_replaced = narrator.withdraw
        runtime = cls(
            db_engine=db_engine,
            story=story,
            table=StoryTable(story, narrator),
            exports=ExportService(story.queries, configs, clock=clock),
            configs=configs,
            contexts=contexts,
            queue=queue,
            narrator=narrator,
            supervisor=NarrationSupervisor(
                narrator,
                story.queries,
                interval_s=settings.narrator_check_interval_s,
                max_requeues=settings.narrator_requeues,
                deadline_s=settings.narrator_deadline_s,
            ),
            timers=timers,
            throttles=throttles,
            moderation=ModerationService(factory, story.guard, configs),
        )
        try:
            # Loading the content classifier takes about a second: in a thread, now, so
            # that the first content check does not stall the event loop.
            await story.guard.load_classifier()
            if settings.queue_url.startswith("memory://"):
                if processor_factory is None:
                    from engine.worker.main import load_processor

                    processor = await asyncio.to_thread(load_processor, settings, load_progress)
                else:
                    processor = await processor_factory()
                worker_queue = await open_worker_queue(settings.queue_url, **(queue_limits or {}))
                runtime._worker = WorkerLoop(
                    InstrumentedWorkerQueue(worker_queue), InstrumentedProcessor(processor)
                )
                runtime._background.append(
                    asyncio.create_task(runtime._worker.run(), name="in-process-worker")
                )
            narrator.start()
            timers.start()
            # Narrations a previous process promised but never queued, at once.
            await runtime.supervisor.sweep(startup=True)
            runtime.supervisor.start()
            if settings.metrics_port is not None:
                runtime._serve_metrics(settings, factory, queue_limits or {})
        except BaseException:
            await runtime.close()
            raise
        return runtime

    def _serve_metrics(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        queue_limits: dict[str, object],
    ) -> None:
        assert settings.metrics_port is not None
        self._metrics = start_metrics_endpoint(settings.metrics_host, settings.metrics_port)
        self._inspector = open_inspector(settings.queue_url, **queue_limits)
        sampler = OperationsSampler(sessions, self._inspector)
        self._background.append(asyncio.create_task(sampler.run(), name="metrics-sampler"))

    @property
    def metrics_port(self) -> int | None:
        """Return the port /metrics is served on, or None when it is off."""
        return self._metrics.port if self._metrics is not None else None

    async def close(self) -> None:
        """Stop background work and release connections."""
        await self.timers.stop()
        await self.supervisor.stop()
        await self.narrator.stop()
        if self._worker is not None:
            self._worker.stop()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._inspector is not None:
            await self._inspector.close()
            self._inspector = None
        await self.throttles.close()
        await self.queue.close()
        await self.db_engine.dispose()


@dataclass
class StoryShelf:
    """One database's stories for operator commands: no queue, narrator or timers."""

    db_engine: AsyncEngine
    story: StoryService
    exports: ExportService
    _sessions: async_sessionmaker[AsyncSession]

    async def import_story(
        self, data: bytes, *, guild_id: int | None = None, channel_id: int | None = None
    ) -> SessionView:
        """Add a story from a JSON export as a new story."""
        return await import_story(self._sessions, data, guild_id=guild_id, channel_id=channel_id)


@contextlib.asynccontextmanager
async def open_shelf(database_url: str) -> AsyncIterator[StoryShelf]:
    """Migrate the database (as every command that opens it does) and yield its stories."""
    await migrate(database_url)
    db_engine = create_engine(database_url)
    factory = create_session_factory(db_engine)
    story = StoryService.create(factory)
    try:
        yield StoryShelf(
            db_engine=db_engine,
            story=story,
            exports=ExportService(story.queries, GuildConfigService(factory)),
            _sessions=factory,
        )
    finally:
        await db_engine.dispose()
