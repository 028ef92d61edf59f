"""`taleweaver worker` as the command line runs it, with a slow batch and its own key prefix.

Usage: python slow_cli_worker.py KEY_PREFIX DELAY_S (model and queue from TALEWEAVER_*).
Each batch reports progress, then sleeps DELAY_S before generating, so a test can
signal the worker while a job is in flight.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import engine.worker.main as worker_main
from bot.cli import main
from engine.queue.config import QueueConfig
from engine.queue.interfaces import BatchProcessor, ProgressCallback
from engine.queue.jobs import GenerationJob

TIMINGS: dict[str, Any] = {"heartbeat_s": 0.2, "block_s": 0.1}


def _slowed(load: Any, delay_s: float) -> Any:
    def load_slow(*args: Any, **kwargs: Any) -> BatchProcessor:
        processor = load(*args, **kwargs)

        def slow(jobs: list[GenerationJob], on_progress: ProgressCallback) -> Any:
            for job in jobs:
                on_progress(job.job_id, "(the narrator is thinking)")
            time.sleep(delay_s)
            return processor(jobs, on_progress)

        return slow

    return load_slow


if __name__ == "__main__":
    prefix, delay = sys.argv[1], float(sys.argv[2])
    worker_main.load_processor = _slowed(worker_main.load_processor, delay)
    worker_main.open_worker_queue = functools.partial(  # type: ignore[assignment]
        worker_main.open_worker_queue, key_prefix=prefix, **TIMINGS
    )
    worker_main.WorkerBeacon = functools.partial(  # type: ignore[misc]
        worker_main.WorkerBeacon, config=QueueConfig(key_prefix=prefix, **TIMINGS)
    )
    sys.exit(main(["worker", "--max-batch", "1"]))
