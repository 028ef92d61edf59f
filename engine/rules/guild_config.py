"""Per-server story rules that moderators configure, with their bounds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.actors import Actor
from engine.database import reporting_sessions
from engine.errors import InvalidSetting, PermissionDenied
from engine.rules.genres import get_preset, validate_sampling
from engine.safety.flood import FloodLimits
from engine.safety.storable import find_unstorable, unstorable_reason
from storage import repositories as repo
from storage.models import ContentRating, GuildSettings, NarratorCadence, NarratorChoice

MAX_BLOCKED_WORDS = 500

log = logging.getLogger(__name__)


class GuildConfig(BaseModel):
    """The effective configuration of one server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    narrator_cadence: NarratorCadence = Field(
        NarratorCadence.EVERY_TURN,
        description="When the narrator speaks: every_turn, every_round or on_demand",
    )
    turn_timeout_seconds: int = Field(
        86400, ge=30, le=7 * 86400, description="How long a player has to write their turn"
    )
    max_consecutive_timeouts: int = Field(
        2, ge=1, le=20, description="Timeouts in a row before a player is marked away"
    )
    min_turn_chars: int = Field(1, ge=1, le=1000, description="Shortest accepted turn")
    max_turn_chars: int = Field(1500, ge=20, le=4000, description="Longest accepted turn")
    moderator_role_id: int | None = Field(None, description="Role with moderator powers")
    starter_role_id: int | None = Field(
        None, description="Role required to start stories (none: everyone may)"
    )
    default_genre: str = Field("fantasy", min_length=1, max_length=40)
    custom_genre_instructions: str = Field(
        "", max_length=1500, description="Narrator instructions for the `custom` genre"
    )
    prefer_threads: bool = Field(False, description="Start each story in its own thread")
    sampling: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the narrator's sampling settings"
    )
    content_rating: ContentRating = Field(
        ContentRating.EVERYONE,
        description="everyone, teen or mature (mature applies only in age-restricted channels)",
    )
    blocked_words: tuple[str, ...] = Field(
        (), max_length=MAX_BLOCKED_WORDS, description="Words and phrases refused on this server"
    )
    narrator_regenerations: int = Field(
        2, ge=0, le=5, description="Narrator retries after a filtered passage before a neutral line"
    )
    narrator_choice: NarratorChoice = Field(
        NarratorChoice.BEST,
        description="best: the narrator's best candidate is the passage; vote: players vote",
    )
    vote_seconds: int = Field(
        45, ge=10, le=600, description="How long players vote on the narrator's candidates"
    )
    # Flood limits (engine.safety.flood); a high value switches a check off in practice.
    max_repeated_characters: int = Field(
        12, ge=3, le=4000, description="Most times a character (or a group, as in ha) repeats"
    )
    max_repeated_words: int = Field(
        5, ge=2, le=1000, description="Most times one word may repeat in a row"
    )
    max_emoji: int = Field(6, ge=0, le=4000, description="Most emoji in one message")
    max_combining_marks: int = Field(
        4, ge=1, le=50, description="Most accents or combining marks on one letter (zalgo)"
    )

    @field_validator("default_genre")
    @classmethod
    def _known_genre(cls, value: str) -> str:
        return get_preset(value).key  # UnknownGenre lists the valid keys

    @field_validator("blocked_words", mode="before")
    @classmethod
    def _clean_blocked_words(cls, value: Any) -> tuple[str, ...]:
        from engine.safety import validate_blocked_word

        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError("blocked_words must be a list of words or phrases")
        cleaned: dict[str, str] = {}
        for word in value:
            if not isinstance(word, str):
                raise ValueError("blocked_words must be a list of words or phrases")
            stored = validate_blocked_word(word)
            cleaned.setdefault(stored.casefold(), stored)
        return tuple(sorted(cleaned.values(), key=str.casefold))

    @model_validator(mode="after")
    def _min_not_above_max(self) -> GuildConfig:
        if self.min_turn_chars > self.max_turn_chars:
            raise ValueError("min_turn_chars must not exceed max_turn_chars")
        return self

    @property
    def flood_limits(self) -> FloodLimits:
        """Return the server's flood limits for the content policy."""
        return FloodLimits(
            max_repeated_characters=self.max_repeated_characters,
            max_repeated_words=self.max_repeated_words,
            max_emoji=self.max_emoji,
            max_combining_marks=self.max_combining_marks,
        )

    @classmethod
    def from_row(cls, row: GuildSettings | None) -> GuildConfig:
        """Build the effective configuration from a stored row (defaults when absent)."""
        if row is None:
            return cls()
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "configuration"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _refuse_unstorable(changes: dict[str, Any]) -> None:
    """Refuse a text setting holding a character no database can store (see engine.safety)."""
    for name, value in changes.items():
        if isinstance(value, str) and (found := find_unstorable(value)) is not None:
            raise InvalidSetting(unstorable_reason(f"The setting {name}", found))


def is_moderator(actor: Actor, config: GuildConfig) -> bool:
    """Tell whether the actor has moderator powers on this server."""
    return actor.is_moderator or (
        config.moderator_role_id is not None and config.moderator_role_id in actor.role_ids
    )


class GuildConfigService:
    """Read and change a server's configuration."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = reporting_sessions(sessions)
        self._listeners: list[Callable[[int], None]] = []

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call LISTENER with the guild id after each change of a server's rules."""
        self._listeners.append(listener)

    def changed(self, guild_id: int) -> None:
        """Tell the listeners that a server's rules changed (after the change is committed)."""
        for listener in self._listeners:
            listener(guild_id)

    async def get(self, guild_id: int) -> GuildConfig:
        """Return the effective configuration of a server."""
        async with self._sessions() as db:
            return GuildConfig.from_row(await repo.get_guild_settings(db=db, guild_id=guild_id))

    async def get_for_moderator(self, guild_id: int, actor: Actor) -> GuildConfig:
        """Return a server's configuration to one of its moderators; refuse anyone else."""
        config = await self.get(guild_id)
        if not is_moderator(actor, config):
            raise PermissionDenied("Only moderators can see the story configuration.")
        return config

    async def update(self, guild_id: int, actor: Actor, **changes: Any) -> GuildConfig:
        """Validate and store changes; refuse non-moderators and out-of-bounds values."""
        async with self._sessions() as db, db.begin():
            row = await repo.get_guild_settings(db=db, guild_id=guild_id)
            current = GuildConfig.from_row(row)
            if not is_moderator(actor, current):
                raise PermissionDenied("Only moderators can change the story configuration.")
            unknown = sorted(set(changes) - set(GuildConfig.model_fields))
            if unknown:
                raise InvalidSetting(f"Unknown setting(s): {', '.join(unknown)}.")
            _refuse_unstorable(changes)
            try:
                updated = GuildConfig(**{**current.model_dump(), **changes})
            except ValidationError as exc:
                raise InvalidSetting(f"Invalid configuration: {_explain(exc)}") from exc
            validate_sampling(updated.sampling)  # InvalidSetting names the bad entry
            if row is None:
                row = GuildSettings(guild_id=guild_id)
                db.add(row)
            for name, value in updated.model_dump().items():
                setattr(row, name, value)
            log.info("guild %s configuration changed by %s: %s", guild_id, actor.user_id, changes)
        self.changed(guild_id)
        return updated
