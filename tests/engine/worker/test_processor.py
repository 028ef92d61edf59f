from __future__ import annotations

from dataclasses import replace

import pytest

from engine.protocol import (
    ContextTurn,
    JobRejected,
    JobRequest,
    NarrateRequest,
    SamplingSettings,
    StoryContext,
    SummariseRequest,
)
from engine.queue.jobs import GenerationJob
from engine.worker.model.generator import BatchGenerator
from engine.worker.processor import NarratorJobProcessor

SAMPLING = SamplingSettings(temperature=0.9, max_new_tokens=16, max_paragraphs=5)
OPENING = ContextTurn(1, "Mira", False, "Mira opened the door.")
ENDLESS = " ".join(["on and on"] * 3000)


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
        recent_turns=(OPENING,),
        next_player="Tom",
    )


def narrate(
    job_id: str, title: str = "Dawn", sampling: SamplingSettings = SAMPLING
) -> GenerationJob:
    request = NarrateRequest(context(title), sampling)
    return GenerationJob(job_id=job_id, session_id=1, request=request)


@pytest.fixture
def processor(narrator_tiny_model) -> NarratorJobProcessor:  # type: ignore[no-untyped-def]
    return NarratorJobProcessor(BatchGenerator(narrator_tiny_model), seed=1)


def test_batch_of_narrations_and_a_summary_each_get_text(processor: NarratorJobProcessor) -> None:
    progress: list[tuple[str, str]] = []
    summary = GenerationJob(
        job_id="s", session_id=2, request=SummariseRequest("", (OPENING,), SAMPLING)
    )
    cooler = SAMPLING.model_copy(update={"temperature": 0.5})
    jobs = [narrate("a"), narrate("b", "Dusk", cooler), summary]
    outcomes = dict(processor(jobs, lambda job_id, text: progress.append((job_id, text))))
    assert set(outcomes) == {"a", "b", "s"}
    assert all(isinstance(o, str) and o.strip() for o in outcomes.values()), outcomes
    assert progress and all(text for _, text in progress)
    assert {job_id for job_id, _ in progress} <= {"a", "b"}  # summaries do not stream


@pytest.mark.parametrize(
    "request_",
    [
        NarrateRequest(replace(context("x"), premise=ENDLESS), SAMPLING),
        SummariseRequest("", (replace(OPENING, text=ENDLESS),), SAMPLING),
    ],
    ids=["premise", "summarised turn"],
)
def test_job_whose_prompt_can_never_fit_is_rejected_without_retry(
    processor: NarratorJobProcessor, request_: JobRequest
) -> None:
    jobs = [GenerationJob(job_id="big", session_id=1, request=request_), narrate("ok")]
    outcomes = dict(processor(jobs, lambda *_: None))
    assert isinstance(outcomes["big"], JobRejected)
    assert str(outcomes["big"]).startswith("cannot build the prompt")
    assert isinstance(outcomes["ok"], str)  # the rest of the batch is generated
