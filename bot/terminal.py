"""The terminal front-end: `taleweaver play` (interactive) and `taleweaver demo` (scripted)."""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from engine.actors import Actor
from engine.errors import StoryError
from engine.export import ExportFormat, ExportOptions
from engine.runtime import StoryRuntime
from engine.settings import Settings
from engine.story.views import NarrationOutcome, SessionView, TimeoutOutcome
from engine.table import NarratorCall

log = logging.getLogger(__name__)

TERMINAL_GUILD = 0
TERMINAL_CHANNEL = 1


NARRATOR_PREFIX = "Narrator: "


class TerminalListener:
    """Print each narrator passage once, and what the timers did.

    On a terminal the passage streams in place as it is written and is replaced by
    the final text when that differs (the narrator may keep another candidate, or
    trim the last sentence). Elsewhere (a pipe, a file) only the final text is printed.
    """

    def __init__(self, out: TextIO = sys.stdout, *, live: bool | None = None) -> None:
        self._out = out
        self._live = out.isatty() if live is None else live
        self._shown: dict[str, str] = {}
        self.settled = asyncio.Event()
        self.stored: list[NarrationOutcome] = []
        self.failures: list[str] = []

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        """Stream the new part of the partial text (terminals only)."""
        if not self._live:
            return
        shown = self._shown.get(job_id)
        if shown is None:
            self._write(f"\n{NARRATOR_PREFIX}")
            shown = ""
        if text.startswith(shown):
            self._write(text[len(shown) :])
        else:
            self._erase(shown)
            self._write(f"{NARRATOR_PREFIX}{text}")
        self._shown[job_id] = text

    def _erase(self, shown: str) -> None:
        """Move back over a streamed passage and clear it, so it can be written anew."""
        width = max(20, shutil.get_terminal_size().columns)
        rows = sum(
            max(1, math.ceil(len(line) / width)) for line in f"{NARRATOR_PREFIX}{shown}".split("\n")
        )
        self._write("\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J")

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        """Finish the streamed passage with its final text (or print it whole)."""
        shown = self._shown.pop(outcome.turn.job_id or "", None)
        if shown is None:
            self._write(f"\n{NARRATOR_PREFIX}{outcome.turn.text}\n\n")
        elif outcome.turn.text != shown:
            self._erase(shown)
            self._write(f"{NARRATOR_PREFIX}{outcome.turn.text}\n\n")
        else:
            self._write("\n\n")
        self.stored.append(outcome)
        self.settled.set()

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        """Say the narrator could not speak and who writes next."""
        who = session.current_player.display_name if session.current_player else "nobody"
        self._write(f"\n(The narrator could not continue: {reason}. {who} writes next.)\n")
        self.failures.append(reason)
        self.settled.set()

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        """Drop a filtered passage's partial text and say what happens next."""
        shown = self._shown.pop(job_id, None)
        if shown is not None:
            self._erase(shown)
            self._write("[withdrawn: the passage broke this story's content rules]\n")
        if replaced:
            self._write("(The narrator's passages kept breaking the content rules; ")
            self._write("a neutral line stands in. The host may want to retry.)\n")

    async def turn_reminder(self, session: SessionView) -> None:
        """Tell the current player their time is running out."""
        if session.current_player is not None:
            name = session.current_player.display_name
            self._write(f"\n(A reminder: {name}, it is your turn.)\n")

    async def timed_out(self, outcome: TimeoutOutcome) -> None:
        """Report a skipped player."""
        away = " and is now away" if outcome.marked_away else ""
        self._write(f"\n({outcome.skipped.display_name} ran out of time{away}.)\n")


async def save_story(runtime: StoryRuntime, session_id: int, folder: Path) -> Path:
    """Write the story as Markdown (the same export as `/story export`) and return the file."""
    exported = await runtime.exports.export(
        session_id, ExportFormat.MARKDOWN, ExportOptions(include_table_talk=True)
    )
    stem, _, extension = exported.filename.rpartition(".")
    path = folder / f"{stem}-{session_id}.{extension}"

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(exported.data)

    await asyncio.to_thread(write)
    return path


async def _narrator_answer(
    listener: TerminalListener, ask: Callable[[], Awaitable[NarratorCall | None]]
) -> None:
    """Run a table call and, when it asked the narrator, wait until it has spoken or failed."""
    listener.settled.clear()  # before the call: the passage may be stored before it returns
    call = await ask()
    if call is None:
        return
    if call.refusal is not None:
        print(f"({call.refusal})")
        return
    await listener.settled.wait()


# Demo -----------------------------------------------------------------------------------------
DEMO_TITLE = "The Lighthouse at World's End"
DEMO_PREMISE = (
    "On a storm-battered island at the edge of the map, three strangers shelter in an "
    "abandoned lighthouse whose lamp has begun to burn by itself."
)
DEMO_PLAYERS = (Actor(101, "Mira"), Actor(102, "Tom"), Actor(103, "Suki"))
DEMO_LINES = (
    "Mira climbs the spiral stairs, lantern raised, and finds fresh footprints in the dust.",
    "Tom checks the logbook on the desk; the last entry is dated tomorrow.",
    "Suki presses her ear to the cold glass of the lamp room and hears someone humming.",
    "Mira calls out a greeting, her voice echoing down the stairwell.",
    "Tom pockets the logbook and keeps one hand on the door to the gallery.",
    "Suki steps onto the gallery and looks out to sea for a ship.",
    "Mira follows, pointing at a light answering theirs from beneath the waves.",
    "Tom ties a rope to the railing, just in case.",
    "Suki whispers that the humming has stopped.",
)


@dataclass
class DemoResult:
    """What the demo produced."""

    session_id: int
    narrator_turns: int
    transcript: Path
    database_url: str
    player_turns: int = 0
    failures: list[str] = field(default_factory=list)


async def run_demo(
    settings: Settings,
    *,
    out_dir: Path,
    narrator_turns: int = 6,
    progress: Callable[[str], None] = print,
) -> DemoResult:
    """Play a scripted three-player story with the real narrator, printing it as it grows."""
    listener = TerminalListener()
    progress(f"Loading the narrator model {settings.model} ({settings.quantization})…")
    runtime = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, load_progress=progress
    )
    try:
        host = DEMO_PLAYERS[0]
        channel = TERMINAL_CHANNEL
        stale = await runtime.story.queries.in_channel(channel)
        if stale is not None:
            await runtime.story.lifecycle.end(
                channel, Actor(stale.host_id, "host", is_moderator=True)
            )
        view = await runtime.story.lifecycle.start(
            guild_id=TERMINAL_GUILD,
            channel_id=channel,
            actor=host,
            title=DEMO_TITLE,
            genre="fantasy",
            premise=DEMO_PREMISE,
        )
        for player in DEMO_PLAYERS[1:]:
            await runtime.story.lifecycle.join(channel, player)
        view = await runtime.story.lifecycle.begin(channel, host)
        await runtime.story.lore.add_lore(
            channel,
            host,
            "The Lamp",
            ["lamp", "light"],
            "The lighthouse lamp lights itself whenever someone is lost at sea.",
        )
        progress(f"\n=== {DEMO_TITLE} ===\n{DEMO_PREMISE}\n")
        result = DemoResult(view.id, 0, Path(), settings.database_url)
        lines = iter(DEMO_LINES * 3)
        while len(listener.stored) < narrator_turns:
            current = (await runtime.story.queries.get(view.id)).current_player
            assert current is not None
            actor = next(p for p in DEMO_PLAYERS if p.user_id == current.user_id)
            text = next(lines)
            progress(f"{actor.display_name}: {text}")

            async def write(actor: Actor = actor, text: str = text) -> NarratorCall | None:
                written = await runtime.table.write_turn(channel, actor, text)
                result.player_turns += 1
                return written.narrator

            await _narrator_answer(listener, write)
        await runtime.story.lifecycle.end(channel, host)
        result.narrator_turns = len(listener.stored)
        result.failures = listener.failures
        result.transcript = await save_story(runtime, view.id, out_dir)
        progress(
            f"=== The end: {result.player_turns} player turns, {result.narrator_turns} "
            f"narrator turns. Saved to {result.transcript} and {settings.database_url} ==="
        )
        return result
    finally:
        await runtime.close()


# Play -----------------------------------------------------------------------------------------
PLAY_HELP = """Commands (anything else is your turn's text):
  /as NAME            act as NAME (a new name joins the story)
  /begin /pause /resume /end      run the story (host or moderator)
  /join /leave        join or leave as the current character
  /skip /undo /retry /continue    as in Discord
  /status /recap      who writes next; what happened so far
  /lore add NAME | keyword, keyword | text     /lore list     /lore remove NAME
  /note TEXT          set the author's note
  /save               write the story as Markdown to the stories folder
  /help /quit"""


class TerminalTable:
    """Several players at one keyboard, playing through the same engine as Discord."""

    def __init__(self, runtime: StoryRuntime, listener: TerminalListener, out_dir: Path) -> None:
        self.runtime = runtime
        self.listener = listener
        self.out_dir = out_dir
        self.actors: dict[str, Actor] = {}
        self.me: Actor | None = None

    def actor(self, name: str) -> Actor:
        """Return the player called NAME, creating them on first use."""
        key = name.casefold()
        if key not in self.actors:
            # The first player at the table hosts; everyone here may moderate.
            self.actors[key] = Actor(1000 + len(self.actors), name, is_moderator=True)
        return self.actors[key]

    async def handle(self, line: str) -> bool:
        """Apply one input line; return False to quit."""
        line = line.strip()
        if not line:
            return True
        try:
            return await self._dispatch(line)
        except StoryError as exc:
            print(f"! {exc}")
            return True

    async def _dispatch(self, line: str) -> bool:
        sessions = self.runtime.story
        channel = TERMINAL_CHANNEL
        if not line.startswith("/"):
            me = self._require_me()
            if await sessions.queries.in_channel(channel) is None:
                await sessions.lifecycle.start(
                    guild_id=TERMINAL_GUILD,
                    channel_id=channel,
                    actor=me,
                    title="A Terminal Tale",
                    genre="fantasy",
                )

            async def write() -> NarratorCall | None:
                return (await self.runtime.table.write_turn(channel, me, line)).narrator

            await _narrator_answer(self.listener, write)
            await self._show_next()
            return True
        command, _, rest = line[1:].partition(" ")
        command = command.lower()
        if command in ("quit", "exit"):
            return False
        if command == "help":
            print(PLAY_HELP)
        elif command == "as":
            self.me = self.actor(rest.strip() or "Player")
            print(f"You are {self.me.display_name}.")
        elif command == "start":
            title, _, premise = rest.partition("|")
            me = self._require_me()
            await sessions.lifecycle.start(
                guild_id=TERMINAL_GUILD,
                channel_id=channel,
                actor=me,
                title=title.strip() or "A Terminal Tale",
                genre="fantasy",
                premise=premise,
            )
            print("Story started. Others: /as NAME then /join. Then /begin.")
        elif command in ("join", "leave", "begin", "pause", "resume", "end"):
            view = await getattr(sessions.lifecycle, command)(channel, self._require_me())
            print(f"({command}: {view.status.value})")
            await self._show_next()
        elif command == "skip":
            skip = await sessions.turns.skip(channel, self._require_me())
            if skip.skipped:
                print(f"({skip.skipped.display_name} is skipped.)")
            else:
                print(f"(Skip vote: {skip.votes} of {skip.votes_needed}.)")
            await self._show_next()
        elif command == "undo":
            undone = await sessions.turns.undo(channel, self._require_me())
            print(f"(Undone: {undone.removed.author_name}: {undone.removed.text[:60]}…)")
            await self._show_next()
        elif command in ("retry", "continue"):
            table = self.runtime.table
            ask = table.retry_narrator if command == "retry" else table.call_narrator
            actor = self._require_me()
            await _narrator_answer(self.listener, lambda: ask(channel, actor))
            await self._show_next()
        elif command in ("status", "recap"):
            await self._recap(full=command == "recap")
        elif command == "note":
            await sessions.lifecycle.set_authors_note(channel, self._require_me(), rest)
            print("(Author's note set.)")
        elif command == "lore":
            await self._lore(rest)
        elif command == "save":
            view = await sessions.queries.in_channel(channel)
            if view is None:
                print("! There is no story to save.")
            else:
                print(f"(Saved to {await save_story(self.runtime, view.id, self.out_dir)})")
        else:
            print(f"! Unknown command /{command}. Type /help.")
        return True

    def _require_me(self) -> Actor:
        if self.me is None:
            raise StoryError("Choose who you are first: /as NAME")
        return self.me

    async def _show_next(self) -> None:
        view = await self.runtime.story.queries.in_channel(TERMINAL_CHANNEL)
        if view is not None and view.current_player is not None:
            name = view.current_player.display_name
            print(f"-- {name}'s turn (/as {name})")

    async def _recap(self, *, full: bool) -> None:
        recap = await self.runtime.story.queries.recap(TERMINAL_CHANNEL)
        view = recap.session
        order = ", ".join(p.display_name for p in view.rotation) or "nobody"
        whose = view.current_player.display_name if view.current_player else "nobody"
        print(f"{view.title} [{view.status.value}] — rotation: {order}; next: {whose}")
        if full:
            if recap.summary:
                print(f"So far: {recap.summary.text}")
            for turn in recap.recent_turns:
                print(f"{turn.author_name}: {turn.text}")

    async def _lore(self, rest: str) -> None:
        sub, _, args = rest.partition(" ")
        sessions = self.runtime.story
        if sub == "add":
            parts = [p.strip() for p in args.split("|")]
            if len(parts) != 3:
                raise StoryError("Usage: /lore add NAME | keyword, keyword | text")
            name, keywords, text = parts
            await sessions.lore.add_lore(
                TERMINAL_CHANNEL, self._require_me(), name, keywords.split(","), text
            )
            print(f"(Lore {name!r} saved.)")
        elif sub == "list":
            view = await sessions.queries.in_channel(TERMINAL_CHANNEL)
            entries = await sessions.lore.list_lore(view.id) if view else []
            for entry in entries:
                print(f"- {entry.name} [{', '.join(entry.keywords)}]: {entry.text}")
            if not entries:
                print("(No lore yet.)")
        elif sub == "remove":
            await sessions.lore.remove_lore(TERMINAL_CHANNEL, self._require_me(), args)
            print("(Removed.)")
        else:
            raise StoryError("Usage: /lore add|list|remove …")


async def run_play(settings: Settings, *, out_dir: Path, script: list[str] | None = None) -> None:
    """Run the interactive terminal session (or feed it SCRIPT lines, for tests)."""
    listener = TerminalListener()
    print(f"Loading the narrator model {settings.model} ({settings.quantization})…")
    runtime = await StoryRuntime.open(
        settings, listener=listener, on_timeout=listener.timed_out, load_progress=print
    )
    runtime.timers.on_reminder = listener.turn_reminder
    table = TerminalTable(runtime, listener, out_dir)
    print(PLAY_HELP)
    try:
        lines = iter(script) if script is not None else None
        while True:
            if lines is not None:
                line = next(lines, "/quit")
                print(f"> {line}")
            else:
                try:
                    line = await asyncio.to_thread(input, "> ")
                except EOFError:
                    break
            if not await table.handle(line):
                break
    finally:
        await runtime.close()
