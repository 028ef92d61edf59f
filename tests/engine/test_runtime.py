"""The whole engine from settings: database, in-process queue and worker, narrator, timers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from engine.narrator.coordinator import NarratorBusy
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.worker.model.generator import BatchGenerator
from engine.worker.processor import NarratorJobProcessor
from storage.models import TurnKind

from support.recording import RecordingListener
from support.stories import ALICE, BOB, CHANNEL, started


@pytest.fixture
async def runtime(narrator_tiny_model, tmp_path: Path):  # type: ignore[no-untyped-def]
    listener = RecordingListener()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'rt.db'}",
        queue_url=f"memory://runtime-{uuid.uuid4().hex}",
    )

    async def processor() -> NarratorJobProcessor:
        return NarratorJobProcessor(BatchGenerator(narrator_tiny_model), seed=3)

    rt = await StoryRuntime.open(
        settings,
        listener=listener,
        on_timeout=listener.timed_out,
        processor_factory=processor,
        queue_limits={"max_in_flight": 2},
    )
    rt.listener = listener  # type: ignore[attr-defined]
    yield rt
    await rt.close()


async def test_player_turn_is_answered_by_the_narrator(runtime: StoryRuntime) -> None:
    listener: RecordingListener = runtime.listener  # type: ignore[attr-defined]
    view = await started(runtime.story, ALICE, BOB)
    outcome = await runtime.story.turns.submit_turn(CHANNEL, ALICE, "I open the lighthouse door.")
    assert outcome.narration is not None
    position = await runtime.narrator.request(outcome.narration)
    assert position >= 0
    await listener.wait_for(lambda: listener.stored)
    [stored] = listener.stored
    assert stored.turn.kind == TurnKind.NARRATOR and stored.turn.text
    assert listener.progress, "partial text is streamed before the passage is stored"
    turns = await runtime.story.queries.turns(view.id)
    assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR]
    after = await runtime.story.queries.get(view.id)
    assert not after.narrator_pending and after.turn_deadline is not None


async def test_the_content_classifier_is_loaded_when_the_runtime_opens(
    runtime: StoryRuntime,
) -> None:
    # Loaded in a thread during start-up: the first content check does not stall the loop.
    assert runtime.story.guard.classifier.loaded


async def test_full_queue_hands_the_turn_back_with_a_clear_message(
    runtime: StoryRuntime,
) -> None:
    from engine.queue.jobs import GenerationJob

    from support.protocol import narrate_request

    # Fill the global limit (2) with other stories' jobs before anything can run them.
    runtime._worker.stop()  # type: ignore[union-attr]
    for other in (901, 902):
        await runtime.queue.enqueue(
            GenerationJob(job_id=f"x{other}", session_id=other, request=narrate_request())
        )
    await started(runtime.story, ALICE, BOB)
    outcome = await runtime.story.turns.submit_turn(CHANNEL, ALICE, "Hello?")
    assert outcome.narration is not None
    with pytest.raises(NarratorBusy, match="busy: 2 stories are waiting"):
        await runtime.narrator.request(outcome.narration)
    after = await runtime.story.queries.get(outcome.session.id)
    assert not after.narrator_pending and after.turn_deadline is not None


async def test_terminal_table_plays_a_round_with_several_players(
    runtime: StoryRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.terminal import TerminalListener, TerminalTable

    listener: RecordingListener = runtime.listener  # type: ignore[attr-defined]
    table = TerminalTable(runtime, TerminalListener(), tmp_path)
    # The runtime's listener records; the table waits on its own listener, so share events.
    runtime.narrator._listener = table.listener  # type: ignore[attr-defined]
    script = [
        "/as Mira",
        "/start The Lamp | A lamp lights itself.",
        "/as Tom",
        "/join",
        "/as Mira",
        "/begin",
        "/as Tom",
        "I write out of turn.",
        "/as Mira",
        "Mira climbs the stairs.",
        "/lore add The Lamp | lamp | It lights itself.",
        "/recap",
        "/save",
    ]
    for line in script:
        assert await table.handle(line)
    assert not await table.handle("/quit")
    out = capsys.readouterr().out
    assert "It is Mira's turn, not yours." in out
    assert "Tom's turn" in out
    assert "(Lore 'The Lamp' saved.)" in out
    view = await runtime.story.queries.in_channel(1)
    assert view is not None
    turns = await runtime.story.queries.turns(view.id)
    assert [t.author_name for t in turns] == ["Mira", "Narrator"]
    assert "Saved to" in out and "the-lamp-" in out
    assert "Mira climbs the stairs." in saved_markdown(tmp_path)
    assert not listener.failures


def saved_markdown(folder: Path) -> str:
    [saved] = folder.glob("the-lamp-*.md")
    return saved.read_text(encoding="utf-8")
