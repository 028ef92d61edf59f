"""Logging for every process: one line per event on stderr, as text or JSON, secrets hidden.

Each line carries the story and the job it is about: code handling one story or job
wraps the work in ``log_context(story_id=…, job_id=…)`` (a context variable, so
tasks started inside inherit it) or passes ``extra={"story_id": …}`` to one call.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

_story_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("story_id", default=None)
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)

# Libraries whose INFO lines would bury the story's events.
QUIET_LIBRARIES = ("httpx", "transformers", "accelerate", "bitsandbytes")

REDACTED = "***"
# A password in any URL (postgresql+asyncpg://user:secret@host, redis://:secret@host).
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s/]+)(?=@)", re.IGNORECASE
)
# A Discord bot token (user id in base64, timestamp, HMAC), configured or not.
_DISCORD_TOKEN = re.compile(
    r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b"
)
# Authorization headers as discord.py and aiohttp may print them.
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:Bot|Bearer)\s+)(?P<secret>[A-Za-z0-9._-]{20,})")

_HANDLER_NAME = "taleweaver"


@contextlib.contextmanager
def log_context(*, story_id: int | None = None, job_id: str | None = None) -> Iterator[None]:
    """Tag every log line written inside the block with this story and job."""
    story_token = _story_id.set(story_id) if story_id is not None else None
    job_token = _job_id.set(job_id) if job_id is not None else None
    try:
        yield
    finally:
        if job_token is not None:
            _job_id.reset(job_token)
        if story_token is not None:
            _story_id.reset(story_token)


class SecretRedactor:
    """Replace known secrets, URL passwords and Discord tokens in text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is hidden whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return TEXT with every secret hidden."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
        text = _AUTH_HEADER.sub(lambda m: m.group("head") + REDACTED, text)
        return _DISCORD_TOKEN.sub(REDACTED, text)


def url_password(url: str) -> str | None:
    """Return the password written in a URL, if any (so the redactor knows it)."""
    match = _URL_PASSWORD.search(url)
    return match.group("secret") if match else None


class _EventContext(logging.Filter):
    """Give every record story_id and job_id: from ``extra=`` or from log_context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "story_id", None) is None:
            record.story_id = _story_id.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``2026-01-01T12:00:00Z INFO engine.table: message story=3 job=n-3-5``, secrets hidden."""

    def __init__(self, redact: SecretRedactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """Render one event as one line (a traceback, if any, follows beneath it)."""
        message = record.getMessage().replace("\n", "\\n")
        ids = "".join(
            f" {label}={value}"
            for label, value in (("story", record.story_id), ("job", record.job_id))  # type: ignore[attr-defined]
            if value is not None
        )
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {message}{ids}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self._redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, story_id, job_id, exception."""

    def __init__(self, redact: SecretRedactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """Render one event as one JSON line."""
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
            "story_id": record.story_id,  # type: ignore[attr-defined]
            "job_id": record.job_id,  # type: ignore[attr-defined]
        }
        if record.exc_info:
            event["exception"] = self._redact(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):
    """Write to whatever ``sys.stderr`` is at the time of each line (it may be swapped)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the current stderr."""
        self.stream = sys.stderr
        super().emit(record)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def configure_logging(
    level: str | int,
    *,
    log_format: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log line to stderr (or STREAM) at LEVEL, as text or JSON, secrets hidden.

    Calling it again replaces the handler it installed before.
    """
    redact = SecretRedactor(secrets)
    formatter: logging.Formatter = (
        JsonFormatter(redact) if log_format == "json" else TextFormatter(redact)
    )
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(_EventContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root.setLevel(numeric)
    # Their INFO lines are noise unless asked for everything (DEBUG).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if numeric > logging.DEBUG else numeric)
    return handler
