"""Database upkeep for operators: migrate and report problems in plain words."""

from __future__ import annotations

import logging
import socket

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from engine.errors import StoryError
from storage.database import DatabaseUrlError, validate_database_url
from storage.migrate import current_revision_for_url, downgrade, head_revision, upgrade

log = logging.getLogger(__name__)


class DatabaseUnavailable(StoryError):
    """The database cannot be reached or used."""


def safe_url(url: str) -> str:
    """Render a database URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<malformed URL>"


def _explain(url: str, exc: BaseException) -> DatabaseUnavailable:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc) else ""
    return DatabaseUnavailable(
        f"cannot use the database at {safe_url(url)}: {type(exc).__name__}: {reason}"
    )


async def migrate(url: str, revision: str = "head", *, down: bool = False) -> str | None:
    """Upgrade (or downgrade) the database to REVISION and return the revision it is at."""
    try:
        validate_database_url(url)
    except DatabaseUrlError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    try:
        if down:
            await downgrade(url, revision)
        else:
            await upgrade(url, revision)
        return await current_revision_for_url(url)
    except (OSError, socket.gaierror, OperationalError, DBAPIError, TimeoutError) as exc:
        raise _explain(url, exc) from exc
    except Exception as exc:
        # asyncpg raises its own hierarchy (bad database name, password, …) at connect time.
        if type(exc).__module__.startswith("asyncpg"):
            raise _explain(url, exc) from exc
        raise


__all__ = ["DatabaseUnavailable", "head_revision", "migrate", "safe_url"]
