"""A worker process with a slow fake model, for crash tests.

Usage: python slow_worker.py REDIS_URL KEY_PREFIX
It prints "ready" once connected, then generates for ~10 s per batch, reporting
progress every 50 ms, until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
import time

from engine.queue import GenerationJob, ProgressCallback, WorkerLoop, open_worker_queue


def slow_batch(jobs: list[GenerationJob], on_progress: ProgressCallback) -> list[tuple[str, str]]:
    for step in range(200):
        for job in jobs:
            on_progress(job.job_id, f"slow worker, step {step}")
        time.sleep(0.05)
    return [(job.job_id, "text from the slow worker") for job in jobs]


async def main(url: str, prefix: str) -> None:
    queue = await open_worker_queue(
        url,
        key_prefix=prefix,
        heartbeat_s=0.2,
        visibility_timeout_s=1.0,
        block_s=0.1,
        worker_name="slow-worker",
    )
    print("ready", flush=True)
    try:
        await WorkerLoop(queue, slow_batch, progress_interval_s=0.05).run()
    finally:
        await queue.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
