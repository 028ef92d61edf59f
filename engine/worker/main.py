"""The `taleweaver worker` process: load the model once, then serve the Redis queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from engine.queue.factory import open_worker_queue
from engine.queue.interfaces import BatchProcessor
from engine.settings import Settings
from engine.worker.loop import WorkerLoop

log = logging.getLogger(__name__)

LoadProgress = Callable[[str], None]


def load_processor(
    settings: Settings, progress: LoadProgress | None = None, *, seed: int | None = None
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
    return NarratorJobProcessor(BatchGenerator(loaded), seed=seed)


async def run_worker(settings: Settings, *, max_batch: int = 8) -> None:
    """Serve generation jobs until SIGTERM or SIGINT; never touches the story database."""
    print(f"Loading {settings.model} ({settings.quantization}, device {settings.device})…")
    processor = await asyncio.to_thread(load_processor, settings, print)
    queue = await open_worker_queue(settings.queue_url)
    loop = WorkerLoop(queue, processor, max_batch=max_batch)
    loop.install_signal_handlers()
    print(f"Worker ready on {settings.queue_url.split('@')[-1]}; batches of up to {max_batch}.")
    try:
        await loop.run()
    finally:
        await queue.close()
