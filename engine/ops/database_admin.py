"""Database upkeep for operators: migrate and report problems in plain words."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from engine.errors import OperatorError
from storage.database import DatabaseUrlError, validate_database_url
from storage.migrate import current_revision_for_url, downgrade, head_revision, upgrade

log = logging.getLogger(__name__)


class DatabaseUnavailable(OperatorError):
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


def _check_sqlite_location(url: str) -> None:
    # Fail early with a plain message; aiosqlite's failed connect otherwise leaves a
    # worker thread posting to a closed event loop.
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    folder = Path(parsed.database).expanduser().resolve().parent
    if not folder.is_dir():
        raise DatabaseUnavailable(
            f"cannot use the database at {safe_url(url)}: folder {folder} does not exist"
        )
    if not os.access(folder, os.W_OK):
        raise DatabaseUnavailable(
            f"cannot use the database at {safe_url(url)}: folder {folder} is not writable"
        )


async def migrate(url: str, revision: str = "head", *, down: bool = False) -> str | None:
    """Upgrade (or downgrade) the database to REVISION and return the revision it is at."""
    try:
        validate_database_url(url)
    except DatabaseUrlError as exc:
        raise DatabaseUnavailable(str(exc)) from exc
    _check_sqlite_location(url)
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
