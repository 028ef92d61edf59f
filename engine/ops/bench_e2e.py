"""Time a turn to the narrator's text end to end: engine, Redis queue, a worker process.

For each number of stories N (one round each), N stories well under way
(:mod:`engine.ops.bench_stories`) are played into a temporary SQLite database, then
play at once: each writes ``turns`` turns through ``StoryTable.write_turn``, the engine
queues the narrator's job on Redis, one ``taleweaver worker`` process (started here,
with the configured model, quantization, device and candidates) generates it, and the
engine stores the passage. Measured from the moment the engine accepted the turn (its
job queued) to the narrator's first streamed text and to the stored passage.

The queue keeps its production limits: a turn the queue refuses (QueueFull) goes back
to the players, who ask the narrator again two seconds later; those answers are counted,
and the deepest the queue got (jobs waiting and running) is sampled every 0.2 s.

``taleweaver worker`` always uses the queue's default key prefix, so the benchmark does
not share a Redis database with anyone: it claims an empty database of the server in
``TALEWEAVER_QUEUE_URL`` (default ``redis://127.0.0.1:6379``), never the one that URL
names, and deletes what it wrote there afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from engine.errors import StoryError, StoryUnavailable
from engine.ops.bench import percentile
from engine.ops.bench_stories import PlayedStory, play_stories, prepare_bench_server
from engine.queue.config import QueueConfig
from engine.queue.factory import open_inspector
from engine.queue.inspection import QueueInspector
from engine.queue.presence import WorkerPresence
from engine.queue.redis_connection import redact_url
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.story.views import NarrationOutcome, SessionView, TimeoutOutcome
from storage.models import NarratorCadence

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CLAIM_KEY = "taleweaver-bench-e2e:claim"
_CLAIM_TTL_S = 120
_CLAIM_RENEW_S = 30.0
# The queue's own key prefix: `taleweaver worker` has no setting for another.
_QUEUE_PREFIX = QueueConfig().key_prefix
RETRY_PAUSE_S = 2.0
_SAMPLE_EVERY_S = 0.2
_REPORT_EVERY_S = 10.0
# What the coordinator answers when the queue is full (engine.narrator.coordinator).
_QUEUE_FULL_ANSWER = "The narrator is busy"


class E2EBenchError(RuntimeError):
    """The end-to-end benchmark could not run to the end."""


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    return {"p50": round(percentile(values, 0.5), 3), "p95": round(percentile(values, 0.95), 3)}


@dataclass(frozen=True)
class RoundReport:
    """What one round of N stories measured."""

    stories: int
    narrations: int
    first_text_s: tuple[float, ...]
    passage_s: tuple[float, ...]
    queue_full: int
    queue_full_turns: int
    other_refusals: int
    turn_refusals: int
    failed: int
    filtered: int
    max_queue_depth: int
    max_waiting: int
    wall_s: float

    def to_json(self, max_in_flight: int) -> dict[str, Any]:
        """Return the round's figures as plain data."""
        return {
            "narrations": self.narrations,
            "first_text_s": _percentiles(self.first_text_s),
            "passage_s": _percentiles(self.passage_s),
            "queue_full_answers": self.queue_full,
            "turns_that_met_a_full_queue": self.queue_full_turns,
            "other_refusals": self.other_refusals,
            "turn_refusals": self.turn_refusals,
            "failed": self.failed,
            "filtered": self.filtered,
            "max_queue_depth": self.max_queue_depth,
            "max_waiting": self.max_waiting,
            "queue_bounded": self.max_queue_depth <= max_in_flight,
            "wall_s": round(self.wall_s, 2),
        }


@dataclass(frozen=True)
class E2EReport:
    """The figures of one end-to-end benchmark run."""

    model: str
    quantization: str
    device: str
    candidates: int
    worker_max_batch: int
    max_in_flight: int
    turns_per_story: int
    redis: str
    rounds: tuple[RoundReport, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """Return the report as one JSON object (for --json)."""
        return {
            "model": self.model,
            "quantization": self.quantization,
            "device": self.device,
            "candidates": self.candidates,
            "worker_max_batch": self.worker_max_batch,
            "max_in_flight": self.max_in_flight,
            "turns_per_story": self.turns_per_story,
            "rounds": {str(r.stories): r.to_json(self.max_in_flight) for r in self.rounds},
        }

    def format(self) -> str:
        """Render the report as a short header and a markdown table."""
        lines = [
            f"End to end: {self.model}, {self.quantization} on {self.device}, best of "
            f"{self.candidates}; one `taleweaver worker --max-batch {self.worker_max_batch}` "
            f"process; Redis {self.redis} (queue limit {self.max_in_flight} jobs); "
            f"{self.turns_per_story} turns per story",
            "(from the turn accepted, its job queued, to the narrator's first streamed text "
            "and to its stored passage)",
            "",
            "| stories at once | passages | first text p50 | p95 | passage p50 | p95 | "
            "QueueFull answers (turns) | most jobs in the queue | bounded |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rounds:
            first = _percentiles(r.first_text_s)
            passage = _percentiles(r.passage_s)
            lines.append(
                f"| {r.stories} | {r.narrations} | {_seconds(first['p50'])} | "
                f"{_seconds(first['p95'])} | {_seconds(passage['p50'])} | "
                f"{_seconds(passage['p95'])} | {r.queue_full} ({r.queue_full_turns}) | "
                f"{r.max_queue_depth} | "
                f"{'yes' if r.max_queue_depth <= self.max_in_flight else 'no'} |"
            )
        for r in self.rounds:
            notes = []
            if r.turn_refusals:
                notes.append(f"{r.turn_refusals} turns refused and written again")
            if r.other_refusals:
                notes.append(f"{r.other_refusals} other refusals of the narrator")
            if r.failed:
                notes.append(f"{r.failed} narrations failed")
            if r.filtered:
                notes.append(f"{r.filtered} passages filtered")
            if notes:
                lines.append(f"{r.stories} stories: {', '.join(notes)} (see the log).")
        return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def with_database(url: str, database: int) -> str:
    """Return a Redis URL naming another logical database of the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def _database_of(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


class RedisClaim:
    """An empty logical Redis database held by this run until released."""

    def __init__(self, url: str, client: Redis, token: str) -> None:
        self.url = url
        self._client = client
        self._token = token
        self._renewer = asyncio.create_task(self._renew(), name="bench-e2e-claim")

    @classmethod
    async def take(cls, server_url: str) -> RedisClaim:
        """Claim the highest-numbered empty database other than the URL's own."""
        own = _database_of(server_url)
        token = secrets.token_hex(8)
        busy = []
        for database in range(15, -1, -1):
            if database == own:
                continue
            url = with_database(server_url, database)
            client = Redis.from_url(url, socket_connect_timeout=5)
            try:
                if await client.dbsize() == 0 and await client.set(
                    CLAIM_KEY, token, nx=True, ex=_CLAIM_TTL_S
                ):
                    return cls(url, client, token)
                busy.append(database)
            except ResponseError:  # the server has fewer databases
                pass
            except (RedisError, OSError) as exc:
                await client.aclose()
                raise E2EBenchError(
                    f"cannot reach Redis at {redact_url(server_url)}: {exc}. Start it or "
                    "point TALEWEAVER_QUEUE_URL at it."
                ) from exc
            await client.aclose()
        raise E2EBenchError(
            f"no empty Redis database on {redact_url(server_url)} for the benchmark "
            f"(databases {', '.join(map(str, busy)) or 'none'} hold keys; the queue's own "
            f"database {own} is never used)"
        )

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(_CLAIM_RENEW_S)
            try:
                await self._client.set(CLAIM_KEY, self._token, ex=_CLAIM_TTL_S)
            except (RedisError, OSError) as exc:
                log.warning("could not renew the benchmark's Redis claim: %s", exc)

    async def release(self) -> None:
        """Delete every key this run wrote (the queue's and its own) and the claim."""
        self._renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            keys = [key async for key in self._client.scan_iter(match=f"{_QUEUE_PREFIX}:*")]
            for start in range(0, len(keys), 500):
                await self._client.delete(*keys[start : start + 500])
            await self._client.delete(CLAIM_KEY)
        finally:
            await self._client.aclose()


class WorkerProcess:
    """One `taleweaver worker` process, its output kept in a log file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, output: IO[bytes]) -> None:
        self.process = process
        self.log_path = log_path
        self._output = output

    @classmethod
    def start(
        cls, settings: Settings, queue_url: str, max_batch: int, folder: Path
    ) -> WorkerProcess:
        """Start `taleweaver worker` with SETTINGS' model options on QUEUE_URL."""
        env = dict(os.environ)
        env.pop("TALEWEAVER_METRICS_PORT", None)  # no port clash with a running worker
        env.update(
            {
                "TALEWEAVER_QUEUE_URL": queue_url,
                "TALEWEAVER_MODEL": settings.model,
                "TALEWEAVER_QUANTIZATION": settings.quantization,
                "TALEWEAVER_DEVICE": settings.device,
                "TALEWEAVER_CACHE_DIR": str(settings.cache_dir),
                "TALEWEAVER_NARRATOR_CANDIDATES": str(settings.narrator_candidates),
                "TALEWEAVER_LOG_LEVEL": settings.log_level,
            }
        )
        log_path = folder / "worker.log"
        output = log_path.open("wb")
        # The `taleweaver` console script is bot.cli:main; running it through this
        # interpreter needs no script on PATH.
        command = [
            sys.executable,
            "-c",
            "import sys; from bot.cli import main; sys.exit(main())",
            "worker",
            "--max-batch",
            str(max_batch),
        ]
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        return cls(process, log_path, output)

    def tail(self, lines: int = 15) -> str:
        """Return the last lines the worker printed."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def ready(
        self, inspector: QueueInspector, timeout_s: float, progress: Progress
    ) -> WorkerPresence:
        """Wait for this process's heartbeat (the model is loaded); return it."""
        deadline = time.monotonic() + timeout_s
        host = socket.gethostname()
        said = 0.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise E2EBenchError(
                    f"the worker exited with status {self.process.returncode} before it was "
                    f"ready:\n{self.tail()}"
                )
            for presence in await inspector.workers():
                if presence.pid == self.process.pid and presence.host == host:
                    return presence
            if time.monotonic() - said > _REPORT_EVERY_S:
                said = time.monotonic()
                progress("  waiting for the worker's heartbeat (it loads the model)…")
            await asyncio.sleep(0.25)
        raise E2EBenchError(
            f"the worker sent no heartbeat within {timeout_s:.0f} s:\n{self.tail()}"
        )

    async def stop(self) -> None:
        """Stop the worker as an operator would (SIGTERM), killing it if it hangs."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(self.process.wait, 60)
                except subprocess.TimeoutExpired:
                    log.warning("the benchmark's worker did not stop within 60 s; killing it")
                    self.process.kill()
                    await asyncio.to_thread(self.process.wait)
        finally:
            self._output.close()


@dataclass
class _Wait:
    """One narration a story waits for."""

    first_text_at: float | None = None
    stored: SessionView | None = None
    failure: str | None = None
    filtered: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class _Narrations:
    """The narration listener: notes first text and stored passages per story."""

    def __init__(self) -> None:
        self._waiting: dict[int, _Wait] = {}

    def expect(self, session_id: int) -> _Wait:
        wait = _Wait()
        self._waiting[session_id] = wait
        return wait

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Note the first partial text of the narration a story waits for."""
        wait = self._waiting.get(session_id)
        if wait is not None and wait.first_text_at is None:
            wait.first_text_at = time.perf_counter()

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Wake the story: its passage is stored."""
        wait = self._waiting.pop(outcome.session.id, None)
        if wait is not None:
            wait.stored = outcome.session
            wait.done.set()

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Wake the story without a passage."""
        log.warning("bench story %s: narrator failed: %s", session.id, reason)
        wait = self._waiting.pop(session.id, None)
        if wait is not None:
            wait.failure = reason
            wait.done.set()

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Count a filtered passage; its replacement (or a neutral line) follows."""
        wait = self._waiting.get(session.id)
        if wait is not None:
            wait.filtered += 1


async def _ignore_timeout(outcome: TimeoutOutcome) -> None:
    """Turn timeouts do not fall due within a bench run."""


@dataclass
class _Tally:
    first_text_s: list[float] = field(default_factory=list)
    passage_s: list[float] = field(default_factory=list)
    queue_full: int = 0
    queue_full_turns: int = 0
    other_refusals: int = 0
    turn_refusals: int = 0
    failed: int = 0
    filtered: int = 0


class _DepthSampler:
    """Sample the queue's depth (jobs waiting and running) while a round runs."""

    def __init__(self, inspector: QueueInspector) -> None:
        self._inspector = inspector
        self.max_depth = 0
        self.max_waiting = 0
        self.last_depth = 0
        self._task = asyncio.create_task(self._sample(), name="bench-e2e-depth")

    async def _sample(self) -> None:
        while True:
            try:
                stats = await self._inspector.stats()
            except Exception as exc:  # a missed sample is not worth the run
                log.warning("could not sample the queue: %s", exc)
            else:
                self.last_depth = stats.waiting + stats.running
                self.max_depth = max(self.max_depth, self.last_depth)
                self.max_waiting = max(self.max_waiting, stats.waiting)
            await asyncio.sleep(_SAMPLE_EVERY_S)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def _play_turns(
    runtime: StoryRuntime,
    narrations: _Narrations,
    story: PlayedStory,
    *,
    turns: int,
    wait_s: float,
    tally: _Tally,
) -> None:
    """Write TURNS turns in one story, each waiting for the narrator's passage."""
    view: SessionView | None = await runtime.story.queries.get(story.session_id)
    for number in range(turns):
        current = view.current_player if view is not None else None
        if current is None:
            log.warning("bench story %s: nobody's turn", story.session_id)
            return
        writer = next(p for p in story.players if p.user_id == current.user_id)
        text = story.story.turn_after(number, writer.display_name)
        # Players try again, as a refusal tells them to, for as long as the engine would
        # wait for a passage: a turn the database could not store, a narrator that
        # could not take the job.
        asking_until = time.monotonic() + wait_s
        while True:
            wait = narrations.expect(story.session_id)
            try:
                written = await runtime.table.write_turn(story.channel_id, writer, text)
                break
            except StoryUnavailable as exc:
                tally.turn_refusals += 1
                log.warning("bench story %s: turn refused: %s", story.session_id, exc)
            except StoryError as exc:
                tally.failed += 1
                log.warning("bench story %s: turn refused for good: %s", story.session_id, exc)
                return
            if time.monotonic() > asking_until:
                tally.failed += 1
                return
            await asyncio.sleep(RETRY_PAUSE_S)
        call = written.narrator
        if call is None:
            raise E2EBenchError("the narrator was not due after a turn (cadence every turn)")
        met_full_queue = False
        while call is None or not call.queued:
            if call is None:
                tally.other_refusals += 1
            elif (call.refusal or "").startswith(_QUEUE_FULL_ANSWER):
                tally.queue_full += 1
                if not met_full_queue:
                    met_full_queue = True
                    tally.queue_full_turns += 1
            else:
                tally.other_refusals += 1
                log.warning("bench story %s: %s", story.session_id, call.refusal)
            if time.monotonic() > asking_until:
                tally.failed += 1
                return
            await asyncio.sleep(RETRY_PAUSE_S)
            wait = narrations.expect(story.session_id)
            try:
                call = await runtime.table.call_narrator(story.channel_id, writer)
            except StoryError as exc:
                log.warning("bench story %s: asking again refused: %s", story.session_id, exc)
                call = None
        accepted = time.perf_counter()
        try:
            await asyncio.wait_for(wait.done.wait(), wait_s)
        except TimeoutError:
            tally.failed += 1
            log.warning("bench story %s: no passage within %.0f s", story.session_id, wait_s)
            return
        tally.filtered += wait.filtered
        if wait.stored is None:
            tally.failed += 1
            return
        now = time.perf_counter()
        first = wait.first_text_at if wait.first_text_at is not None else now
        tally.first_text_s.append(max(0.0, first - accepted))
        tally.passage_s.append(now - accepted)
        view = wait.stored


async def _round(
    runtime: StoryRuntime,
    narrations: _Narrations,
    inspector: QueueInspector,
    *,
    stories: int,
    first: int,
    turns: int,
    wait_s: float,
    progress: Progress,
) -> RoundReport:
    progress(f"{stories} stories: playing them into the database…")
    await prepare_bench_server(runtime, NarratorCadence.ON_DEMAND)

    def played_so_far(done: int) -> None:
        if done % 10 == 0 and done < stories:
            progress(f"  {done}/{stories} stories played")

    played = await play_stories(runtime, stories, first=first, on_played=played_so_far)
    await prepare_bench_server(runtime, NarratorCadence.EVERY_TURN)
    progress(f"{stories} stories: {turns} turns each, every one answered by the narrator…")
    tally = _Tally()
    sampler = _DepthSampler(inspector)
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(
            _play_turns(runtime, narrations, story, turns=turns, wait_s=wait_s, tally=tally)
        )
        for story in played
    ]
    try:
        pending: set[asyncio.Task[None]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=_REPORT_EVERY_S, return_when=asyncio.FIRST_EXCEPTION
            )
            for task in done:
                task.result()  # a story that failed for good stops the round
            if pending:
                progress(
                    f"  {len(tally.passage_s)}/{stories * turns} passages stored after "
                    f"{time.perf_counter() - started:.0f} s; {sampler.last_depth} jobs in "
                    f"the queue; {tally.queue_full} QueueFull answers"
                )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sampler.stop()
    wall = time.perf_counter() - started
    report = RoundReport(
        stories=stories,
        narrations=len(tally.passage_s),
        first_text_s=tuple(tally.first_text_s),
        passage_s=tuple(tally.passage_s),
        queue_full=tally.queue_full,
        queue_full_turns=tally.queue_full_turns,
        other_refusals=tally.other_refusals,
        turn_refusals=tally.turn_refusals,
        failed=tally.failed,
        filtered=tally.filtered,
        max_queue_depth=sampler.max_depth,
        max_waiting=sampler.max_waiting,
        wall_s=wall,
    )
    first_text = _percentiles(report.first_text_s)
    passage = _percentiles(report.passage_s)
    progress(
        f"  {stories} stories: {report.narrations} passages in {wall:.0f} s; first text "
        f"p50 {_seconds(first_text['p50'])}, p95 {_seconds(first_text['p95'])}; passage p50 "
        f"{_seconds(passage['p50'])}, p95 {_seconds(passage['p95'])}; most jobs in the queue "
        f"{report.max_queue_depth}; {report.queue_full} QueueFull answers"
    )
    return report


async def benchmark_e2e(
    settings: Settings,
    *,
    stories: Sequence[int] = (1, 10, 50),
    turns: int = 2,
    max_batch: int = 8,
    max_in_flight: int | None = None,
    worker_ready_s: float = 900.0,
    progress: Progress = print,
) -> E2EReport:
    """Run one round per entry of STORIES through Redis and a `taleweaver worker` process."""
    rounds_asked = list(stories)
    if not rounds_asked or min(rounds_asked) < 1 or not 1 <= turns <= 20 or max_batch < 1:
        raise E2EBenchError(
            "stories must list positive numbers, turns be between 1 and 20 and max_batch at least 1"
        )
    limits = QueueConfig() if max_in_flight is None else QueueConfig(max_in_flight=max_in_flight)
    server = settings.queue_url if settings.queue_url.startswith("redis") else DEFAULT_REDIS_URL
    claim = await RedisClaim.take(server)
    progress(f"Using Redis database {redact_url(claim.url)} for this run")
    try:
        with tempfile.TemporaryDirectory(prefix="taleweaver-e2e-") as folder:
            return await _run(
                settings,
                claim.url,
                Path(folder),
                rounds=rounds_asked,
                turns=turns,
                max_batch=max_batch,
                max_in_flight=limits.max_in_flight,
                worker_ready_s=worker_ready_s,
                progress=progress,
            )
    finally:
        await claim.release()


async def _run(
    settings: Settings,
    queue_url: str,
    folder: Path,
    *,
    rounds: Sequence[int],
    turns: int,
    max_batch: int,
    max_in_flight: int,
    worker_ready_s: float,
    progress: Progress,
) -> E2EReport:
    inspector = open_inspector(queue_url)
    progress(f"Starting `taleweaver worker --max-batch {max_batch}` ({settings.model})…")
    worker = WorkerProcess.start(settings, queue_url, max_batch, folder)
    try:
        presence = await worker.ready(inspector, worker_ready_s, progress)
        progress(
            f"Worker {presence.worker_id} ready ({presence.quantization} on {presence.device})"
        )
        bench_settings = settings.model_copy(
            update={
                "database_url": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
                "queue_url": queue_url,
                # Players here write as soon as the narrator has answered.
                "turns_per_minute": 100,
                "narrations_per_minute": 100,
                "metrics_port": None,
            }
        )
        narrations = _Narrations()
        runtime = await StoryRuntime.open(
            bench_settings,
            listener=narrations,
            on_timeout=_ignore_timeout,
            queue_limits={"max_in_flight": max_in_flight},
        )
        # A passage takes at most the engine's own deadline before it gives up.
        wait_s = settings.narrator_deadline_s + 60
        try:
            progress("Warm-up: one story, one turn (not counted)…")
            await _round(
                runtime,
                narrations,
                inspector,
                stories=1,
                first=0,
                turns=1,
                wait_s=wait_s,
                progress=lambda line: None,
            )
            reports = []
            first = 1
            for count in rounds:
                reports.append(
                    await _round(
                        runtime,
                        narrations,
                        inspector,
                        stories=count,
                        first=first,
                        turns=turns,
                        wait_s=wait_s,
                        progress=progress,
                    )
                )
                first += count
        finally:
            await runtime.close()
        if worker.process.poll() is not None:
            raise E2EBenchError(f"the worker exited during the run:\n{worker.tail()}")
    finally:
        await worker.stop()
        await inspector.close()
    return E2EReport(
        model=settings.model,
        quantization=presence.quantization,
        device=presence.device,
        candidates=settings.narrator_candidates,
        worker_max_batch=max_batch,
        max_in_flight=max_in_flight,
        turns_per_story=turns,
        redis=redact_url(queue_url),
        rounds=tuple(reports),
    )
