"""The `taleweaver worker` process: load the model once, then serve the Redis queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.queue.factory import open_worker_queue
from engine.queue.instrumented import InstrumentedProcessor, InstrumentedWorkerQueue
from engine.queue.interfaces import BatchProcessor
from engine.queue.presence import WorkerBeacon, WorkerPresence
from engine.settings import Settings
from engine.telemetry.metrics import serve_metrics
from engine.worker.loop import WorkerLoop

log = logging.getLogger(__name__)

LoadProgress = Callable[[str], None]


def load_processor(
    settings: Settings,
    progress: LoadProgress | None = None,
    *,
    seed: int | None = None,
    max_jobs: int = 8,
) -> BatchProcessor:
    """Load the configured model and return the batch processor a WorkerLoop runs."""
    from engine.worker.model.generator import BatchGenerator
    from engine.worker.model.loading import load_model
    from engine.worker.processor import NarratorJobProcessor

    loaded = load_model(
        settings.model,
        quantization=settings.quantization,
        device=settings.device,
        cache_dir=settings.cache_dir,
        progress=progress,
    )
    return NarratorJobProcessor(
        BatchGenerator(loaded),
        seed=seed,
        candidates=settings.narrator_candidates,
        max_jobs=max_jobs,
        streaming=True,
    )


async def run_worker(settings: Settings, *, max_batch: int = 8) -> None:
    """Serve generation jobs until SIGTERM or SIGINT; never touches the story database."""
    print(f"Loading {settings.model} ({settings.quantization}, device {settings.device})…")
    from engine.worker.model.loading import resolve_device

    loaded = await asyncio.to_thread(load_processor, settings, print, max_jobs=max_batch)
    processor = InstrumentedProcessor(loaded)
    queue = InstrumentedWorkerQueue(await open_worker_queue(settings.queue_url))
    loop = WorkerLoop(queue, processor, max_batch=max_batch)
    loop.install_signal_handlers()
    presence = WorkerPresence.of_this_process(
        queue.name,
        model=settings.model,
        quantization=settings.quantization,
        device=resolve_device(settings.device),
        max_batch=max_batch,
    )
    print(f"Worker ready on {settings.queue_url.split('@')[-1]}; up to {max_batch} jobs at once.")
    try:
        with serve_metrics(settings.metrics_host, settings.metrics_port):
            beacon = WorkerBeacon(
                settings.queue_url, presence, running_jobs=lambda: processor.jobs_in_flight
            )
            async with beacon:
                await loop.run()
    finally:
        await queue.close()
