"""A real model worker process over a tiny model, optionally slow, for crash tests.

Usage: python model_worker.py REDIS_URL KEY_PREFIX MODEL_DIR DELAY_S WORKER_NAME
It prints "ready" once the model is loaded and the queue connected. Before each batch
it reports progress and sleeps DELAY_S seconds, so a test can kill it mid-generation.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from engine.queue import GenerationJob, ProgressCallback, open_worker_queue
from engine.worker.loop import WorkerLoop
from engine.worker.model.generator import BatchGenerator
from engine.worker.model.loading import load_model
from engine.worker.processor import NarratorJobProcessor

QUEUE_TIMINGS = {"heartbeat_s": 0.2, "visibility_timeout_s": 1.0, "block_s": 0.1}


async def main(url: str, prefix: str, model_dir: str, delay_s: float, name: str) -> None:
    loaded = load_model(
        model_dir, quantization="none", device="cpu", cache_dir=Path(tempfile.mkdtemp())
    )
    processor = NarratorJobProcessor(BatchGenerator(loaded), seed=5)

    def slow(jobs: list[GenerationJob], on_progress: ProgressCallback):  # type: ignore[no-untyped-def]
        for job in jobs:
            on_progress(job.job_id, f"({name} is thinking)")
        time.sleep(delay_s)
        return processor(jobs, on_progress)

    queue = await open_worker_queue(url, key_prefix=prefix, worker_name=name, **QUEUE_TIMINGS)
    loop = WorkerLoop(queue, slow, progress_interval_s=0.05)
    loop.install_signal_handlers()
    print("ready", flush=True)
    try:
        await loop.run()
    finally:
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]))
