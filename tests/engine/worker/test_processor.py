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
from engine.queue.interfaces import GeneratedText
from engine.queue.jobs import GenerationJob
from engine.worker.model.generator import BatchGenerator, Candidate, GenerationResult
from engine.worker.processor import EmptyGeneration, NarratorJobProcessor

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
    assert isinstance(outcomes["a"], GeneratedText) and outcomes["a"].text.strip()
    assert isinstance(outcomes["b"], GeneratedText) and outcomes["b"].text.strip()
    assert isinstance(outcomes["s"], str) and outcomes["s"].strip()  # a summary: plain text
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
    assert isinstance(outcomes["ok"], GeneratedText)  # the rest of the batch is generated


class ScriptedGenerator(BatchGenerator):
    """Answer each batch with scripted candidates instead of sampling the tiny model."""

    def __init__(self, loaded, rounds: list[list[str]]) -> None:  # type: ignore[no-untyped-def]
        super().__init__(loaded)
        self.rounds = rounds
        self.seen: list[tuple[int, int | None]] = []

    def generate_batch(self, requests, on_partial=None, *, seed=None):  # type: ignore[no-untyped-def]
        texts = self.rounds[min(len(self.seen), len(self.rounds) - 1)]
        self.seen.append((requests[0].candidates, seed))
        return [
            GenerationResult(
                request_id=r.request_id,
                text=texts[0],
                raw_text=texts[0],
                new_tokens=len(texts),
                finish_reason="stop",
                seconds=0.1,
                candidates=tuple(
                    Candidate(text, text, 1, -1.0 - index) for index, text in enumerate(texts)
                ),
            )
            for r in requests
        ]


IN_SCENE = (
    "The dragon stirred beneath Mira's feet, and the door she had opened groaned on its "
    "hinges as smoke curled out into the cold morning."
)
ELSEWHERE = (
    "Far away in a busy city, a banker counted his coins while the trams rattled past the "
    "windows of the grand old office."
)


def test_best_of_n_keeps_the_candidate_that_stays_in_the_scene(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(narrator_tiny_model, [["(silence)", ELSEWHERE, IN_SCENE]])
    processor = NarratorJobProcessor(generator, seed=1, candidates=3)

    outcomes = dict(processor([narrate("a")], lambda *_: None))

    assert outcomes["a"] == GeneratedText(IN_SCENE)  # the off-scene runner-up is no spare
    assert generator.seen == [(3, 1)]


ALSO_IN_SCENE = (
    "Tom watched the dragon's breath fog the doorway Mira had opened, and the old door "
    "shivered as the great beast shifted in its sleep."
)


def test_usable_runners_up_come_back_as_spares_best_first(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(
        narrator_tiny_model, [[IN_SCENE, "(silence)", ELSEWHERE, ALSO_IN_SCENE]]
    )
    processor = NarratorJobProcessor(generator, seed=1, candidates=4)

    outcomes = dict(processor([narrate("a")], lambda *_: None))

    assert outcomes["a"] == GeneratedText(IN_SCENE, (ALSO_IN_SCENE,))


def test_only_junk_candidates_are_sampled_again_with_a_fresh_seed(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(
        narrator_tiny_model, [["(silence)", "It is your turn, players."], [ELSEWHERE, "(pause)"]]
    )
    processor = NarratorJobProcessor(generator, seed=5, candidates=2)

    outcomes = dict(processor([narrate("a")], lambda *_: None))

    assert outcomes["a"] == GeneratedText(ELSEWHERE)
    assert len(generator.seen) == 2
    assert generator.seen[0][1] != generator.seen[1][1]


def test_a_job_with_junk_after_every_round_fails_and_nothing_is_stored(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(narrator_tiny_model, [["(silence)", "..."]])
    processor = NarratorJobProcessor(generator, seed=5, candidates=2, resample_rounds=2)

    outcomes = dict(processor([narrate("a")], lambda *_: None))

    assert isinstance(outcomes["a"], EmptyGeneration)
    assert len(generator.seen) == 3


def test_summaries_and_beam_search_ask_for_one_candidate(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(narrator_tiny_model, [[IN_SCENE]])
    processor = NarratorJobProcessor(generator, candidates=4)
    beams = SAMPLING.model_copy(update={"num_beams": 2})

    processor([narrate("a", sampling=beams)], lambda *_: None)
    processor(
        [
            GenerationJob(
                job_id="s", session_id=2, request=SummariseRequest("", (OPENING,), SAMPLING)
            )
        ],
        lambda *_: None,
    )

    assert [candidates for candidates, _ in generator.seen] == [1, 1]


class ScriptedContinuous:
    """The streaming side of ScriptedGenerator: each submitted request ends at once."""

    def __init__(self, scripted: ScriptedGenerator) -> None:
        self.scripted = scripted

    def submit(self, request, *, on_done, on_partial=None, seed=None):  # type: ignore[no-untyped-def]
        [result] = self.scripted.generate_batch([request], on_partial, seed=seed)
        on_done(result)

    def room(self) -> int:
        return 32

    def stop(self) -> None:
        pass


def streamed(processor: NarratorJobProcessor, job: GenerationJob) -> object:
    outcomes: list[object] = []
    processor.submit(job, lambda *_: None, outcomes.append)
    assert len(outcomes) == 1
    return outcomes[0]


def scripted_streaming(narrator_tiny_model, rounds: list[list[str]], **options):  # type: ignore[no-untyped-def]
    generator = ScriptedGenerator(narrator_tiny_model, rounds)
    continuous = ScriptedContinuous(generator)
    processor = NarratorJobProcessor(
        generator,
        streaming=True,
        continuous=continuous,
        **options,  # type: ignore[arg-type]
    )
    return processor, generator


def test_streamed_junk_is_sampled_again_with_a_fresh_seed(
    narrator_tiny_model,
) -> None:  # type: ignore[no-untyped-def]
    processor, generator = scripted_streaming(
        narrator_tiny_model,
        [["(silence)", "It is your turn, players."], [ELSEWHERE, "(pause)"]],
        seed=5,
        candidates=2,
    )

    assert streamed(processor, narrate("a")) == GeneratedText(ELSEWHERE)
    assert len(generator.seen) == 2 and generator.seen[0][1] != generator.seen[1][1]


def test_streamed_job_with_junk_after_every_round_fails(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    processor, generator = scripted_streaming(
        narrator_tiny_model, [["(silence)", "..."]], seed=5, candidates=2, resample_rounds=2
    )

    assert isinstance(streamed(processor, narrate("a")), EmptyGeneration)
    assert len(generator.seen) == 3


def test_streamed_job_keeps_the_best_candidate_and_its_spares(narrator_tiny_model) -> None:  # type: ignore[no-untyped-def]
    processor, _ = scripted_streaming(
        narrator_tiny_model, [[IN_SCENE, "(silence)", ELSEWHERE, ALSO_IN_SCENE]], candidates=4
    )

    assert streamed(processor, narrate("a")) == GeneratedText(IN_SCENE, (ALSO_IN_SCENE,))


def test_streamed_job_whose_prompt_can_never_fit_is_rejected_at_once(
    narrator_tiny_model,  # type: ignore[no-untyped-def]
) -> None:
    processor = NarratorJobProcessor(BatchGenerator(narrator_tiny_model), streaming=True)
    big = GenerationJob(
        job_id="big",
        session_id=1,
        request=NarrateRequest(replace(context("x"), premise=ENDLESS), SAMPLING),
    )

    outcome = streamed(processor, big)

    assert isinstance(outcome, JobRejected)


def test_streamed_jobs_on_the_tiny_model_get_text_and_summaries_plain_text(
    narrator_tiny_model,  # type: ignore[no-untyped-def]
) -> None:
    import threading

    processor = NarratorJobProcessor(
        BatchGenerator(narrator_tiny_model), seed=1, candidates=2, streaming=True
    )
    outcomes: dict[str, object] = {}
    progress: list[str] = []
    all_done = threading.Event()

    def done_for(job_id: str):  # type: ignore[no-untyped-def]
        def done(outcome: object) -> None:
            outcomes[job_id] = outcome
            if len(outcomes) == 2:
                all_done.set()

        return done

    summary = GenerationJob(
        job_id="s", session_id=2, request=SummariseRequest("", (OPENING,), SAMPLING)
    )
    try:
        assert processor.room() == 8
        processor.submit(narrate("a"), lambda job_id, _text: progress.append(job_id), done_for("a"))
        processor.submit(summary, lambda job_id, _text: progress.append(job_id), done_for("s"))
        assert all_done.wait(60)
    finally:
        processor.cancel_all()

    assert isinstance(outcomes["a"], GeneratedText) and outcomes["a"].text.strip()
    assert isinstance(outcomes["s"], str) and outcomes["s"].strip()
    assert "s" not in progress  # summaries do not stream
    assert processor.room() == 8
