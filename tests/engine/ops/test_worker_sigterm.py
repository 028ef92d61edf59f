"""SIGTERM to `taleweaver worker` mid-generation: the job is finished, the rest left queued."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import redis

from engine.queue import GenerationJob, JobCompleted, JobEvent, JobProgress, open_queue
from engine.queue.presence import presence_key
from engine.queue.redis_connection import StreamKeys

from support.protocol import narrate_request
from support.tiny_model import build_tiny_model

SCRIPT = Path(__file__).resolve().parents[2] / "support" / "slow_cli_worker.py"
TIMINGS = {"heartbeat_s": 0.2, "block_s": 0.1}


async def _next(events, seconds: float) -> JobEvent:  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(anext(events), seconds)


def _start_worker(key_prefix: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), key_prefix, "2.0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_sigterm_finishes_the_running_job_and_leaves_the_queued_one(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    model_dir = build_tiny_model(tmp_path / "tiny", context=4096)
    producer = await open_queue(redis_url, key_prefix=key_prefix, **TIMINGS)
    running = GenerationJob("job-running", 1, narrate_request("Ada"))
    waiting = GenerationJob("job-waiting", 2, narrate_request("Bo"))
    await producer.enqueue(running)
    await producer.enqueue(waiting)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SCRIPT.parents[2]), str(SCRIPT.parents[1])]),
        "TALEWEAVER_QUEUE_URL": redis_url,
        "TALEWEAVER_MODEL": str(model_dir),
        "TALEWEAVER_QUANTIZATION": "none",
        "TALEWEAVER_DEVICE": "cpu",
        "TALEWEAVER_CACHE_DIR": str(tmp_path / "cache"),
    }
    worker = _start_worker(key_prefix, env)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    events = producer.events()
    try:
        first = await _next(events, 120)  # the model loads first
        assert isinstance(first, JobProgress) and first.job_id == "job-running"
        keys = StreamKeys(key_prefix)
        assert client.keys(presence_key(keys, "*")), "the worker's heartbeat is up"
        worker.send_signal(signal.SIGTERM)
        final = await _next(events, 60)
        while isinstance(final, JobProgress):
            final = await _next(events, 60)
        assert isinstance(final, JobCompleted) and final.job_id == "job-running"
        assert final.text.strip()
        await producer.ack(final)
        stdout, stderr = await asyncio.to_thread(worker.communicate, timeout=60)
        assert worker.returncode == 0, stderr
        assert "Worker ready" in stdout
        # The job it had not started is still queued, whole, for the next worker.
        assert await producer.position("job-waiting") == 1
        assert client.xlen(keys.jobs) == 1
        assert client.xpending(keys.jobs, "workers")["pending"] == 0
        assert client.keys(presence_key(keys, "*")) == [], "its heartbeat is withdrawn"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        client.close()
        await producer.close()
