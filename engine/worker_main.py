"""The `taleweaver worker` process: load the model once, then serve the Redis queue."""

from __future__ import annotations

import asyncio
import logging

from engine.queue.factory import open_worker_queue
from engine.queue.worker_loop import WorkerLoop
from engine.runtime import build_worker_loop_processor
from engine.settings import Settings

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, *, max_batch: int = 8) -> None:
    """Serve generation jobs until SIGTERM or SIGINT; never touches the story database."""
    print(f"Loading {settings.model} ({settings.quantization}, device {settings.device})…")
    processor = await asyncio.to_thread(build_worker_loop_processor, settings, print)
    queue = await open_worker_queue(settings.queue_url)
    loop = WorkerLoop(queue, processor, max_batch=max_batch)  # type: ignore[arg-type]
    loop.install_signal_handlers()
    print(f"Worker ready on {settings.queue_url.split('@')[-1]}; batches of up to {max_batch}.")
    try:
        await loop.run()
    finally:
        await queue.close()
