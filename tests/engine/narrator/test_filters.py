"""The narrator's output passes the same content rules: hidden partials, regeneration, fallback."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from engine.narrator.coordinator import NEUTRAL_PASSAGE
from engine.protocol import NarrateRequest
from engine.queue.jobs import GenerationJob
from engine.runtime import StoryRuntime
from engine.settings import Settings
from storage.models import NarratorCadence

from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started


class ScriptedNarrator:
    """A worker processor that answers each narrator job with the next scripted passage."""

    def __init__(self, passages: Sequence[str]) -> None:
        self.passages = list(passages)
        self.jobs: list[GenerationJob] = []

    def __call__(
        self, jobs: list[GenerationJob], on_progress: Callable[[str, str], None]
    ) -> list[tuple[str, str | Exception]]:
        results: list[tuple[str, str | Exception]] = []
        for job in jobs:
            self.jobs.append(job)
            text = self.passages.pop(0) if self.passages else "The tide turns."
            on_progress(job.job_id, text + " and")  # a partial that already holds the text
            results.append((job.job_id, text))
        return results


async def open_runtime(tmp_path: Path, narrator: ScriptedNarrator) -> StoryRuntime:
    listener = RecordingListener()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'filters.db'}",
        queue_url=f"memory://filters-{uuid.uuid4().hex}",
    )

    async def processor() -> ScriptedNarrator:
        return narrator

    runtime = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, processor_factory=processor
    )
    runtime.listener = listener  # type: ignore[attr-defined]
    await runtime.configs.update(
        GUILD,
        MOD,
        narrator_cadence=NarratorCadence.EVERY_TURN,
        blocked_words=["moonstone"],
        narrator_regenerations=2,
    )
    return runtime


async def play_one_turn(runtime: StoryRuntime) -> RecordingListener:
    listener: RecordingListener = runtime.listener  # type: ignore[attr-defined]
    await started(runtime.story, ALICE, BOB)
    outcome = await runtime.story.turns.submit_turn(CHANNEL, ALICE, "I open the door.")
    assert outcome.narration is not None
    await runtime.narrator.request(outcome.narration)
    await listener.wait_for(lambda: listener.stored, seconds=30)
    return listener


async def test_blocked_words_are_sent_to_generation_as_banned_phrases(tmp_path: Path) -> None:
    narrator = ScriptedNarrator(["The door creaks open."])
    runtime = await open_runtime(tmp_path, narrator)
    try:
        await play_one_turn(runtime)
    finally:
        await runtime.close()
    request = narrator.jobs[0].request
    assert isinstance(request, NarrateRequest)
    assert "moonstone" in request.banned_phrases


async def test_filtered_passage_is_regenerated_and_its_partial_never_shown(
    tmp_path: Path,
) -> None:
    narrator = ScriptedNarrator(["A moonstone glows here.", "A pale gem glows here."])
    runtime = await open_runtime(tmp_path, narrator)
    try:
        listener = await play_one_turn(runtime)
        audit = await runtime.moderation.audit(GUILD, MOD)
    finally:
        await runtime.close()
    [stored] = listener.stored
    assert stored.turn.text == "A pale gem glows here."
    assert len(narrator.jobs) == 2 and narrator.jobs[0].job_id != narrator.jobs[1].job_id
    assert all("moonstone" not in text for _, _, text in listener.progress)
    assert [(f[1], f[2]) for f in listener.filtered] == [(narrator.jobs[0].job_id, False)]
    assert [(e.rule, e.action) for e in audit] == [("blocked_word", "regenerated")]


async def test_passage_filtered_every_time_is_replaced_by_a_neutral_line(tmp_path: Path) -> None:
    narrator = ScriptedNarrator(["moonstone!"] * 3)
    runtime = await open_runtime(tmp_path, narrator)
    try:
        listener = await play_one_turn(runtime)
        audit = await runtime.moderation.audit(GUILD, MOD)
        session = await runtime.story.queries.in_channel(CHANNEL)
    finally:
        await runtime.close()
    [stored] = listener.stored
    assert stored.turn.text == NEUTRAL_PASSAGE
    assert len(narrator.jobs) == 3
    assert listener.filtered[-1][2] is True, "the host is told a neutral line stands in"
    assert [e.action for e in audit] == ["replaced", "regenerated", "regenerated"]
    assert session is not None and not session.narrator_pending


@pytest.mark.parametrize("bad", ["<@&123> wake up", "@everyone the end"])
async def test_narrator_mentions_are_filtered(tmp_path: Path, bad: str) -> None:
    narrator = ScriptedNarrator([bad, "All is calm."])
    runtime = await open_runtime(tmp_path, narrator)
    try:
        listener = await play_one_turn(runtime)
    finally:
        await runtime.close()
    assert listener.stored[0].turn.text == "All is calm."


async def test_a_passage_is_stored_without_the_whitespace_around_it(tmp_path: Path) -> None:
    narrator = ScriptedNarrator(["  The door creaks open.\n"])
    runtime = await open_runtime(tmp_path, narrator)
    try:
        listener = await play_one_turn(runtime)
    finally:
        await runtime.close()
    [stored] = listener.stored
    assert stored.turn.text == "The door creaks open."
