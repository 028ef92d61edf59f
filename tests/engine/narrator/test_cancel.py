"""A narration asked for while a cancelled one still runs waits for it instead of failing."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.queue.errors import JobCancelled
from engine.queue.jobs import GenerationJob
from engine.runtime import StoryRuntime
from engine.settings import Settings
from storage.models import NarratorCadence, TurnKind

from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started


async def open_runtime(tmp_path: Path, narrator: object) -> tuple[StoryRuntime, RecordingListener]:
    """Open a story runtime whose in-process worker uses NARRATOR, and its listener."""
    listener = RecordingListener()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'cancel.db'}",
        queue_url=f"memory://cancel-{uuid.uuid4().hex}",
    )

    async def processor() -> object:
        return narrator

    runtime = await StoryRuntime.open(
        settings,
        listener=listener,
        on_timeout=listener.timed_out,
        processor_factory=processor,
    )
    return runtime, listener


class GatedNarrator:
    """Answer each job with its number; the first job waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.jobs: list[str] = []

    def __call__(
        self, jobs: list[GenerationJob], on_progress: Callable[[str, str], None]
    ) -> list[tuple[str, str | Exception]]:
        results: list[tuple[str, str | Exception]] = []
        for job in jobs:
            self.jobs.append(job.job_id)
            if len(self.jobs) == 1:
                self.started.set()
                self.gate.wait(timeout=30)
            results.append((job.job_id, f"Passage number {len(self.jobs)}."))
        return results


async def test_narration_after_a_cancelled_one_is_queued_once_the_old_job_ends(
    tmp_path: Path,
) -> None:
    import asyncio

    narrator = GatedNarrator()
    runtime, listener = await open_runtime(tmp_path, narrator)
    try:
        await runtime.configs.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_TURN)
        view = await started(runtime.story, ALICE, BOB)
        first = await runtime.story.turns.submit_turn(CHANNEL, ALICE, "Alice knocks.")
        assert first.narration is not None
        await runtime.narrator.request(first.narration)
        await asyncio.to_thread(narrator.started.wait, 10)
        # The host cancels the narration while the worker is still writing it.
        skipped = await runtime.story.turns.skip(CHANNEL, ALICE)
        assert skipped.cancelled_narration
        second = await runtime.story.turns.submit_turn(CHANNEL, BOB, "Bob answers the door.")
        assert second.narration is not None
        assert await runtime.narrator.request(second.narration) == 0  # waits, not refused
        narrator.gate.set()
        await listener.wait_for(lambda: listener.stored, seconds=30)
        turns = await runtime.story.queries.turns(view.id)
    finally:
        narrator.gate.set()
        await runtime.close()
    assert [(t.kind, t.text) for t in turns] == [
        (TurnKind.PLAYER, "Alice knocks."),
        (TurnKind.PLAYER, "Bob answers the door."),
        (TurnKind.NARRATOR, "Passage number 2."),
    ]
    assert not listener.failures


class StreamingGatedNarrator:
    """A streaming processor: the first job runs until cancelled, later ones answer at once."""

    streaming = True

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled: list[str] = []
        self._first: tuple[str, Callable[[object], None]] | None = None

    def room(self) -> int:
        return 4

    def submit(self, job: GenerationJob, on_progress: object, on_done: Callable[..., None]) -> None:
        if self._first is None:
            self._first = (job.job_id, on_done)
            self.started.set()
            return
        on_done(f"Passage for {job.request.context.next_player}.")  # type: ignore[union-attr]

    def cancel(self, job_id: str) -> bool:
        if self._first is None or self._first[0] != job_id:
            return False
        self.cancelled.append(job_id)
        self._first[1](JobCancelled())
        return True

    def cancel_all(self) -> None:
        return None

    def __call__(self, jobs: object, on_progress: object) -> object:
        raise AssertionError("a streaming processor is never given whole batches")


@pytest.mark.parametrize("command", ["skip", "undo", "end"])
async def test_a_narration_the_story_lets_go_of_stops_in_the_worker(
    tmp_path: Path, command: str
) -> None:
    narrator = StreamingGatedNarrator()
    runtime, listener = await open_runtime(tmp_path, narrator)
    try:
        await started(runtime.story, ALICE, BOB)
        first = await runtime.story.turns.submit_turn(CHANNEL, ALICE, "Alice knocks.")
        assert first.narration is not None
        await runtime.narrator.request(first.narration)
        assert await asyncio.to_thread(narrator.started.wait, 10)
        actions = {
            "skip": runtime.story.turns.skip,
            "undo": runtime.story.turns.undo,
            "end": runtime.story.lifecycle.end,
        }
        await actions[command](CHANNEL, ALICE)

        async def job_gone() -> bool:
            return await runtime.queue.position(first.narration.job_id) is None  # type: ignore[union-attr]

        deadline = asyncio.get_running_loop().time() + 10
        while not await job_gone():
            assert asyncio.get_running_loop().time() < deadline, "the job still runs"
            await asyncio.sleep(0.05)
    finally:
        await runtime.close()
    assert narrator.cancelled == [first.narration.job_id]
    assert not listener.failures and not listener.stored  # nobody is told of it
