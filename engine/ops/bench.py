"""Measure narrator throughput and latency through the real worker path.

Jobs go through the very path a story turn takes: an in-process ``memory://`` queue,
the worker's :class:`WorkerLoop` (dynamic batching, generation in a worker thread)
and :class:`NarratorJobProcessor` (StoryContext rendered into the model's prompt).

By default the narrator's text stop rules (speaker lines, role markers) are
switched off so that jobs run to ``max_new_tokens`` and runs are comparable; the
stopping criteria still run every step, so their cost is measured. The model's
end-of-sequence token still ends a job. Tokens are the ones the generator actually
produced for each job (its ``new_tokens``), never the requested maximum.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from pydantic import ValidationError

from engine.protocol.context import ContextTurn, StoryContext
from engine.protocol.requests import NarrateRequest, new_job_id
from engine.protocol.sampling import SamplingSettings
from engine.queue.factory import open_queue, open_worker_queue
from engine.queue.interfaces import JobQueue
from engine.queue.jobs import GenerationJob, JobCompleted, JobProgress
from engine.settings import Settings
from engine.worker.loop import WorkerLoop
from engine.worker.model.generator import (
    BatchGenerator,
    GenerationRequest,
    GenerationResult,
    PartialCallback,
)
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.model.stopping import StopPolicy
from engine.worker.processor import NarratorJobProcessor

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

BENCH_SEED = 1234
SINGLE_STREAM_JOBS = 3
BUSY_BATCH = 8
_WAIT_LIMIT_S = 1800.0
_BATCH_WINDOW_S = 0.05


class BenchmarkError(RuntimeError):
    """The benchmark could not produce honest figures."""


@dataclass(frozen=True)
class GenerationBenchReport:
    """Hold the figures of one generation benchmark run (one model, one process)."""

    device: str
    quantization: str
    model: str
    single_stream_tps: float
    aggregate_tps: dict[int, float]
    speedup: dict[int, float]
    ttft_while_busy_s: float
    late_job_total_s: float
    max_new_tokens: int = 0
    single_stream_jobs: int = 0
    single_stream_tokens: int = 0
    aggregate_tokens: dict[int, int] = field(default_factory=dict)
    busy_batch: int = BUSY_BATCH
    failed_jobs: int = 0
    stop_rules: bool = False

    def format(self) -> str:
        """Return the figures as a markdown table with a short header and notes."""
        lines = [
            f"Narrator generation benchmark: {self.model}, {self.quantization} on {self.device}",
            "(real worker path: memory queue + WorkerLoop + NarratorJobProcessor; "
            f"up to {self.max_new_tokens} new tokens per job, sampling, fixed seed; "
            f"narrator stop rules {'on' if self.stop_rules else 'off, EOS still ends a job'})",
            "",
            "| concurrent sessions | tokens generated | tokens/s | speedup |",
            "|---:|---:|---:|---:|",
            f"| 1 (one at a time, {self.single_stream_jobs} jobs) | "
            f"{self.single_stream_tokens} | {self.single_stream_tps:.1f} | 1.00x |",
        ]
        for n in sorted(self.aggregate_tps):
            lines.append(
                f"| {n} | {self.aggregate_tokens.get(n, 0)} | {self.aggregate_tps[n]:.1f} | "
                f"{self.speedup[n]:.2f}x |"
            )
        lines += [
            "",
            f"A job arriving while a batch of {self.busy_batch} is generating: first streamed "
            f"text after {self.ttft_while_busy_s:.2f} s, finished after "
            f"{self.late_job_total_s:.2f} s.",
        ]
        if self.failed_jobs:
            lines.append(
                f"{self.failed_jobs} job(s) failed; their generated tokens are still counted."
            )
        return "\n".join(lines)


class _CountingGenerator(BatchGenerator):
    """Remember each request's result so the benchmark counts the tokens really generated."""

    def __init__(self, loaded: LoadedModel, *, max_batch_size: int, stop_rules: bool) -> None:
        super().__init__(loaded, max_batch_size=max_batch_size)
        self._stop_rules = stop_rules
        self._lock = threading.Lock()
        # Tokens per request over every round: a job whose candidates were all junk is
        # sampled again, and those tokens were generated too.
        self._tokens: dict[str, int] = {}

    def generate_batch(
        self,
        requests: Sequence[GenerationRequest],
        on_partial: PartialCallback | None = None,
        *,
        seed: int | None = None,
    ) -> list[GenerationResult]:
        """Generate as the base class does and count the tokens of each request."""
        if not self._stop_rules:
            requests = [replace(r, stop=_without_stop_rules(r.stop)) for r in requests]
        results = super().generate_batch(requests, on_partial, seed=seed)
        with self._lock:
            for result in results:
                self._tokens[result.request_id] = (
                    self._tokens.get(result.request_id, 0) + result.new_tokens
                )
        return results

    def new_tokens(self, request_id: str) -> int:
        """Return how many tokens were generated for a request (0 if none yet)."""
        with self._lock:
            return self._tokens.get(request_id, 0)


def _without_stop_rules(stop: StopPolicy) -> StopPolicy:
    """Return a policy that never ends a job early (EOS and max_new_tokens still do)."""
    return StopPolicy(
        max_paragraphs=stop.max_paragraphs,
        markers=(),
        stop_at_any_speaker=False,
        narrator_label=stop.narrator_label,
    )


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


_SCENES: tuple[tuple[str, str, str, tuple[str, str], tuple[str, str]], ...] = (
    (
        "The Lantern",
        "fantasy",
        "A lighthouse keeper finds a door in the sea.",
        ("Mira", "Tom"),
        (
            "Mira climbs the spiral stairs, counting the steps as the storm rattles the glass.",
            "Tom lights the great lamp and sees a dark archway rising out of the waves.",
        ),
    ),
    (
        "Cold Orbit",
        "scifi",
        "A salvage crew boards a station that went silent forty years ago.",
        ("Ade", "Lin"),
        (
            "Ade cycles the airlock and the station's lights flicker on, one corridor at a time.",
            "Lin follows the trail of frost to a sealed hatch marked with a child's drawing.",
        ),
    ),
    (
        "The Vanished Chef",
        "mystery",
        "The chef of a famous restaurant disappears between two courses.",
        ("Rosa", "Ben"),
        (
            "Rosa inspects the kitchen and finds the soup still warm on the stove.",
            "Ben questions the waiter, who keeps glancing at the cellar door.",
        ),
    ),
    (
        "Dragon's Tithe",
        "fantasy",
        "A village must choose who carries the yearly gift to the dragon.",
        ("Kai", "Nell"),
        (
            "Kai draws the short straw and the whole square falls silent.",
            "Nell packs bread, rope and her grandmother's silver knife for the long climb.",
        ),
    ),
    (
        "Red Dust",
        "scifi",
        "The first colonists on Mars wake to find their rover gone.",
        ("Omar", "Sun"),
        (
            "Omar follows the tracks out past the solar field toward the canyon.",
            "Sun radios the base, but only static answers from the hills.",
        ),
    ),
    (
        "Night Train",
        "mystery",
        "A passenger vanishes from a locked sleeper car on the night train.",
        ("Ivy", "Jon"),
        (
            "Ivy notices the window of the empty compartment is latched from the inside.",
            "Jon finds a torn ticket for a station the train never stops at.",
        ),
    ),
    (
        "The Sunken Library",
        "fantasy",
        "Scholars dive into a flooded library to recover a forbidden atlas.",
        ("Elsa", "Finn"),
        (
            "Elsa lights a glowing stone and the drowned shelves shimmer around her.",
            "Finn pulls a sealed book from the silt, and the water turns suddenly warm.",
        ),
    ),
    (
        "Signal Lost",
        "scifi",
        "A deep-space probe starts sending back music nobody on Earth composed.",
        ("Maya", "Raj"),
        (
            "Maya slows the recording down and hears a pattern hidden under the melody.",
            "Raj points the big dish at the probe again and waits for the next transmission.",
        ),
    ),
)

_GENRE_INSTRUCTIONS = {
    "fantasy": "Narrate a fantasy tale with vivid, grounded detail and a warm storyteller's voice.",
    "scifi": "Narrate science fiction with a clear, precise voice and plausible technology.",
    "mystery": "Narrate a mystery in a measured, observant voice that plants clues fairly.",
}


def story_context(index: int) -> StoryContext:
    """Return a distinct, realistic story context for benchmark session ``index``."""
    title, genre, premise, players, turns = _SCENES[index % len(_SCENES)]
    if index >= len(_SCENES):
        title = f"{title} (table {index // len(_SCENES) + 1})"
    return StoryContext(
        title=title,
        genre_key=genre,
        genre_instructions=_GENRE_INSTRUCTIONS[genre],
        premise=premise,
        player_names=players,
        summary="",
        lore=(),
        authors_note="",
        recent_turns=tuple(
            ContextTurn(number, players[(number - 1) % 2], False, text)
            for number, text in enumerate(turns, start=1)
        ),
        next_player=players[0],
    )


class _Bench:
    """Run benchmark jobs through a memory queue and one WorkerLoop, and time their events."""

    def __init__(
        self,
        queue: JobQueue,
        generator: _CountingGenerator,
        worker_task: asyncio.Task[None],
        sampling: SamplingSettings,
        progress: Progress,
    ) -> None:
        self._queue = queue
        self._generator = generator
        self._worker_task = worker_task
        self._sampling = sampling
        self._progress = progress
        self._tracks: dict[str, _Track] = {}
        self._next_session = 1
        self._dispatcher = asyncio.create_task(self._dispatch(), name="bench-events")

    def say(self, message: str) -> None:
        """Hand a progress line to the progress callback (and the debug log)."""
        # The callback prints to the terminal; an INFO log line would show it twice.
        log.debug("%s", message)
        self._progress(message)

    async def submit(self, count: int) -> list[_Track]:
        """Enqueue ``count`` narrate jobs for as many new sessions, all at once."""
        tracks = []
        for _ in range(count):
            session_id = self._next_session
            self._next_session += 1
            job = GenerationJob(
                job_id=new_job_id(),
                session_id=session_id,
                request=NarrateRequest(
                    context=story_context(session_id - 1), sampling=self._sampling
                ),
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

    async def until_any(self, events: Sequence[asyncio.Event], what: str) -> None:
        """Wait until at least one of the events is set."""
        signal = asyncio.Event()
        watchers = [asyncio.create_task(self._relay(event, signal)) for event in events]
        try:
            await self.until([signal], what)
        finally:
            for watcher in watchers:
                watcher.cancel()

    async def run_together(self, count: int, what: str) -> tuple[int, float, list[_Track]]:
        """Enqueue ``count`` jobs at once and return (tokens, wall seconds, tracks)."""
        started = time.perf_counter()
        tracks = await self.submit(count)
        await self.until([t.done for t in tracks], what)
        wall = max(t.finished_at or started for t in tracks) - started
        return self.tokens(tracks), wall, tracks

    def tokens(self, tracks: Iterable[_Track]) -> int:
        """Return the tokens actually generated for these jobs."""
        return sum(self._generator.new_tokens(t.job_id) for t in tracks)

    def failures(self) -> int:
        """Return how many jobs failed so far."""
        return sum(1 for t in self._tracks.values() if t.failure is not None)

    async def close(self) -> None:
        """Stop reading events."""
        self._dispatcher.cancel()
        await asyncio.gather(self._dispatcher, return_exceptions=True)

    @staticmethod
    async def _relay(event: asyncio.Event, signal: asyncio.Event) -> None:
        await event.wait()
        signal.set()

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


async def benchmark_generation(
    settings: Settings,
    *,
    concurrency: Sequence[int] = (4, 8, 16),
    max_new_tokens: int = 48,
    progress: Progress = print,
    model: LoadedModel | None = None,
    single_stream_jobs: int = SINGLE_STREAM_JOBS,
    busy_batch: int = BUSY_BATCH,
    seed: int = BENCH_SEED,
    stop_rules: bool = False,
) -> GenerationBenchReport:
    """Load the model once and measure single-stream, batched and busy-worker generation."""
    levels = sorted(set(concurrency))
    if not levels or levels[0] < 1:
        raise ValueError("concurrency must list at least one positive number of sessions")
    if single_stream_jobs < 1 or busy_batch < 1:
        raise ValueError("single_stream_jobs and busy_batch must be at least 1")
    sampling: dict[str, Any] = {
        "temperature": 0.8,
        "top_k": 40,
        "top_p": 0.95,
        "repetition_penalty": 1.1,
        "no_repeat_ngram_size": 3,
        "max_new_tokens": max_new_tokens,
        "max_paragraphs": 5,  # the most the stop policy allows, so paragraphs rarely end a job
    }
    try:
        checked = SamplingSettings.model_validate(sampling)
    except ValidationError as exc:
        raise ValueError(f"invalid benchmark settings: {exc}") from exc

    if model is None:
        model = await asyncio.to_thread(
            load_model,
            settings.model,
            quantization=settings.quantization,
            device=settings.device,
            cache_dir=settings.cache_dir,
            progress=progress,
        )
        model_name = settings.model
    else:
        model_name = model.source
    batch_size = max(levels[-1], busy_batch)
    generator = _CountingGenerator(model, max_batch_size=batch_size, stop_rules=stop_rules)
    processor = NarratorJobProcessor(generator, seed=seed)

    url = f"memory://bench-{uuid.uuid4().hex}"
    # One delivery: a job that fails is reported at once instead of retried after a pause.
    queue = await open_queue(url, max_in_flight=max(32, 2 * batch_size), max_deliveries=1)
    worker_queue = await open_worker_queue(url)
    worker = WorkerLoop(
        worker_queue, processor, max_batch=batch_size, batch_window_s=_BATCH_WINDOW_S
    )
    worker_task = asyncio.create_task(worker.run(), name="bench-worker")
    bench = _Bench(queue, generator, worker_task, checked, progress)
    try:
        return await _measure(
            bench,
            levels,
            single_stream_jobs=single_stream_jobs,
            busy_batch=busy_batch,
            device=_describe_device(model.device),
            quantization=model.quantization,
            model_name=model_name,
            max_new_tokens=max_new_tokens,
            stop_rules=stop_rules,
        )
    finally:
        worker.stop()
        await queue.close()
        try:
            await asyncio.wait_for(worker_task, timeout=5.0)
        except Exception:  # a timeout included: cancel whatever is left
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await bench.close()


async def _measure(
    bench: _Bench,
    levels: list[int],
    *,
    single_stream_jobs: int,
    busy_batch: int,
    device: str,
    quantization: str,
    model_name: str,
    max_new_tokens: int,
    stop_rules: bool,
) -> GenerationBenchReport:
    bench.say(
        f"Benchmarking {model_name} ({quantization} on {device}), "
        f"up to {max_new_tokens} new tokens per job"
    )
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

    aggregate: dict[int, float] = {}
    aggregate_tokens: dict[int, int] = {}
    for n in levels:
        bench.say(f"{n} sessions at once…")
        tokens, wall, tracks = await bench.run_together(n, f"{n} concurrent sessions")
        aggregate[n] = tokens / wall if wall > 0 else 0.0
        aggregate_tokens[n] = tokens
        sizes = sorted({t.batch_size for t in tracks if t.batch_size is not None}, reverse=True)
        bench.say(
            f"  {n} sessions: {tokens}/{n * max_new_tokens} tokens in {wall:.2f} s = "
            f"{aggregate[n]:.1f} tokens/s ({aggregate[n] / single_tps:.2f}x single stream; "
            f"batch sizes {', '.join(map(str, sizes)) or '?'})"
        )

    bench.say(f"Late job while a batch of {busy_batch} is generating…")
    batch = await bench.submit(busy_batch)
    await bench.until_any([t.started for t in batch], "busy batch start")
    [late] = await bench.submit(1)
    await bench.until([late.done], "late job")
    await bench.until([t.done for t in batch], "busy batch")
    ttft = (late.first_text_at or late.enqueued_at) - late.enqueued_at
    late_total = (late.finished_at or late.enqueued_at) - late.enqueued_at
    bench.say(f"  late job: first text after {ttft:.2f} s, done after {late_total:.2f} s")

    failed = bench.failures()
    if failed:
        bench.say(f"Warning: {failed} job(s) failed (their generated tokens still count)")
    return GenerationBenchReport(
        device=device,
        quantization=quantization,
        model=model_name,
        single_stream_tps=single_tps,
        aggregate_tps=aggregate,
        speedup={n: tps / single_tps for n, tps in aggregate.items()},
        ttft_while_busy_s=ttft,
        late_job_total_s=late_total,
        max_new_tokens=max_new_tokens,
        single_stream_jobs=single_stream_jobs,
        single_stream_tokens=single_tokens,
        aggregate_tokens=aggregate_tokens,
        busy_batch=busy_batch,
        failed_jobs=failed,
        stop_rules=stop_rules,
    )


def _describe_device(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name()})"
    if device == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device
