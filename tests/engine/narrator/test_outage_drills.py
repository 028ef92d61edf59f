"""Fault drill: a narrator passage that arrives while the database is down is stored later.

The drill runs its own PostgreSQL (tests/support/postgres_drill.py), the real engine with
its in-process queue and a worker whose batch waits for the test. The database stops
while the passage is generated, the passage arrives, cannot be stored, and must be stored
once the database is back, without restarting anything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from engine.runtime import StoryRuntime
from engine.settings import Settings
from storage.models import NarratorCadence, TurnKind

from support.postgres_drill import ThrowawayPostgres, drill_server
from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started

RECOVERY_S = 60.0


class GatedBatch:
    """A batch processor that answers once the test opens its gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, jobs, on_progress):  # type: ignore[no-untyped-def]
        self.started.set()
        self.gate.wait(60)
        return [
            (job.job_id, "The lamp flares, and the door in the sea swings open.") for job in jobs
        ]


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    with drill_server() as started_server:
        yield started_server


@pytest.fixture
async def runtime(server: ThrowawayPostgres) -> AsyncIterator[tuple[StoryRuntime, GatedBatch]]:
    batch = GatedBatch()

    async def processor() -> GatedBatch:
        return batch

    listener = RecordingListener()
    rt = await StoryRuntime.open(
        Settings(database_url=server.url, narrator_check_interval_s=1.0),
        listener=listener,
        on_timeout=listener.timed_out,
        processor_factory=processor,  # type: ignore[arg-type]
        queue_limits={"redeliver_s": 2.0},
    )
    rt.listener = listener  # type: ignore[attr-defined]
    yield rt, batch
    batch.gate.set()
    await rt.close()


async def test_a_passage_arriving_while_the_database_is_down_is_stored_once_it_is_back(
    server: ThrowawayPostgres, runtime: tuple[StoryRuntime, GatedBatch]
) -> None:
    rt, batch = runtime
    await rt.configs.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
    view = await started(rt.story, ALICE, BOB)
    written = await rt.table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    assert written.narrator is not None and written.narrator.refusal is None
    assert await asyncio.to_thread(batch.started.wait, 30)

    await asyncio.to_thread(server.stop)
    batch.gate.set()  # the passage arrives now, with nowhere to be stored
    await asyncio.sleep(3.0)  # at least one attempt fails, then it waits for redelivery
    await asyncio.to_thread(server.start)
    back = time.monotonic()

    while time.monotonic() - back < RECOVERY_S:
        try:
            turns = await rt.story.queries.turns(view.id)
        except Exception:  # the pool may still hold a connection from before the restart
            turns = []
        if any(turn.kind == TurnKind.NARRATOR for turn in turns):
            break
        await asyncio.sleep(0.5)
    took = time.monotonic() - back
    print(f"stored {took:.1f} s after the database came back")

    await asyncio.sleep(2.5)  # a later redelivery must not store it twice
    turns = await rt.story.queries.turns(view.id)
    assert [turn.kind for turn in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR], took
    assert rt.listener.failures == []  # type: ignore[attr-defined]
    assert len(rt.listener.stored) == 1  # type: ignore[attr-defined]
