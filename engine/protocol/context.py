"""The self-contained story context a generation job carries to the worker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class StoryContextFormatError(ValueError):
    """A serialised story context is missing a field or has one of the wrong type."""


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
    def from_dict(cls, data: Mapping[str, Any]) -> LoreEntryView:
        """Build an entry from ``to_dict`` output, checking every field."""
        return cls(
            name=_str(data, "name"),
            keywords=_str_tuple(data, "keywords"),
            text=_str(data, "text"),
        )


@dataclass(frozen=True)
class TurnView:
    """One stored turn: its number, who wrote it, and its text."""

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
    def from_dict(cls, data: Mapping[str, Any]) -> TurnView:
        """Build a turn from ``to_dict`` output, checking every field."""
        return cls(
            number=_int(data, "number"),
            author=_str(data, "author"),
            is_narrator=_bool(data, "is_narrator"),
            text=_str(data, "text"),
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
    recent_turns: tuple[TurnView, ...]
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
    def from_dict(cls, data: Mapping[str, Any]) -> StoryContext:
        """Build a context from ``to_dict`` output, checking every field; extra keys are ignored."""
        next_player = _field(data, "next_player")
        if next_player is not None and not isinstance(next_player, str):
            raise StoryContextFormatError("field 'next_player' must be a string or null")
        return cls(
            title=_str(data, "title"),
            genre_key=_str(data, "genre_key"),
            genre_instructions=_str(data, "genre_instructions"),
            premise=_str(data, "premise"),
            player_names=_str_tuple(data, "player_names"),
            summary=_str(data, "summary"),
            lore=tuple(LoreEntryView.from_dict(item) for item in _mapping_list(data, "lore")),
            authors_note=_str(data, "authors_note"),
            recent_turns=tuple(
                TurnView.from_dict(item) for item in _mapping_list(data, "recent_turns")
            ),
            next_player=next_player,
        )


def _field(data: Mapping[str, Any], name: str) -> Any:
    if not isinstance(data, Mapping):
        raise StoryContextFormatError(f"expected an object holding {name!r}, got {type(data)}")
    try:
        return data[name]
    except KeyError:
        raise StoryContextFormatError(f"missing field {name!r}") from None


def _str(data: Mapping[str, Any], name: str) -> str:
    value = _field(data, name)
    if not isinstance(value, str):
        raise StoryContextFormatError(f"field {name!r} must be a string")
    return value


def _int(data: Mapping[str, Any], name: str) -> int:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoryContextFormatError(f"field {name!r} must be an integer")
    return value


def _bool(data: Mapping[str, Any], name: str) -> bool:
    value = _field(data, name)
    if not isinstance(value, bool):
        raise StoryContextFormatError(f"field {name!r} must be a boolean")
    return value


def _str_tuple(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _field(data, name)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise StoryContextFormatError(f"field {name!r} must be a list of strings")
    return tuple(value)


def _mapping_list(data: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = _field(data, name)
    if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
        raise StoryContextFormatError(f"field {name!r} must be a list of objects")
    return list(value)
