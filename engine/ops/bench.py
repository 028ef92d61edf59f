"""Measure narrator throughput and latency through the real worker path, on real prompts.

Jobs go the way a story turn's job goes: an in-process ``memory://`` queue, the worker's
:class:`WorkerLoop` and the processor ``engine.worker.main.load_processor`` builds for
``taleweaver worker`` (continuous batching: jobs join and leave the running batch one by
one). Each job carries one candidate, so tokens per second compare with other engines.

The prompts are those of stories well under way: the bench stories
(:mod:`engine.ops.bench_stories`) are played into the engine on a temporary SQLite
database and their narrator contexts read by the engine's own context builder; the
worker renders each into its model's prompt (summary, lore, six to ten recent turns).
Sessions beyond the sixteen stories are copies of them at further tables.

Tokens are the ones the worker actually generated (its ``generated_token_count``),
never the requested maximum; the narrator's stop rules stay on, with the sentence and
paragraph limits at their maximum, so most jobs run to the token budget.

With ``peer="llama-cpp"``, llama.cpp runs the same GGUF file on the very prompts the
single-stream jobs had (rendered by the worker's tokenizer and chat template), one after
the other, after the worker has stopped, in the same run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import ValidationError

from engine.ops.bench_peer import PeerReport, check_peer, run_llama_cpp
from engine.ops.bench_stories import bench_contexts, context_at_table
from engine.protocol.context import StoryContext
from engine.protocol.requests import NarrateRequest, new_job_id
from engine.protocol.sampling import SamplingSettings
from engine.queue.factory import open_queue, open_worker_queue
from engine.queue.interfaces import BatchProcessor, JobQueue
from engine.queue.jobs import GenerationJob, JobCompleted, JobProgress
from engine.settings import Settings
from engine.telemetry.metrics import generated_token_count
from engine.worker.loop import WorkerLoop
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.prompt.render import render_narrator_prompt

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
ProcessorFactory = Callable[[Settings, int], BatchProcessor]
"""Builds the worker's processor for these settings and that many jobs at once."""

BENCH_SEED = 1234
SINGLE_STREAM_JOBS = 3
BUSY_BATCH = 8
LATE_JOBS = 8
DEFAULT_MAX_NEW_TOKENS = 64
_WAIT_LIMIT_S = 1800.0
_BATCH_WINDOW_S = 0.05


class BenchmarkError(RuntimeError):
    """The benchmark could not produce honest figures."""


def percentile(values: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile SHARE (0..1) of VALUES (nan when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def _describe_device(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    if device == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device


@dataclass(frozen=True)
class GenerationBenchReport:
    """Hold the figures of one generation benchmark run (one model, one process)."""

    model: str
    quantization: str
    device: str
    device_description: str
    threads: int
    prompt_tokens: tuple[int, ...]
    max_new_tokens: int
    single_stream_jobs: int
    single_stream_tokens: int
    single_stream_tps: float
    aggregate_tps: dict[int, float]
    aggregate_tokens: dict[int, int]
    most_running: dict[int, int]
    busy_batch: int
    late_first_text_s: tuple[float, ...]
    peer: PeerReport | None = None
    failed_jobs: int = 0
    stories: int = 0

    @property
    def prompt_tokens_p50(self) -> int:
        """Return the median prompt length in tokens (nearest rank)."""
        return int(percentile(self.prompt_tokens, 0.5))

    @property
    def prompt_tokens_max(self) -> int:
        """Return the longest prompt in tokens."""
        return max(self.prompt_tokens)

    @property
    def late_p50(self) -> float:
        """Return the late jobs' median time to first streamed text."""
        return percentile(self.late_first_text_s, 0.5)

    @property
    def late_p95(self) -> float:
        """Return the late jobs' 95th percentile time to first streamed text."""
        return percentile(self.late_first_text_s, 0.95)

    def vs_peer(self, sessions: int) -> float | None:
        """Return aggregate tokens/s at SESSIONS over the peer's single stream (None: no peer)."""
        tps = self.aggregate_tps.get(sessions)
        if self.peer is None or tps is None or self.peer.single_stream_tps <= 0:
            return None
        return tps / self.peer.single_stream_tps

    def to_json(self) -> dict[str, Any]:
        """Return the figures as one JSON object (the keys `bench generate --json` prints)."""
        ratio = self.vs_peer(16)
        return {
            "model": self.model,
            "quantization": self.quantization,
            "device": self.device,
            "threads": self.threads,
            "prompt_tokens_p50": self.prompt_tokens_p50,
            "single_stream_tps": round(self.single_stream_tps, 2),
            "aggregate_tps": {str(n): round(t, 2) for n, t in sorted(self.aggregate_tps.items())},
            "peer": None
            if self.peer is None
            else {
                "name": self.peer.name,
                "single_stream_tps": round(self.peer.single_stream_tps, 2),
            },
            "late_job_first_text_s": {
                "p50": round(self.late_p50, 3),
                "p95": round(self.late_p95, 3),
            },
            "ratio_16_vs_peer": None if ratio is None else round(ratio, 3),
        }

    def format(self) -> str:
        """Return the figures as a markdown table with a short header and notes."""
        lines = [
            f"Narrator generation benchmark: {self.model}, {self.quantization} on "
            f"{self.device_description}",
            "(real worker path: memory queue + WorkerLoop + the `taleweaver worker` processor, "
            f"continuous batching; one candidate per job, up to {self.max_new_tokens} new "
            "tokens, sampling with a fixed seed)",
            f"Prompts: {self.stories} stories under way played into the engine, rendered by "
            f"the worker: {self.prompt_tokens_p50} tokens p50, {self.prompt_tokens_max} max.",
            "",
            "| concurrent sessions | tokens generated | tokens/s | vs. one stream | "
            "most running at once |",
            "|---:|---:|---:|---:|---:|",
            f"| 1 (one at a time, {self.single_stream_jobs} jobs) | "
            f"{self.single_stream_tokens} | {self.single_stream_tps:.1f} | 1.00x | 1 |",
        ]
        for n in sorted(self.aggregate_tps):
            if n == 1:
                continue
            lines.append(
                f"| {n} | {self.aggregate_tokens.get(n, 0)} | {self.aggregate_tps[n]:.1f} | "
                f"{self.aggregate_tps[n] / self.single_stream_tps:.2f}x | "
                f"{self.most_running.get(n, 0)} |"
            )
        lines += [
            "",
            f"A job arriving while a batch of {self.busy_batch} is generating "
            f"({len(self.late_first_text_s)} such jobs): first streamed text p50 "
            f"{self.late_p50:.2f} s, p95 {self.late_p95:.2f} s.",
        ]
        if self.peer is not None:
            peer = self.peer
            lines.append(
                f"Peer: llama.cpp (llama-cpp-python {peer.version}), the same GGUF file and "
                f"the same {peer.jobs} prompts one at a time on {peer.threads} threads: "
                f"{peer.single_stream_tps:.1f} tokens/s ({peer.tokens} tokens in "
                f"{peer.seconds:.2f} s)."
            )
            ratios = [f"one stream {self.single_stream_tps / peer.single_stream_tps:.2f}x"]
            ratios += [
                f"{n} sessions {self.vs_peer(n):.2f}x"
                for n in sorted(self.aggregate_tps)
                if n > 1 and self.vs_peer(n) is not None
            ]
            lines.append(f"Against the peer's one stream: {', '.join(ratios)}.")
        if self.failed_jobs:
            lines.append(
                f"{self.failed_jobs} job(s) failed; their generated tokens are still counted."
            )
        return "\n".join(lines)


@dataclass
class _Track:
    """Timings of one benchmark job, filled in as its events arrive."""

    job_id: str
    enqueued_at: float
    first_text_at: float | None = None
    finished_at: float | None = None
    failure: str | None = None
    batch_size: int | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Bench:
    """Run benchmark jobs through a memory queue and one WorkerLoop, and time their events."""

    def __init__(
        self,
        queue: JobQueue,
        worker_task: asyncio.Task[None],
        contexts: Sequence[StoryContext],
        sampling: SamplingSettings,
        progress: Progress,
    ) -> None:
        self._queue = queue
        self._worker_task = worker_task
        self._contexts = contexts
        self._sampling = sampling
        self._progress = progress
        self._tracks: dict[str, _Track] = {}
        self.next_session = 1
        self._dispatcher = asyncio.create_task(self._dispatch(), name="bench-events")

    def say(self, message: str) -> None:
        """Hand a progress line to the progress callback (and the debug log)."""
        # The callback prints to the terminal; an INFO log line would show it twice.
        log.debug("%s", message)
        self._progress(message)

    def context(self, session_id: int) -> StoryContext:
        """Return the story context of a session: the stories in order, then copies."""
        index = session_id - 1
        base = self._contexts[index % len(self._contexts)]
        return context_at_table(base, index // len(self._contexts) + 1)

    async def submit(self, count: int) -> list[_Track]:
        """Enqueue ``count`` narrate jobs for as many new sessions, all at once."""
        tracks = []
        for _ in range(count):
            session_id = self.next_session
            self.next_session += 1
            job = GenerationJob(
                job_id=new_job_id(),
                session_id=session_id,
                request=NarrateRequest(context=self.context(session_id), sampling=self._sampling),
            )
            track = _Track(job.job_id, time.perf_counter())
            self._tracks[job.job_id] = track
            await self._queue.enqueue(job)
            tracks.append(track)
        return tracks

    async def until(self, events: Iterable[asyncio.Event], what: str) -> None:
        """Wait for every event, failing if the worker or the event reader stops first."""
        for event in events:
            if event.is_set():
                continue
            waiter = asyncio.create_task(event.wait())
            done, _ = await asyncio.wait(
                {waiter, self._worker_task, self._dispatcher},
                timeout=_WAIT_LIMIT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if waiter not in done:
                waiter.cancel()
                reason = "timed out" if not done else "the worker or event reader stopped"
                raise BenchmarkError(f"benchmark {what}: {reason}")

    async def run_together(self, count: int, what: str) -> tuple[int, float, list[_Track]]:
        """Enqueue ``count`` jobs at once and return (tokens, wall seconds, tracks)."""
        tokens_before = generated_token_count()
        started = time.perf_counter()
        tracks = await self.submit(count)
        await self.until([t.done for t in tracks], what)
        wall = max(t.finished_at or started for t in tracks) - started
        return generated_token_count() - tokens_before, wall, tracks

    def failures(self) -> int:
        """Return how many jobs failed so far."""
        return sum(1 for t in self._tracks.values() if t.failure is not None)

    async def close(self) -> None:
        """Stop reading events."""
        self._dispatcher.cancel()
        await asyncio.gather(self._dispatcher, return_exceptions=True)

    async def _dispatch(self) -> None:
        async for event in self._queue.events():
            now = time.perf_counter()
            track = self._tracks.get(event.job_id)
            if isinstance(event, JobProgress):
                if track is not None and track.first_text_at is None:
                    track.first_text_at = now
                    track.started.set()
                continue
            await self._queue.ack(event)
            if track is None:
                continue
            track.finished_at = now
            if track.first_text_at is None:  # no partial text: the result is the first text
                track.first_text_at = now
            if isinstance(event, JobCompleted):
                size = event.meta.get("batch_size")
                track.batch_size = size if isinstance(size, int) else None
            else:
                track.failure = event.reason
                log.warning("benchmark job %s failed: %s", event.job_id, event.reason)
            track.started.set()
            track.done.set()


def bench_sampling(max_new_tokens: int) -> SamplingSettings:
    """Return the benchmark's sampling settings (the peer gets the same)."""
    try:
        return SamplingSettings(
            temperature=0.8,
            top_k=40,
            top_p=0.95,
            repetition_penalty=1.1,
            no_repeat_ngram_size=3,
            max_new_tokens=max_new_tokens,
            # The most the stop policy allows, so sentences and paragraphs rarely end a job.
            max_paragraphs=5,
            max_sentences=12,
        )
    except ValidationError as exc:
        raise ValueError(f"invalid benchmark settings: {exc}") from exc


def render_prompt(model: LoadedModel, context: StoryContext, max_new_tokens: int) -> str:
    """Return the prompt text the worker renders for CONTEXT on this model."""
    return render_narrator_prompt(
        model.marker_guard.context(context),
        count_tokens=model.count_tokens,
        render_chat=model.render_chat,
        context_window=model.context_window,
        reserve_tokens=max_new_tokens,
    ).text


def _worker_processor(progress: Progress, seed: int) -> ProcessorFactory:
    def build(settings: Settings, max_jobs: int) -> BatchProcessor:
        from engine.worker.main import load_processor

        return load_processor(settings, progress, seed=seed, max_jobs=max_jobs)

    return build


async def benchmark_generation(
    settings: Settings,
    *,
    concurrency: Sequence[int] = (4, 8, 16),
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    progress: Progress = print,
    single_stream_jobs: int = SINGLE_STREAM_JOBS,
    busy_batch: int = BUSY_BATCH,
    late_jobs: int = LATE_JOBS,
    seed: int = BENCH_SEED,
    peer: str | None = None,
    stories: int | None = None,
    model: LoadedModel | None = None,
    processor_factory: ProcessorFactory | None = None,
) -> GenerationBenchReport:
    """Measure single-stream, batched and busy-worker generation on realistic prompts.

    ``model`` renders and counts the prompts (default: the configured model, loaded
    here); ``processor_factory`` builds the worker's processor (default: the worker's
    own ``load_processor``, which loads the model once more, as a worker process would).
    """
    levels = sorted(set(concurrency))
    if not levels or levels[0] < 1:
        raise ValueError("concurrency must list at least one positive number of sessions")
    if single_stream_jobs < 1 or busy_batch < 1 or late_jobs < 1:
        raise ValueError("single_stream_jobs, busy_batch and late_jobs must be at least 1")
    sampling = bench_sampling(max_new_tokens)
    gguf = check_peer(peer, settings) if peer is not None else None

    progress("Playing the bench stories into a temporary database…")
    contexts = await bench_contexts(settings)
    if stories is not None:
        contexts = contexts[: max(1, stories)]
    if model is None:
        model = await asyncio.to_thread(
            load_model,
            settings.model,
            quantization=settings.quantization,
            device=settings.device,
            cache_dir=settings.cache_dir,
            progress=progress,
        )
    prompt_tokens = tuple(
        model.count_tokens(render_prompt(model, context, max_new_tokens)) for context in contexts
    )
    # One candidate per job: the tokens of one passage, comparable with any engine.
    worker_settings = settings.model_copy(update={"narrator_candidates": 1})
    max_jobs = max(levels[-1], busy_batch + 1)
    factory = processor_factory or _worker_processor(progress, seed)
    processor = await asyncio.to_thread(factory, worker_settings, max_jobs)

    url = f"memory://bench-{uuid.uuid4().hex}"
    # One delivery: a job that fails is reported at once instead of retried after a pause.
    queue = await open_queue(url, max_in_flight=max(32, 2 * max_jobs), max_deliveries=1)
    worker_queue = await open_worker_queue(url)
    worker = WorkerLoop(worker_queue, processor, max_batch=max_jobs, batch_window_s=_BATCH_WINDOW_S)
    worker_task = asyncio.create_task(worker.run(), name="bench-worker")
    bench = _Bench(queue, worker_task, contexts, sampling, progress)
    try:
        measured = await _measure(
            bench,
            levels,
            single_stream_jobs=single_stream_jobs,
            busy_batch=busy_batch,
            late_jobs=late_jobs,
            title=f"{settings.model} ({model.quantization} on {_describe_device(model.device)})",
            max_new_tokens=max_new_tokens,
        )
    finally:
        worker.stop()
        await queue.close()
        try:
            await asyncio.wait_for(worker_task, timeout=30.0)
        except Exception:  # a timeout included: cancel whatever is left
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await bench.close()
        cancel_all = getattr(processor, "cancel_all", None)
        if cancel_all is not None:  # the decode thread, so the peer runs alone
            await asyncio.to_thread(cancel_all)

    peer_report = None
    if gguf is not None:
        # The warm-up job's prompt, then the single-stream jobs' prompts, in order.
        warmup = render_prompt(model, bench.context(1), max_new_tokens)
        prompts = [
            render_prompt(model, bench.context(session), max_new_tokens)
            for session in range(2, 2 + single_stream_jobs)
        ]
        progress(f"Peer: llama.cpp on {gguf.name}, {len(prompts)} jobs one at a time…")
        peer_report = await asyncio.to_thread(
            run_llama_cpp,
            gguf,
            prompts,
            warmup=warmup,
            longest_prompt_tokens=max(model.count_tokens(p) for p in [warmup, *prompts]),
            max_new_tokens=max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            repeat_penalty=sampling.repetition_penalty,
            threads=torch.get_num_threads(),
            seed=seed,
            progress=progress,
        )
    return GenerationBenchReport(
        model=settings.model,
        quantization=model.quantization,
        device=model.device,
        device_description=_describe_device(model.device),
        threads=torch.get_num_threads(),
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        single_stream_jobs=single_stream_jobs,
        peer=peer_report,
        failed_jobs=bench.failures(),
        stories=len(contexts),
        busy_batch=busy_batch,
        **measured,
    )


async def _measure(
    bench: _Bench,
    levels: list[int],
    *,
    single_stream_jobs: int,
    busy_batch: int,
    late_jobs: int,
    title: str,
    max_new_tokens: int,
) -> dict[str, Any]:
    bench.say(f"Benchmarking {title}, up to {max_new_tokens} new tokens per job")
    bench.say("Warming up (one job)…")
    tokens, wall, _ = await bench.run_together(1, "warm-up")
    bench.say(f"  warm-up: {tokens} tokens in {wall:.2f} s")

    single_tokens = 0
    single_wall = 0.0
    for index in range(single_stream_jobs):
        tokens, wall, _ = await bench.run_together(1, "single stream")
        single_tokens += tokens
        single_wall += wall
        bench.say(
            f"Single stream, job {index + 1}/{single_stream_jobs}: {tokens} tokens "
            f"in {wall:.2f} s ({tokens / wall:.1f} tokens/s)"
        )
    if single_tokens == 0 or single_wall <= 0:
        raise BenchmarkError("single-stream jobs generated no tokens; no figures to compare")
    single_tps = single_tokens / single_wall
    bench.say(f"Single stream: {single_tps:.1f} tokens/s")

    aggregate: dict[int, float] = {1: single_tps}
    aggregate_tokens: dict[int, int] = {1: single_tokens}
    most_running: dict[int, int] = {1: 1}
    for n in levels:
        if n == 1:
            continue
        bench.say(f"{n} sessions at once…")
        tokens, wall, tracks = await bench.run_together(n, f"{n} concurrent sessions")
        aggregate[n] = tokens / wall if wall > 0 else 0.0
        aggregate_tokens[n] = tokens
        most_running[n] = max((t.batch_size or 0 for t in tracks), default=0)
        bench.say(
            f"  {n} sessions: {tokens}/{n * max_new_tokens} tokens in {wall:.2f} s = "
            f"{aggregate[n]:.1f} tokens/s ({aggregate[n] / single_tps:.2f}x single stream; "
            f"at most {most_running[n]} running at once)"
        )

    late: list[float] = []
    for index in range(late_jobs):
        bench.say(f"Late job {index + 1}/{late_jobs} while a batch of {busy_batch} is generating…")
        batch = await bench.submit(busy_batch)
        # The batch is generating once each of its jobs has streamed text.
        await bench.until([t.started for t in batch], "busy batch start")
        [job] = await bench.submit(1)
        await bench.until([job.started], "late job")
        late.append((job.first_text_at or job.enqueued_at) - job.enqueued_at)
        await bench.until([t.done for t in [*batch, job]], "busy batch")
        bench.say(f"  first text after {late[-1]:.2f} s")

    failed = bench.failures()
    if failed:
        bench.say(f"Warning: {failed} job(s) failed (their generated tokens still count)")
    return {
        "single_stream_tokens": single_tokens,
        "single_stream_tps": single_tps,
        "aggregate_tps": aggregate,
        "aggregate_tokens": aggregate_tokens,
        "most_running": most_running,
        "late_first_text_s": tuple(late),
    }
