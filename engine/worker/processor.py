"""The model worker's job processing: story context in, narrator passage or summary out."""

from __future__ import annotations

import logging
from typing import Any, assert_never

from engine.protocol.errors import JobRejected
from engine.protocol.requests import NarrateRequest, SummariseRequest
from engine.queue.errors import JobCancelled
from engine.queue.interfaces import (
    BatchOutcome,
    GeneratedText,
    JobOutcome,
    OutcomeCallback,
    ProgressCallback,
)
from engine.queue.jobs import GenerationJob
from engine.telemetry.metrics import count_generated_tokens
from engine.worker.model.continuous import ContinuousGenerator
from engine.worker.model.generator import BatchGenerator, GenerationRequest, GenerationResult
from engine.worker.model.stopping import StopPolicy
from engine.worker.prompt.render import render_narrator_prompt, render_summary_prompt
from engine.worker.rerank.passage_checks import Scene, talks_about_the_game_or_lists
from engine.worker.rerank.reranker import rank_candidates

log = logging.getLogger(__name__)


DEFAULT_RESAMPLE_ROUNDS = 2
# Runners-up sent back with a passage: a retry or the versions menu can use them
# without generating again.
MAX_ALTERNATIVES = 2


NO_USABLE_PASSAGE = "the model produced no usable passage, even after sampling again"


class EmptyGeneration(RuntimeError):
    """The model produced no usable text, even after sampling again; the job is retried."""


class NarratorJobProcessor:
    """Render each job's prompt for this model and generate the batch together.

    A narration samples ``candidates`` passages in one batch and keeps the best by the
    reranker; when every candidate is junk, those jobs are sampled again with fresh
    seeds, up to ``resample_rounds`` times, before the job fails.

    Two ways in: called with a batch of jobs, it generates them together and returns
    (``BatchProcessor``); or jobs are submitted one by one (``StreamingProcessor``) and
    join a continuously batched decode loop of at most ``max_jobs`` jobs, each finishing
    on its own. A worker loop uses the second when ``streaming`` is set.
    """

    def __init__(
        self,
        generator: BatchGenerator,
        *,
        seed: int | None = None,
        candidates: int = 1,
        resample_rounds: int = DEFAULT_RESAMPLE_ROUNDS,
        max_jobs: int = 8,
        kv_budget_tokens: int | None = None,
        streaming: bool = False,
        continuous: ContinuousGenerator | None = None,
    ) -> None:
        if candidates < 1 or max_jobs < 1:
            raise ValueError("candidates and max_jobs must be at least 1")
        self._generator = generator
        self._seed = seed
        self._candidates = candidates
        self._resample_rounds = max(0, resample_rounds)
        self._max_jobs = max_jobs
        self._kv_budget_tokens = kv_budget_tokens
        self._continuous = continuous
        self.streaming = streaming
        self.last_new_tokens = 0

    def reseed(self, seed: int | None) -> None:
        """Sample the next batches from ``seed`` (None: from torch's running state)."""
        self._seed = seed

    def _request(self, job: GenerationJob) -> GenerationRequest:
        loaded = self._generator.loaded
        request = job.request
        common: dict[str, Any] = {
            "count_tokens": loaded.count_tokens,
            "render_chat": loaded.render_chat,
            "context_window": loaded.context_window,
            "reserve_tokens": request.sampling.max_new_tokens,
        }
        try:
            if isinstance(request, NarrateRequest):
                context = loaded.marker_guard.context(request.context)
                rendered = render_narrator_prompt(context, **common)
                stop = StopPolicy(
                    max_paragraphs=request.sampling.max_paragraphs,
                    max_sentences=request.sampling.max_sentences,
                    player_names=context.player_names,
                )
                banned = request.banned_phrases
                # Beams already search; candidates would multiply the beams.
                candidates = self._candidates if request.sampling.num_beams == 1 else 1
            elif isinstance(request, SummariseRequest):
                guard = loaded.marker_guard
                rendered = render_summary_prompt(
                    guard.plain(request.previous_summary), guard.turns(request.turns), **common
                )
                # A summary is one paragraph of prose; only chat markers end it early.
                stop = StopPolicy(max_paragraphs=3, stop_at_any_speaker=False)
                banned = ()
                candidates = 1
            else:
                assert_never(request)
        except ValueError as exc:  # PromptTooLargeError among others: a retry fails alike
            raise JobRejected(f"cannot build the prompt: {exc}") from exc
        return GenerationRequest(
            request_id=job.job_id,
            prompt=rendered.text,
            sampling=request.sampling,
            stop=stop,
            banned_phrases=banned,
            candidates=candidates,
        )

    def __call__(
        self, jobs: list[GenerationJob], on_progress: ProgressCallback
    ) -> list[BatchOutcome]:
        """Process one batch of jobs; each gets its text or the exception that ended it."""
        outcomes: dict[str, GeneratedText | str | Exception] = {}
        requests: list[GenerationRequest] = []
        for job in jobs:
            try:
                requests.append(self._request(job))
            except JobRejected as exc:
                log.warning("job %s rejected: %s", job.job_id, exc)
                outcomes[job.job_id] = exc
        scenes = {
            job.job_id: Scene.of(
                job.request.context, max_new_tokens=job.request.sampling.max_new_tokens
            )
            for job in jobs
            if isinstance(job.request, NarrateRequest)
        }

        def partial(request_id: str, text: str) -> None:
            # Streamed text is the first candidate's; fragments that are already junk
            # (talk about the game, a list) are not shown.
            if request_id in scenes and not talks_about_the_game_or_lists(text):
                on_progress(request_id, text)

        self.last_new_tokens = 0
        pending = requests
        for round_number in range(self._resample_rounds + 1):
            if not pending:
                break
            seed = self._round_seed(round_number)
            retry: list[GenerationRequest] = []
            by_id = {request.request_id: request for request in pending}
            for result in self._generator.generate_batch(pending, partial, seed=seed):
                self.last_new_tokens += result.new_tokens
                count_generated_tokens(result.new_tokens)
                outcome = self._outcome(result, scenes.get(result.request_id))
                if outcome is None:
                    retry.append(by_id[result.request_id])
                else:
                    outcomes[result.request_id] = outcome
            if retry and round_number < self._resample_rounds:
                log.info("%d job(s) had only junk candidates; sampling again", len(retry))
            pending = retry
        for request in pending:
            outcomes[request.request_id] = EmptyGeneration(NO_USABLE_PASSAGE)
        return [(job.job_id, outcomes[job.job_id]) for job in jobs]

    # Streaming: one job at a time into a continuously batched decode loop.

    @property
    def continuous(self) -> ContinuousGenerator:
        """Return the continuous decode loop over this processor's model (made on first use)."""
        if self._continuous is None:
            rows = self._max_jobs * self._candidates
            # By default, room for every row's prompt and passage at a typical length.
            budget = self._kv_budget_tokens or rows * 1024
            self._continuous = ContinuousGenerator(
                self._generator, max_rows=rows, kv_budget_tokens=budget
            )
        return self._continuous

    def cancel(self, job_id: str) -> bool:
        """Stop one job at the decode loop's next step; False when it is not there."""
        if self._continuous is None:
            return False
        return self._continuous.cancel(job_id)

    def cancel_all(self) -> None:
        """Drop every job in the decode loop and stop its thread (it restarts on demand)."""
        if self._continuous is not None:
            self._continuous.stop()

    def room(self) -> int:
        """Return how many more jobs may be submitted now."""
        return self.continuous.room() // self._candidates

    def submit(
        self, job: GenerationJob, on_progress: ProgressCallback, on_done: OutcomeCallback
    ) -> None:
        """Start a job in the decode loop; ON_DONE gets its outcome on the loop's thread."""
        try:
            request = self._request(job)
        except JobRejected as exc:
            log.warning("job %s rejected: %s", job.job_id, exc)
            on_done(exc)
            return
        scene = None
        if isinstance(job.request, NarrateRequest):
            budget = job.request.sampling.max_new_tokens
            scene = Scene.of(job.request.context, max_new_tokens=budget)
        self._submit_round(request, scene, 0, on_progress, on_done)

    def _submit_round(
        self,
        request: GenerationRequest,
        scene: Scene | None,
        round_number: int,
        on_progress: ProgressCallback,
        on_done: OutcomeCallback,
    ) -> None:
        def partial(request_id: str, text: str) -> None:
            if scene is not None and not talks_about_the_game_or_lists(text):
                on_progress(request_id, text)

        def finished(result: GenerationResult) -> None:
            self.last_new_tokens += result.new_tokens
            count_generated_tokens(result.new_tokens)
            outcome: JobOutcome | None = self._outcome(result, scene)
            if outcome is None and round_number < self._resample_rounds:
                log.info("job %s had only junk candidates; sampling again", request.request_id)
                self._submit_round(request, scene, round_number + 1, on_progress, on_done)
                return
            if outcome is None:
                outcome = EmptyGeneration(NO_USABLE_PASSAGE)
            on_done(outcome)

        self.continuous.submit(
            request, on_done=finished, on_partial=partial, seed=self._round_seed(round_number)
        )

    def _round_seed(self, round_number: int) -> int | None:
        if self._seed is None or round_number == 0:
            return self._seed
        return self._seed + 7919 * round_number

    @staticmethod
    def _outcome(
        result: GenerationResult, scene: Scene | None
    ) -> GeneratedText | str | Exception | None:
        """Return the job's text or error; None when every candidate was junk."""
        if result.finish_reason == "error":
            return RuntimeError("generation failed")
        if result.finish_reason == "cancelled":
            return JobCancelled()
        if scene is None:  # a summary: any text will do
            if not result.text.strip():
                return EmptyGeneration("the model produced no usable text")
            return result.text
        ranked = rank_candidates(result.candidates, scene)
        if not ranked:
            return None
        spares = tuple(p.text for p in ranked[1 : 1 + MAX_ALTERNATIVES] if p.check.usable)
        return GeneratedText(ranked[0].text, spares)
