"""Genre presets: the narrator's voice and default sampling settings for each genre."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.errors import InvalidSetting
from engine.protocol.bounds import field_bounds
from engine.protocol.sampling import SamplingSettings

SamplingValue = int | float

MAX_CUSTOM_INSTRUCTIONS_CHARS = 1500


# The worker validates every job's settings with SamplingSettings: accept exactly what it
# accepts, so a stored override can never make every narrator job fail.
SAMPLING_KEYS: frozenset[str] = frozenset(SamplingSettings.model_fields)


class UnknownGenre(InvalidSetting):
    """No genre preset has the requested key."""


def validate_sampling(overrides: Mapping[str, object]) -> dict[str, SamplingValue]:
    """Return a copy of sampling overrides, or raise InvalidSetting naming the bad entry."""
    checked: dict[str, SamplingValue] = {}
    for name, value in overrides.items():
        if name not in SAMPLING_KEYS:
            raise InvalidSetting(
                f"Unknown sampling setting {name!r}; valid: {', '.join(sorted(SAMPLING_KEYS))}."
            )
        kind = SamplingSettings.model_fields[name].annotation
        allowed = (int, float) if kind is float else (int,)
        if isinstance(value, bool) or not isinstance(value, allowed):
            kind_name = "number" if float in allowed else "whole number"
            raise InvalidSetting(f"Sampling setting {name!r} must be a {kind_name}.")
        low, high = field_bounds(SamplingSettings, name)
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidSetting(f"Sampling setting {name!r} must be between {low} and {high}.")
        checked[name] = value
    return checked


@dataclass(frozen=True)
class GenrePreset:
    """A genre's key, display name, narrator instructions and sampling defaults."""

    key: str
    display_name: str
    narrator_instructions: str
    # A plain dict so callers can merge it ({**preset.sampling, **overrides}); every
    # preset handed out is a copy, so changing it does not change the catalogue.
    sampling: dict[str, SamplingValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", validate_sampling(self.sampling))


_CATALOGUE: tuple[GenrePreset, ...] = (
    GenrePreset(
        key="fantasy",
        display_name="Fantasy",
        narrator_instructions=(
            "Narrate a fantasy tale with vivid, grounded detail: the smell of the tavern, "
            "the weight of a sword, the hum of old magic. "
            "Let magic feel wondrous but costly, and keep the world's rules consistent. "
            "Favour a warm, slightly epic storyteller's voice without purple prose."
        ),
        sampling={
            "temperature": 0.8,
            "top_p": 0.92,
            "repetition_penalty": 1.1,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="scifi",
        display_name="Science fiction",
        narrator_instructions=(
            "Narrate science fiction with a clear, precise voice and plausible technology. "
            "Show the future through concrete details of ships, stations, machines and "
            "the people who live with them. "
            "Keep invented science consistent once it is established."
        ),
        sampling={
            "temperature": 0.75,
            "top_p": 0.9,
            "repetition_penalty": 1.1,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="mystery",
        display_name="Mystery",
        narrator_instructions=(
            "Narrate a mystery in a measured, observant voice that plants clues fairly. "
            "Describe places and people precisely, because small details may matter later. "
            "Raise questions and reveal answers slowly; never solve the case for the players."
        ),
        sampling={
            "temperature": 0.7,
            "top_p": 0.9,
            "repetition_penalty": 1.12,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="horror",
        display_name="Horror",
        narrator_instructions=(
            "Narrate horror through dread rather than gore: silence, wrong details, "
            "things half seen. "
            "Build tension slowly and let the unknown stay unexplained for as long as it can. "
            "Keep sentences tight and the atmosphere oppressive."
        ),
        sampling={
            "temperature": 0.85,
            "top_p": 0.92,
            "repetition_penalty": 1.12,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="romance",
        display_name="Romance",
        narrator_instructions=(
            "Narrate a romance with attention to feelings, glances and what goes unsaid. "
            "Let the relationship develop through the characters' choices, at a believable "
            "pace. "
            "Keep the tone tender and tasteful."
        ),
        sampling={
            "temperature": 0.8,
            "top_p": 0.92,
            "repetition_penalty": 1.1,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="comedy",
        display_name="Comedy",
        narrator_instructions=(
            "Narrate a comedy with a light, playful voice and good comic timing. "
            "Build on the players' jokes, let mishaps escalate absurdly, and keep it "
            "good-natured. "
            "Short punchy paragraphs land better than long ones."
        ),
        sampling={
            "temperature": 0.95,
            "top_p": 0.95,
            "repetition_penalty": 1.15,
            "max_paragraphs": 2,
        },
    ),
    GenrePreset(
        key="adventure",
        display_name="Adventure",
        narrator_instructions=(
            "Narrate a pulpy adventure full of motion, danger and discovery. "
            "Keep the pace brisk, end scenes on a hook, and reward bold choices with "
            "exciting consequences. "
            "Describe action clearly so everyone can follow who is where."
        ),
        sampling={
            "temperature": 0.85,
            "top_p": 0.92,
            "repetition_penalty": 1.1,
            "max_paragraphs": 3,
        },
    ),
    GenrePreset(
        key="custom",
        display_name="Custom",
        # Used until the moderators supply their own instructions (see custom_preset).
        narrator_instructions=(
            "Narrate in a clear, engaging voice that follows the tone the players set. "
            "Keep the story's facts consistent and give every scene a concrete sense of place."
        ),
        sampling={
            "temperature": 0.8,
            "top_p": 0.92,
            "repetition_penalty": 1.1,
            "max_paragraphs": 3,
        },
    ),
)

_PRESETS: Mapping[str, GenrePreset] = MappingProxyType({p.key: p for p in _CATALOGUE})
GENRE_KEYS: tuple[str, ...] = tuple(_PRESETS)


def get_preset(key: str) -> GenrePreset:
    """Return a copy of the preset for ``key``, or raise UnknownGenre listing valid keys."""
    preset = _PRESETS.get(key.strip().lower())
    if preset is None:
        raise UnknownGenre(f"Unknown genre {key!r}; choose one of: {', '.join(GENRE_KEYS)}.")
    return dataclasses.replace(preset)


def custom_preset(instructions: str, sampling: Mapping[str, object] | None = None) -> GenrePreset:
    """Return the custom preset carrying moderator-written instructions and sampling."""
    cleaned = instructions.strip()
    if not cleaned:
        raise InvalidSetting("Custom genre instructions must not be empty.")
    if len(cleaned) > MAX_CUSTOM_INSTRUCTIONS_CHARS:
        raise InvalidSetting(
            f"Custom genre instructions are limited to {MAX_CUSTOM_INSTRUCTIONS_CHARS} "
            f"characters (got {len(cleaned)})."
        )
    base = _PRESETS["custom"]
    merged = {**base.sampling, **validate_sampling(sampling or {})}
    return dataclasses.replace(base, narrator_instructions=cleaned, sampling=merged)
