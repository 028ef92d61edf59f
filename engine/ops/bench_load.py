"""Measure the engine under many busy stories: turns per second and turn latency.

N stories (two players each) play at once on the configured database, each player
writing as soon as it is their turn, through the same ``StoryTable.write_turn`` every
front-end calls. Two rounds on fresh stories:

- without the narrator (cadence on demand): a turn is its transaction (checks, store,
  rotation);
- with the narrator (cadence every turn): a turn also reads the story's context and
  queues a narrator job; an in-process worker answers each job at once with a fixed
  passage (no model runs), and the passage is checked and stored as a real one. The
  story waits for its passage before the next turn, as in play. So this round measures
  the engine, queue and database around the narrator, not text generation (see
  ``taleweaver bench generate`` for that).

By default every story writes its next turn the moment it may, so the engine runs
flat out and a turn's latency is mostly its wait behind the others (stories divided
by turns per second); ``pause`` gives each story that long between its turns, for
latency at a load the engine carries. Latency is the time one ``write_turn`` call
takes; with the narrator also the time from a turn's call to its passage being
stored. CPU is this process's CPU time (all its
threads, SQLite's included; a PostgreSQL server's own CPU is not) divided by turns.
The bench's stories live on a server id of their own and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import make_url

from engine.actors import Actor
from engine.errors import StoryError
from engine.queue.interfaces import BatchOutcome, BatchProcessor, ProgressCallback
from engine.queue.jobs import GenerationJob
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.story.views import NarrationOutcome, SessionView, TimeoutOutcome
from storage.models import GuildSettings, NarratorCadence, StorySession

log = logging.getLogger(__name__)

# A server id no Discord server has (snowflakes are far larger), for the bench's stories.
BENCH_GUILD = 7_000_000_001
BENCH_MODERATOR = Actor(7_000_000_002, "Bench Moderator", is_moderator=True)
_FIRST_CHANNEL = 7_100_000_000
_FIRST_PLAYER = 7_200_000_000
# The longest a story waits for one passage before the bench gives up on it.
PASSAGE_WAIT_S = 60.0

_SCENES = (
    "The lamp gutters as the tide climbs the stair.",
    "Salt wind rattles the shutters of the keeper's room.",
    "Far below, the door in the sea swings open on its own.",
    "A gull cries once, and the fog rolls back from the rocks.",
    "The brass bell on the gallery hums though nobody struck it.",
    "Water beads on the map and runs along the drawn coast.",
)
_ACTIONS = (
    "I trim the wick and watch the water.",
    "I climb down to the landing with the rope.",
    "I read the logbook by the lamp's light.",
    "I call out across the rocks.",
    "I wipe the salt from the great lens.",
)


class LoadBenchError(RuntimeError):
    """The load benchmark could not run to the end."""


def fixed_narrator() -> BatchProcessor:
    """Return a worker processor that answers every job at once with a fixed passage."""
    counter = itertools.count()

    def answer(jobs: list[GenerationJob], on_progress: ProgressCallback) -> Sequence[BatchOutcome]:
        outcomes: list[BatchOutcome] = []
        for job in jobs:
            n = next(counter)
            text = f"{_SCENES[n % len(_SCENES)]} {_SCENES[(n // len(_SCENES)) % len(_SCENES)]}"
            outcomes.append((job.job_id, text))
        return outcomes

    return answer


def _percentile(values: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile SHARE (0..1) of VALUES."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """Percentiles of one latency, in milliseconds."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summarise latencies given in seconds."""
        ms = [s * 1000 for s in seconds]
        return cls(
            p50_ms=round(_percentile(ms, 0.50), 2),
            p95_ms=round(_percentile(ms, 0.95), 2),
            p99_ms=round(_percentile(ms, 0.99), 2),
            max_ms=round(max(ms, default=math.nan), 2),
        )


@dataclass(frozen=True)
class RoundReport:
    """What one round (with or without the narrator) measured."""

    narrator: bool
    turns: int
    wall_s: float
    turns_per_s: float
    cpu_ms_per_turn: float
    turn_latency: Latency
    passages: int = 0
    passage_latency: Latency | None = None
    refused: int = 0


@dataclass(frozen=True)
class LoadReport:
    """The figures of one load benchmark run."""

    database: str
    stories: int
    turns_per_story: int
    pause_s: float = 0.0
    rounds: tuple[RoundReport, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (for --json)."""
        return asdict(self)

    def format(self) -> str:
        """Render the report as a few readable lines."""
        lines = [
            f"database {self.database}: {self.stories} stories at once, "
            f"{self.turns_per_story} turns each"
            + (f", {self.pause_s:g} s between a story's turns" if self.pause_s else "")
        ]
        for r in self.rounds:
            t = r.turn_latency
            label = "with the narrator (instant fixed passages)" if r.narrator else "no narrator"
            lines.append(
                f"  {label}: {r.turns} turns in {r.wall_s:.2f} s = {r.turns_per_s:.1f} turns/s; "
                f"turn latency p50 {t.p50_ms:.1f} ms, p95 {t.p95_ms:.1f} ms, "
                f"p99 {t.p99_ms:.1f} ms, max {t.max_ms:.1f} ms; "
                f"CPU {r.cpu_ms_per_turn:.2f} ms per turn"
            )
            if r.passage_latency is not None:
                p = r.passage_latency
                lines.append(
                    f"    {r.passages} passages; turn to stored passage p50 {p.p50_ms:.1f} ms, "
                    f"p95 {p.p95_ms:.1f} ms, p99 {p.p99_ms:.1f} ms, max {p.max_ms:.1f} ms"
                )
            if r.refused:
                lines.append(f"    {r.refused} turns or passages refused (see the log)")
        return "\n".join(lines)


class _Passages:
    """The narration listener: wakes the story waiting for its passage."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[SessionView | None]] = {}

    def expect(self, session_id: int) -> asyncio.Future[SessionView | None]:
        future: asyncio.Future[SessionView | None] = asyncio.get_running_loop().create_future()
        self.waiting[session_id] = future
        return future

    def _settle(self, session_id: int, view: SessionView | None) -> None:
        future = self.waiting.pop(session_id, None)
        if future is not None and not future.done():
            future.set_result(view)

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Ignore partial text."""

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Wake the story: its passage is stored and the turn moved on."""
        self._settle(outcome.session.id, outcome.session)

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Wake the story without a passage."""
        log.warning("bench story %s: narrator failed: %s", session.id, reason)
        self._settle(session.id, None)

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Note a filtered passage (a replacement job, if any, answers later)."""
        if not replaced:
            self._settle(session.id, None)


async def _ignore_timeout(outcome: TimeoutOutcome) -> None:
    """Turn timeouts do not fall due within a bench run."""


@dataclass
class _Tally:
    turn_s: list[float] = field(default_factory=list)
    passage_s: list[float] = field(default_factory=list)
    refused: int = 0


@dataclass(frozen=True)
class _BenchStory:
    session_id: int
    channel_id: int
    players: tuple[Actor, Actor]


async def _new_stories(runtime: StoryRuntime, count: int, first: int) -> list[_BenchStory]:
    """Start COUNT two-player stories on fresh channels, each begun."""
    lifecycle = runtime.story.lifecycle
    stories = []
    for i in range(first, first + count):
        channel = _FIRST_CHANNEL + i
        host = Actor(_FIRST_PLAYER + 2 * i, f"Keeper {i}")
        guest = Actor(host.user_id + 1, f"Diver {i}")
        await lifecycle.start(
            guild_id=BENCH_GUILD,
            channel_id=channel,
            actor=host,
            title=f"Lighthouse {i}",
            genre="fantasy",
            premise="A lighthouse keeper finds a door in the sea.",
        )
        await lifecycle.join(channel, guest)
        view = await lifecycle.begin(channel, host)
        stories.append(_BenchStory(view.id, channel, (host, guest)))
    return stories


async def _play(
    runtime: StoryRuntime,
    passages: _Passages,
    story: _BenchStory,
    *,
    turns: int,
    narrator: bool,
    pause_s: float,
    start_s: float,
    tally: _Tally,
) -> None:
    """Write TURNS turns in one story from START_S on, each PAUSE_S after the last."""
    players = {p.user_id: p for p in story.players}
    writer = story.players[0]
    for n in range(turns):
        await asyncio.sleep(pause_s if n else start_s)
        # Listen before writing: the instant narrator may answer before write_turn returns.
        waiting = passages.expect(story.session_id) if narrator else None
        started = time.perf_counter()
        try:
            written = await runtime.table.write_turn(
                story.channel_id, writer, _ACTIONS[n % len(_ACTIONS)]
            )
        except StoryError as exc:
            tally.refused += 1
            log.warning("bench story %s: turn refused: %s", story.session_id, exc)
            return
        tally.turn_s.append(time.perf_counter() - started)
        view: SessionView | None = written.session
        if waiting is not None:
            if written.narrator is None or not written.narrator.queued:
                tally.refused += 1
                log.warning("bench story %s: narrator not asked", story.session_id)
                return
            view = await asyncio.wait_for(waiting, PASSAGE_WAIT_S)
            if view is None:
                tally.refused += 1
                return
            tally.passage_s.append(time.perf_counter() - started)
        current = view.current_player if view is not None else None
        if current is None or current.user_id not in players:
            return
        writer = players[current.user_id]


async def _round(
    runtime: StoryRuntime,
    passages: _Passages,
    *,
    narrator: bool,
    stories: int,
    turns: int,
    first: int,
    pause_s: float,
) -> RoundReport:
    cadence = NarratorCadence.EVERY_TURN if narrator else NarratorCadence.ON_DEMAND
    await runtime.configs.update(BENCH_GUILD, BENCH_MODERATOR, narrator_cadence=cadence)
    playing = await _new_stories(runtime, stories, first)
    tally = _Tally()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    # With a pause, the stories start spread over it, so turns arrive steadily rather
    # than all at once every pause.
    await asyncio.gather(
        *(
            _play(
                runtime,
                passages,
                story,
                turns=turns,
                narrator=narrator,
                pause_s=pause_s,
                start_s=pause_s * i / len(playing),
                tally=tally,
            )
            for i, story in enumerate(playing)
        )
    )
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    done = len(tally.turn_s)
    if done == 0:
        raise LoadBenchError("no turn was stored; see the log")
    return RoundReport(
        narrator=narrator,
        turns=done,
        wall_s=round(wall, 3),
        turns_per_s=round(done / wall, 1),
        cpu_ms_per_turn=round(cpu * 1000 / done, 2),
        turn_latency=Latency.of(tally.turn_s),
        passages=len(tally.passage_s),
        passage_latency=Latency.of(tally.passage_s) if narrator else None,
        refused=tally.refused,
    )


async def _forget_bench_stories(runtime: StoryRuntime) -> None:
    """Delete the bench server's stories (their turns and seats go with them) and settings."""
    async with runtime.story.store.sessions() as db, db.begin():
        await db.execute(delete(StorySession).where(StorySession.guild_id == BENCH_GUILD))
        await db.execute(delete(GuildSettings).where(GuildSettings.guild_id == BENCH_GUILD))


async def benchmark_load(
    settings: Settings,
    *,
    stories: int = 50,
    turns: int = 20,
    narrator: bool = True,
    plain: bool = True,
    pause_s: float = 0.0,
) -> LoadReport:
    """Play STORIES stories of TURNS turns at once, without and with the narrator."""
    if stories < 1 or not 1 <= turns <= 100 or pause_s < 0:
        raise LoadBenchError(
            "stories must be at least 1, turns between 1 and 100, and the pause not negative"
        )
    bench_settings = settings.model_copy(
        update={
            # A private in-process queue and worker, whatever the bot uses.
            "queue_url": f"memory://bench-load-{uuid.uuid4().hex}",
            # Players here write as fast as the engine lets them; no flood limits.
            "turns_per_minute": 100,
            "narrations_per_minute": 100,
            "metrics_port": None,
        }
    )
    passages = _Passages()

    async def processor() -> BatchProcessor:
        return fixed_narrator()

    runtime = await StoryRuntime.open(
        bench_settings,
        listener=passages,
        on_timeout=_ignore_timeout,
        processor_factory=processor,
    )
    rounds: list[RoundReport] = []
    try:
        await _forget_bench_stories(runtime)  # left by a run that was cut short
        if plain:
            rounds.append(
                await _round(
                    runtime,
                    passages,
                    narrator=False,
                    stories=stories,
                    turns=turns,
                    first=0,
                    pause_s=pause_s,
                )
            )
        if narrator:
            rounds.append(
                await _round(
                    runtime,
                    passages,
                    narrator=True,
                    stories=stories,
                    turns=turns,
                    first=stories,
                    pause_s=pause_s,
                )
            )
    finally:
        try:
            await _forget_bench_stories(runtime)
        finally:
            await runtime.close()
    return LoadReport(
        database=make_url(settings.database_url).render_as_string(hide_password=True),
        stories=stories,
        turns_per_story=turns,
        pause_s=pause_s,
        rounds=tuple(rounds),
    )
