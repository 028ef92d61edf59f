"""Process-wide settings read from the environment (prefix ``TALEWEAVER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Quantization = Literal["nf4", "nf4-all", "fp4", "int8", "bf16", "none"]
QUANTIZATION_MODES: tuple[str, ...] = get_args(Quantization)
DeviceName = Literal["auto", "cpu", "cuda"]
LogFormat = Literal["text", "json"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "taleweaver"


class Settings(BaseSettings):
    """Validated configuration for the bot, the worker and the terminal front-end."""

    model_config = SettingsConfigDict(env_prefix="TALEWEAVER_", extra="ignore")

    database_url: str = Field(
        "sqlite+aiosqlite:///taleweaver.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///… or postgresql+asyncpg://…",
    )
    database_connect_timeout_s: float = Field(
        5.0, gt=0, le=300, description="PostgreSQL: longest wait to open a connection"
    )
    database_statement_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="PostgreSQL: longest a statement may run, or a call wait for a free "
        "pooled connection",
    )
    sqlite_busy_timeout_s: float = Field(
        5.0, ge=0, le=300, description="SQLite: longest a write waits for another writer"
    )
    queue_url: str = Field(
        "memory://",
        description="memory:// (in-process queue and worker) or redis://host:6379/0",
    )
    discord_token: SecretStr | None = Field(
        None, description="Bot token; required only by `taleweaver bot`"
    )
    model: str = Field(
        "smollm2-135m",
        description="The bundled model, a local Hugging Face folder, or a hub id",
    )
    quantization: Quantization = Field("nf4", description="bitsandbytes quantization")
    device: DeviceName = Field("auto", description="Where the model runs")
    narrator_candidates: int = Field(
        4,
        ge=1,
        le=16,
        description="Narrator passages sampled in one batch per turn; the reranker keeps the best",
    )
    narrator_check_interval_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often the bot checks that every pending narration has a live job",
    )
    narrator_requeues: int = Field(
        3,
        ge=0,
        le=20,
        description="Times a narration whose job the queue lost is queued again before "
        "the turn goes back to the players",
    )
    narrator_deadline_s: float = Field(
        600.0,
        ge=10,
        le=86400,
        description="Longest wait for a narrator passage before the turn goes back to the players",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where converted models are cached",
    )
    log_level: str = Field("INFO", description="Python logging level name")
    log_format: LogFormat = Field(
        "text", description="text: one readable line per event; json: one JSON object per line"
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics at http://HOST:PORT/metrics (off when unset)",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics endpoint listens on (0.0.0.0: every one)"
    )
    commands_per_minute: int = Field(
        20, ge=1, le=1000, description="Slash commands one member may use per minute"
    )
    turns_per_minute: int = Field(
        6, ge=1, le=100, description="Turns one member may write per minute"
    )
    narrations_per_minute: int = Field(
        6, ge=1, le=100, description="Narrator passages one channel may ask for per minute"
    )

    discord_message_content: bool = Field(
        True,
        description="Read turns from plain messages (needs the Message Content intent); "
        "false: /story write only",
    )
    discord_members_intent: bool = Field(
        False,
        description="Hear at once when a member leaves the server (needs the Server Members "
        "intent); false: found when their turn comes",
    )
    discord_edit_interval_seconds: float = Field(
        1.5, ge=0.5, le=30, description="Least time between edits of a streaming narrator message"
    )
    discord_command_guild_id: int | None = Field(
        None, description="Register slash commands on this server only (instant; for development)"
    )
    discord_shards: Literal["auto"] | Annotated[int, Field(ge=1, le=10_000)] = Field(
        "auto",
        description="Gateway connections (shards) in the bot process: auto (one, or as many "
        "as Discord recommends once it recommends more) or a number",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                f"(got {value.split('://', 1)[0]!r}://…)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.upper() not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    @field_validator("queue_url")
    @classmethod
    def _known_queue_scheme(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings, read from the environment once."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings so the next call re-reads the environment (tests)."""
    get_settings.cache_clear()
