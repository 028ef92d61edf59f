"""The fixed story set and held-out text the quality benchmark measures the narrator on.

Both ship with the project under ``engine/ops/data/``: ``quality_stories.json`` holds
story openings written for the project (a premise, lore and a few player turns for
every genre preset) and ``literary_passages.txt`` holds public-domain literary passages
(Jane Austen's novels, see ``SOURCES.md``) that nothing in the project was tuned on:
its first ``HELD_OUT_PASSAGES`` passages are the held-out set for perplexity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.protocol.requests import NarrateRequest
from engine.protocol.sampling import SamplingSettings
from engine.rules.genres import custom_preset, get_preset

_PACKAGE = "engine.ops"
STORY_SET = "quality_stories.json"
HELD_OUT = "literary_passages.txt"
HELD_OUT_PASSAGES = 200
NARRATOR = "Narrator"
_CUSTOM_INSTRUCTIONS = "Tell the story vividly, in a warm and curious voice."


class StorySetError(ValueError):
    """The story set or held-out text is missing or malformed."""


@dataclass(frozen=True)
class QualityStory:
    """One opening of the story set: what a real story would hand the narrator."""

    key: str
    genre: str
    title: str
    premise: str
    players: tuple[str, ...]
    lore: tuple[LoreEntryView, ...]
    turns: tuple[ContextTurn, ...]
    authors_note: str

    def context(self) -> StoryContext:
        """Return the narrator's context for this opening, as the engine would build it."""
        preset = (
            custom_preset(_CUSTOM_INSTRUCTIONS)
            if self.genre == "custom"
            else get_preset(self.genre)
        )
        last_player = next((t.author for t in reversed(self.turns) if not t.is_narrator), None)
        following = None
        if last_player in self.players:
            following = self.players[(self.players.index(last_player) + 1) % len(self.players)]
        return StoryContext(
            title=self.title,
            genre_key=preset.key,
            genre_instructions=preset.narrator_instructions,
            premise=self.premise,
            player_names=self.players,
            summary="",
            lore=self.lore,
            authors_note=self.authors_note,
            recent_turns=self.turns,
            next_player=following,
        )

    def sampling(self, **overrides: Any) -> SamplingSettings:
        """Return the genre preset's sampling settings, as a server without overrides has."""
        preset = {} if self.genre == "custom" else dict(get_preset(self.genre).sampling)
        return SamplingSettings(**{**preset, **overrides})

    def request(self, **sampling: Any) -> NarrateRequest:
        """Return the narrate request a story at this point would send to the worker."""
        return NarrateRequest(context=self.context(), sampling=self.sampling(**sampling))


def _story(data: dict[str, Any]) -> QualityStory:
    players = tuple(str(p) for p in data["players"])
    turns = tuple(
        ContextTurn(
            number=number,
            author=str(turn["author"]),
            is_narrator=turn["author"] == NARRATOR,
            text=str(turn["text"]),
        )
        for number, turn in enumerate(data["turns"], start=1)
    )
    return QualityStory(
        key=str(data["key"]),
        genre=str(data["genre"]),
        title=str(data["title"]),
        premise=str(data["premise"]),
        players=players,
        lore=tuple(
            LoreEntryView(
                name=str(entry["name"]),
                keywords=tuple(str(k) for k in entry["keywords"]),
                text=str(entry["text"]),
            )
            for entry in data["lore"]
        ),
        turns=turns,
        authors_note=str(data.get("authors_note", "")),
    )


def load_story_set() -> tuple[QualityStory, ...]:
    """Return the shipped story set, in file order."""
    try:
        raw = resources.files(_PACKAGE).joinpath("data", STORY_SET).read_text(encoding="utf-8")
        stories = tuple(_story(item) for item in json.loads(raw)["stories"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorySetError(f"cannot read the story set {STORY_SET}: {exc}") from exc
    if not stories:
        raise StorySetError(f"the story set {STORY_SET} is empty")
    return stories


def load_held_out(limit: int = HELD_OUT_PASSAGES) -> tuple[str, ...]:
    """Return the first ``limit`` held-out passages (blank-line separated, '#' notes)."""
    try:
        raw = resources.files(_PACKAGE).joinpath("data", HELD_OUT).read_text(encoding="utf-8")
    except OSError as exc:
        raise StorySetError(f"cannot read the held-out text {HELD_OUT}: {exc}") from exc
    lines = [line for line in raw.splitlines() if not line.startswith("#")]
    passages = tuple(
        " ".join(block.split()) for block in "\n".join(lines).split("\n\n") if block.strip()
    )
    if not passages:
        raise StorySetError(f"the held-out text {HELD_OUT} is empty")
    return passages[:limit]
