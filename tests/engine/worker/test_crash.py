"""A worker killed with SIGKILL mid-generation: a second worker finishes, one turn is stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.narrator.context_builder import StoryContextBuilder
from engine.narrator.coordinator import NarratorCoordinator
from engine.queue import open_queue
from engine.story import StoryService
from storage.models import TurnKind

from conftest import service_missing
from support.model_worker import QUEUE_TIMINGS
from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, started
from support.tiny_model import build_tiny_model

REDIS_URL = os.environ.get("TALEWEAVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKER = Path(__file__).resolve().parents[2] / "support" / "model_worker.py"


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    name = f"taleweaver-crash:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def start_worker(prefix: str, model_dir: Path, delay: float, name: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(WORKER.parents[2]), str(WORKER.parents[1])]),
    }
    process = subprocess.Popen(
        [sys.executable, str(WORKER), REDIS_URL, prefix, str(model_dir), str(delay), name],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def test_killed_worker_job_is_finished_by_another_with_one_turn_stored(
    session_factory, prefix: str, tmp_path: Path
) -> None:
    model_dir = build_tiny_model(tmp_path / "tiny", context=4096)
    service = StoryService.create(session_factory)
    listener = RecordingListener()
    queue = await open_queue(REDIS_URL, key_prefix=prefix, **QUEUE_TIMINGS)
    coordinator = NarratorCoordinator(
        service=service,
        contexts=StoryContextBuilder(session_factory),
        queue=queue,
        listener=listener,
    )
    coordinator.start()
    doomed = start_worker(prefix, model_dir, delay=60, name="doomed")
    rescuer: subprocess.Popen[str] | None = None
    try:
        view = await started(service, ALICE, BOB)
        outcome = await service.turns.submit_turn(CHANNEL, ALICE, "I open the door.")
        assert outcome.narration is not None
        await coordinator.request(outcome.narration)
        await listener.wait_for(lambda: listener.progress, seconds=30)
        assert "doomed" in listener.progress[0][2]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        rescuer = start_worker(prefix, model_dir, delay=0, name="rescuer")
        await listener.wait_for(lambda: listener.stored, seconds=60)
        await asyncio.sleep(2.5)  # room for any duplicate delivery to show up
        turns = await service.queries.turns(view.id)
        assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR]
        assert len(listener.stored) == 1
        assert turns[1].job_id == outcome.narration.job_id
    finally:
        for process in (doomed, rescuer):
            if process is None:
                continue
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
            assert process.stdout is not None
            process.stdout.close()
        await coordinator.stop()
        await queue.close()
