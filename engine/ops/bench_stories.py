"""Stories well under way, played into a real engine, for the generation benchmarks.

The quality story set (``quality_stories.json``) holds story openings: a premise, lore
and three to six turns. A narrator prompt of a story in play is longer: a rolling
summary of the older turns, the lore those turns trigger and six to twelve recent turns.
``bench_stories.json`` continues each opening backwards and forwards (a summary, the
round just before the set's turns, the next players' turns), and :func:`play_stories`
plays it through the engine's own calls on whatever database the runtime uses:

- the story is started, joined and begun; its lore and author's note are added;
- the summary's sentences are written as the older turns (the players' in rotation
  order, then the narrator's), and the summary is stored as covering them, as a
  summary job's result would be;
- the round before the set's turns and the set's turns follow: players' turns through
  ``StoryTable.write_turn``, the narrator's passages through the ledger as a delivered
  job's passage is stored.

The narrator's context is then read by the engine's ``StoryContextBuilder``, exactly as
the coordinator reads it before queueing a job. The story's server speaks on demand while
it is played, so no narrator job runs; a benchmark that wants the narrator switches its
cadence afterwards.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from engine.actors import Actor
from engine.errors import StoryError
from engine.narrator.coordinator import summary_job_id
from engine.ops.quality_set import (
    _CUSTOM_INSTRUCTIONS,
    NARRATOR,
    QualityStory,
    StorySetError,
    load_story_set,
)
from engine.protocol.context import StoryContext
from engine.queue.interfaces import BatchOutcome, BatchProcessor, ProgressCallback
from engine.queue.jobs import GenerationJob
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.story.views import NarrationOutcome, SessionView, TimeoutOutcome
from storage.models import NarratorCadence

_PACKAGE = "engine.ops"
BENCH_STORIES = "bench_stories.json"
# A server id no Discord server has (snowflakes are far larger), for the bench's stories.
BENCH_GUILD = 7_000_000_021
BENCH_MODERATOR = Actor(7_000_000_022, "Bench Moderator", is_moderator=True)
_FIRST_CHANNEL = 7_400_000_000
_FIRST_PLAYER = 7_500_000_000
_PLAYERS_PER_STORY = 10  # user ids reserved per story

# What players write once a story's scripted next turns are used up.
_LATER_ACTIONS = (
    "{name} waited a moment, listening, and then stepped forward to see what came next.",
    "{name} looked from one face to the next and asked, quietly, what they should do now.",
    "{name} kept very still and studied every detail of the scene, ready to move.",
)
# A sentence ends at . ! or ? (a closing quote may follow) before white space and a
# capital letter, except after a title such as "Mr.".
_SENTENCE_END = re.compile(r"([.!?][\"']?)\s+(?=[A-Z\"])")
_TITLES = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (titles such as "Mr." end none)."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if text[start : match.end(1)].endswith(_TITLES):
            continue
        sentences.append(text[start : match.end(1)].strip())
        start = match.end()
    rest = text[start:].strip()
    return [*sentences, rest] if rest else sentences


@dataclass(frozen=True)
class ScriptedTurn:
    """One turn of a bench story: a player's (by name) or the narrator's."""

    author: str
    text: str

    @property
    def is_narrator(self) -> bool:
        """Tell whether the narrator writes this turn."""
        return self.author == NARRATOR


@dataclass(frozen=True)
class BenchStory:
    """A story of the quality set with what came before its turns and what comes next."""

    opening: QualityStory
    summary: str
    earlier: tuple[ScriptedTurn, ...]
    next_turns: tuple[ScriptedTurn, ...]

    @property
    def key(self) -> str:
        """Return the story's key in the quality set."""
        return self.opening.key

    def older_turns(self) -> tuple[ScriptedTurn, ...]:
        """Return the turns the summary covers: its sentences, players first, in order."""
        authors = (*self.opening.players, NARRATOR)
        sentences = split_sentences(self.summary)
        if len(sentences) < len(authors):
            raise StorySetError(
                f"{BENCH_STORIES}: the summary of {self.key} needs at least "
                f"{len(authors)} sentences"
            )
        turns = []
        for index, author in enumerate(authors):
            start = index * len(sentences) // len(authors)
            end = (index + 1) * len(sentences) // len(authors)
            turns.append(ScriptedTurn(author, " ".join(sentences[start:end])))
        return tuple(turns)

    def script(self) -> tuple[ScriptedTurn, ...]:
        """Return the recent turns: the round before the set's turns, then those."""
        opening = tuple(ScriptedTurn(t.author, t.text) for t in self.opening.turns)
        return (*self.earlier, *opening)

    def turn_after(self, written: int, author: str) -> str:
        """Return the text of the player's turn number WRITTEN (0-based) after the script."""
        if written < len(self.next_turns) and self.next_turns[written].author == author:
            return self.next_turns[written].text
        return _LATER_ACTIONS[written % len(_LATER_ACTIONS)].format(name=author)


def _turns(raw: Any, story: QualityStory, field: str) -> tuple[ScriptedTurn, ...]:
    turns = tuple(ScriptedTurn(str(t["author"]), str(t["text"])) for t in raw)
    for turn in turns:
        if not turn.is_narrator and turn.author not in story.players:
            raise StorySetError(
                f"{BENCH_STORIES}: {story.key}.{field} has a turn by {turn.author!r}, "
                "who does not play that story"
            )
    return turns


def load_bench_stories() -> tuple[BenchStory, ...]:
    """Return the quality set's stories with their bench continuations, in set order."""
    try:
        raw = resources.files(_PACKAGE).joinpath("data", BENCH_STORIES).read_text("utf-8")
        extra = json.loads(raw)["stories"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorySetError(f"cannot read {BENCH_STORIES}: {exc}") from exc
    stories = []
    for opening in load_story_set():
        data = extra.get(opening.key)
        if data is None:
            raise StorySetError(f"{BENCH_STORIES} has no entry for the story {opening.key}")
        try:
            stories.append(
                BenchStory(
                    opening=opening,
                    summary=str(data["summary"]),
                    earlier=_turns(data["earlier"], opening, "earlier"),
                    next_turns=_turns(data["next"], opening, "next"),
                )
            )
        except (KeyError, TypeError) as exc:
            raise StorySetError(f"{BENCH_STORIES}: {opening.key} is malformed: {exc}") from exc
    return tuple(stories)


def table_title(title: str, table: int) -> str:
    """Return the title of the TABLE-th copy of a story (1: the title itself).

    The number comes first so copies of one story share no prompt prefix beyond the
    chat template's first tokens (a prefix cache would otherwise skip their reading).
    """
    return title if table <= 1 else f"Table {table}: {title}"


@dataclass(frozen=True)
class PlayedStory:
    """A bench story in the engine: where it is and who plays it."""

    session_id: int
    channel_id: int
    story: BenchStory
    players: tuple[Actor, ...]

    def player(self, name: str) -> Actor:
        """Return the actor playing NAME."""
        return next(actor for actor in self.players if actor.display_name == name)

    @property
    def host(self) -> Actor:
        """Return the story's host (its first player)."""
        return self.players[0]


async def prepare_bench_server(runtime: StoryRuntime, cadence: NarratorCadence) -> None:
    """Set how often the narrator speaks on the bench's server (and its custom voice)."""
    await runtime.configs.update(
        BENCH_GUILD,
        BENCH_MODERATOR,
        narrator_cadence=cadence,
        custom_genre_instructions=_CUSTOM_INSTRUCTIONS,
    )


async def play_story(
    runtime: StoryRuntime, story: BenchStory, index: int, *, table: int = 1
) -> PlayedStory:
    """Play STORY as the INDEX-th bench story (its own channel and players) at TABLE."""
    lifecycle = runtime.story.lifecycle
    channel = _FIRST_CHANNEL + index
    first_user = _FIRST_PLAYER + _PLAYERS_PER_STORY * index
    players = tuple(Actor(first_user + n, name) for n, name in enumerate(story.opening.players))
    host = players[0]
    opening = story.opening
    try:
        view = await lifecycle.start(
            guild_id=BENCH_GUILD,
            channel_id=channel,
            actor=host,
            title=table_title(opening.title, table),
            genre=opening.genre,
            premise=opening.premise,
        )
        for guest in players[1:]:
            await lifecycle.join(channel, guest)
        await lifecycle.begin(channel, host)
        for entry in opening.lore:
            await runtime.story.lore.add_lore(
                channel, host, entry.name, list(entry.keywords), entry.text
            )
        if opening.authors_note:
            await lifecycle.set_authors_note(channel, host, opening.authors_note)
        played = PlayedStory(view.id, channel, story, players)
        covered = await _write(runtime, played, story.older_turns())
        await runtime.story.ledger.record_summary(
            view.id, summary_job_id(view.id, covered), story.summary, covered
        )
        await _write(runtime, played, story.script())
    except StoryError as exc:
        raise StorySetError(f"the bench story {story.key} could not be played: {exc}") from exc
    return played


async def _write(runtime: StoryRuntime, played: PlayedStory, turns: Sequence[ScriptedTurn]) -> int:
    """Write scripted turns into a story; return its last turn's number."""
    number = 0
    for turn in turns:
        if turn.is_narrator:
            # As a delivered job's passage is stored: the narration is asked for, then
            # its passage recorded under the same job id.
            request = await runtime.story.ledger.request_narration(played.channel_id, played.host)
            outcome = await runtime.story.ledger.record_narration(
                played.session_id, request.job_id, turn.text
            )
            if outcome is None:
                raise StorySetError(f"the narrator's passage in {played.story.key} was not stored")
            number = outcome.turn.number
        else:
            written = await runtime.table.write_turn(
                played.channel_id, played.player(turn.author), turn.text
            )
            number = written.turn.number
    return number


async def play_stories(
    runtime: StoryRuntime,
    count: int,
    *,
    first: int = 0,
    on_played: Callable[[int], None] | None = None,
) -> list[PlayedStory]:
    """Play COUNT bench stories (the set in order, then copies at further tables).

    ON_PLAYED hears how many are done after each one.
    """
    stories = load_bench_stories()
    played = []
    for index in range(first, first + count):
        story = stories[index % len(stories)]
        played.append(await play_story(runtime, story, index, table=index // len(stories) + 1))
        if on_played is not None:
            on_played(len(played))
    return played


class _Silent:
    """A narration listener for stories whose narrator never runs."""

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Ignore partial text."""

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Ignore a stored passage."""

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Ignore a failure."""

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Ignore a filtered passage."""


async def _ignore_timeout(outcome: TimeoutOutcome) -> None:
    """Turn timeouts do not fall due while the stories are played."""


def _no_narrator(jobs: list[GenerationJob], on_progress: ProgressCallback) -> list[BatchOutcome]:
    """Refuse every job: playing the bench stories never asks the narrator for one."""
    return [
        (job.job_id, RuntimeError("no narrator while bench stories are played")) for job in jobs
    ]


async def bench_contexts(settings: Settings) -> list[StoryContext]:
    """Play every bench story on a temporary SQLite database; return their narrator contexts.

    Each context is what the engine would send the narrator right after the set's last
    turn, read by the engine's own context builder.
    """
    with tempfile.TemporaryDirectory(prefix="taleweaver-bench-") as folder:
        bench_settings = settings.model_copy(
            update={
                "database_url": f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}",
                "queue_url": f"memory://bench-stories-{uuid.uuid4().hex}",
                "turns_per_minute": 100,
                "narrations_per_minute": 100,
                "metrics_port": None,
            }
        )

        async def processor() -> BatchProcessor:
            return _no_narrator

        runtime = await StoryRuntime.open(
            bench_settings,
            listener=_Silent(),
            on_timeout=_ignore_timeout,
            processor_factory=processor,
        )
        try:
            await prepare_bench_server(runtime, NarratorCadence.ON_DEMAND)
            played = await play_stories(runtime, len(load_bench_stories()))
            return [(await runtime.contexts.narrator_job(story.session_id))[1] for story in played]
        finally:
            await runtime.close()


def context_at_table(context: StoryContext, table: int) -> StoryContext:
    """Return a story's context as a copy of it at another table would send it."""
    return replace(context, title=table_title(context.title, table))
