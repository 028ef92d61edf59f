"""The model worker's job processing: story context in, narrator passage or summary out."""

from __future__ import annotations

import logging
from typing import Any, assert_never

from engine.protocol.errors import JobRejected
from engine.protocol.requests import NarrateRequest, SummariseRequest
from engine.queue.interfaces import BatchOutcome, ProgressCallback
from engine.queue.jobs import GenerationJob
from engine.telemetry.metrics import count_generated_tokens
from engine.worker.model.generator import BatchGenerator, GenerationRequest
from engine.worker.model.stopping import StopPolicy
from engine.worker.prompt.render import render_narrator_prompt, render_summary_prompt

log = logging.getLogger(__name__)


class EmptyGeneration(RuntimeError):
    """The model produced no usable text; the job is retried."""


class NarratorJobProcessor:
    """Render each job's prompt for this model and generate the batch together."""

    def __init__(self, generator: BatchGenerator, *, seed: int | None = None) -> None:
        self._generator = generator
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
                context = request.context
                rendered = render_narrator_prompt(context, **common)
                stop = StopPolicy(
                    max_paragraphs=request.sampling.max_paragraphs,
                    player_names=context.player_names,
                )
                banned = request.banned_phrases
            elif isinstance(request, SummariseRequest):
                rendered = render_summary_prompt(request.previous_summary, request.turns, **common)
                # A summary is one paragraph of prose; only chat markers end it early.
                stop = StopPolicy(max_paragraphs=3, stop_at_any_speaker=False)
                banned = ()
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
        )

    def __call__(
        self, jobs: list[GenerationJob], on_progress: ProgressCallback
    ) -> list[BatchOutcome]:
        """Process one batch of jobs; each gets its text or the exception that ended it."""
        outcomes: dict[str, str | Exception] = {}
        requests: list[GenerationRequest] = []
        for job in jobs:
            try:
                requests.append(self._request(job))
            except JobRejected as exc:
                log.warning("job %s rejected: %s", job.job_id, exc)
                outcomes[job.job_id] = exc
        narrations = {job.job_id for job in jobs if isinstance(job.request, NarrateRequest)}

        def partial(request_id: str, text: str) -> None:
            if request_id in narrations:
                on_progress(request_id, text)

        if requests:
            for result in self._generator.generate_batch(requests, partial, seed=self._seed):
                count_generated_tokens(result.new_tokens)
                if result.finish_reason == "error":
                    outcomes[result.request_id] = RuntimeError("generation failed")
                elif not result.text.strip():
                    outcomes[result.request_id] = EmptyGeneration(
                        "the model produced no usable text"
                    )
                else:
                    outcomes[result.request_id] = result.text
        return [(job.job_id, outcomes[job.job_id]) for job in jobs]
