"""A worker process with a slow fake model, for crash tests.

Usage: python slow_worker.py REDIS_URL KEY_PREFIX [STEPS]
It spends STEPS x 50 ms (default 200) on each batch, reporting progress every
step, until it is killed; SIGTERM stops it after the batch in progress.
"""

from __future__ import annotations

import asyncio
import sys
import time

from engine.queue import (
    BatchOutcome,
    BatchProcessor,
    GenerationJob,
    ProgressCallback,
    open_worker_queue,
)
from engine.worker.loop import WorkerLoop


def slow_batch(steps: int) -> BatchProcessor:
    def process(jobs: list[GenerationJob], on_progress: ProgressCallback) -> list[BatchOutcome]:
        for step in range(steps):
            for job in jobs:
                on_progress(job.job_id, f"slow worker, step {step}")
            time.sleep(0.05)
        return [(job.job_id, "text from the slow worker") for job in jobs]

    return process


async def main(url: str, prefix: str, steps: int) -> None:
    queue = await open_worker_queue(
        url,
        key_prefix=prefix,
        heartbeat_s=0.2,
        visibility_timeout_s=1.0,
        block_s=0.1,
        worker_name="slow-worker",
    )
    loop = WorkerLoop(queue, slow_batch(steps), progress_interval_s=0.05)
    loop.install_signal_handlers()
    try:
        await loop.run()
    finally:
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200))
