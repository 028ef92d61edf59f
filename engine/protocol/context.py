"""The self-contained story context a narrate job carries to the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.protocol.wire import WireObject


@dataclass(frozen=True)
class LoreEntryView:
    """A lore entry as the narrator sees it: a name, its trigger keywords and its text."""

    name: str
    keywords: tuple[str, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of this entry."""
        return {"name": self.name, "keywords": list(self.keywords), "text": self.text}

    @classmethod
    def from_dict(cls, data: object, *, path: str = "") -> LoreEntryView:
        """Build an entry from ``to_dict`` output, raising JobRejected naming a bad field."""
        wire = WireObject(data, ("name", "keywords", "text"), path=path)
        return cls(name=wire.text("name"), keywords=wire.texts("keywords"), text=wire.text("text"))


@dataclass(frozen=True)
class ContextTurn:
    """One turn of the story as the prompt shows it: its number, who wrote it, its text."""

    number: int
    author: str
    is_narrator: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict of this turn."""
        return {
            "number": self.number,
            "author": self.author,
            "is_narrator": self.is_narrator,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, data: object, *, path: str = "") -> ContextTurn:
        """Build a turn from ``to_dict`` output, raising JobRejected naming a bad field."""
        wire = WireObject(data, ("number", "author", "is_narrator", "text"), path=path)
        return cls(
            number=wire.integer("number"),
            author=wire.text("author"),
            is_narrator=wire.flag("is_narrator"),
            text=wire.text("text"),
        )


@dataclass(frozen=True)
class StoryContext:
    """Everything the narrator's prompt is built from; ``recent_turns`` are oldest first."""

    title: str
    genre_key: str
    genre_instructions: str
    premise: str
    player_names: tuple[str, ...]
    summary: str
    lore: tuple[LoreEntryView, ...]
    authors_note: str
    recent_turns: tuple[ContextTurn, ...]
    next_player: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict that ``from_dict`` turns back into an equal context."""
        return {
            "title": self.title,
            "genre_key": self.genre_key,
            "genre_instructions": self.genre_instructions,
            "premise": self.premise,
            "player_names": list(self.player_names),
            "summary": self.summary,
            "lore": [entry.to_dict() for entry in self.lore],
            "authors_note": self.authors_note,
            "recent_turns": [turn.to_dict() for turn in self.recent_turns],
            "next_player": self.next_player,
        }

    @classmethod
    def from_dict(cls, data: object, *, path: str = "") -> StoryContext:
        """Build a context from ``to_dict`` output, raising JobRejected naming a bad field.

        Unknown fields are refused too: a field the worker would ignore is a part of
        the story the narrator would silently never see.
        """
        wire = WireObject(data, _CONTEXT_FIELDS, path=path)
        return cls(
            title=wire.text("title"),
            genre_key=wire.text("genre_key"),
            genre_instructions=wire.text("genre_instructions"),
            premise=wire.text("premise"),
            player_names=wire.texts("player_names"),
            summary=wire.text("summary"),
            lore=tuple(
                LoreEntryView.from_dict(item, path=where) for where, item in wire.items("lore")
            ),
            authors_note=wire.text("authors_note"),
            recent_turns=tuple(
                ContextTurn.from_dict(item, path=where)
                for where, item in wire.items("recent_turns")
            ),
            next_player=wire.optional_text("next_player"),
        )


_CONTEXT_FIELDS = (
    "title",
    "genre_key",
    "genre_instructions",
    "premise",
    "player_names",
    "summary",
    "lore",
    "authors_note",
    "recent_turns",
    "next_player",
)
