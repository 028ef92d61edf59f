from __future__ import annotations

import pytest

from engine.protocol.context import StoryContext
from engine.protocol.context import TurnView as PromptTurn
from engine.queue.errors import JobRejected
from engine.queue.jobs import GenerationJob
from engine.worker.model.generator import BatchGenerator
from engine.worker.processor import NarratorJobProcessor

SAMPLING = {"temperature": 0.9, "max_new_tokens": 16, "max_paragraphs": 5}


def context(title: str) -> StoryContext:
    return StoryContext(
        title=title,
        genre_key="fantasy",
        genre_instructions="Write with wonder.",
        premise="A dragon wakes.",
        player_names=("Mira", "Tom"),
        summary="",
        lore=(),
        authors_note="",
        recent_turns=(PromptTurn(1, "Mira", False, "Mira opened the door."),),
        next_player="Tom",
    )


def narrate(job_id: str, title: str = "Dawn", **sampling: object) -> GenerationJob:
    return GenerationJob(
        job_id=job_id,
        session_id=1,
        kind="narrate",
        payload={"context": context(title).to_dict(), "sampling": {**SAMPLING, **sampling}},
    )


@pytest.fixture
def processor(narrator_tiny_model) -> NarratorJobProcessor:  # type: ignore[no-untyped-def]
    return NarratorJobProcessor(BatchGenerator(narrator_tiny_model), seed=1)


def test_batch_of_narrations_and_a_summary_each_get_text(processor: NarratorJobProcessor) -> None:
    progress: list[tuple[str, str]] = []
    summary = GenerationJob(
        job_id="s",
        session_id=2,
        kind="summarise",
        payload={
            "previous_summary": "",
            "turns": [PromptTurn(1, "Mira", False, "Mira opened the door.").to_dict()],
            "sampling": SAMPLING,
        },
    )
    jobs = [narrate("a"), narrate("b", "Dusk", temperature=0.5), summary]
    outcomes = dict(processor(jobs, lambda job_id, text: progress.append((job_id, text))))
    assert set(outcomes) == {"a", "b", "s"}
    assert all(isinstance(o, str) and o.strip() for o in outcomes.values()), outcomes
    assert progress and all(text for _, text in progress)
    assert {job_id for job_id, _ in progress} <= {"a", "b"}  # summaries do not stream


@pytest.mark.parametrize(
    "payload",
    [
        {"context": {"title": "missing fields"}, "sampling": SAMPLING},
        {"context": context("x").to_dict(), "sampling": {"temperature": 9}},
        {"context": context("x").to_dict(), "sampling": {"no_such_setting": 1}},
    ],
)
def test_malformed_job_is_rejected_without_retry(
    processor: NarratorJobProcessor, payload: dict[str, object]
) -> None:
    job = GenerationJob(job_id="bad", session_id=1, kind="narrate", payload=payload)
    [(job_id, outcome)] = processor([job], lambda *_: None)
    assert job_id == "bad" and isinstance(outcome, JobRejected)
