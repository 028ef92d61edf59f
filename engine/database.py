"""The engine's sessions: a database that does not answer becomes StoryUnavailable.

Every service opens its sessions from ``reporting_sessions(factory)``. When the database
is down, stalled past its statement timeout, or locked past SQLite's busy timeout,
whatever the session was doing ends in ``StoryUnavailable``, a refusal every front-end
shows the player, and the operator's detail (which database, what the driver said)
goes to the log. What the database refused of a request (a constraint, say) is raised
unchanged: callers handle those themselves.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import StoryUnavailable
from engine.settings import Settings
from storage.database import DatabaseLimits, DatabaseSession, database_unavailable

log = logging.getLogger(__name__)


def _detail(error: BaseException) -> str:
    # The driver's own words, without SQLAlchemy's statement and parameters (they may
    # hold what a player wrote).
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    words = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {words[0]}" if words else type(cause).__name__


def unavailable(error: BaseException, where: str) -> StoryUnavailable | None:
    """Return the player's error for a database that did not answer (and log why), else None.

    WHERE names the database for the log, its password hidden.
    """
    if not database_unavailable(error):
        return None
    log.error("the story database at %s did not answer: %s", where, _detail(error))
    return StoryUnavailable()


def _url_of(bind: Any) -> str:
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=True) if url is not None else "?"


def database_of(factory: async_sessionmaker[AsyncSession]) -> str:
    """Name the database FACTORY's sessions use, for the log (password hidden)."""
    return _url_of(factory.kw.get("bind"))


class ReportingSession(DatabaseSession):
    """A session that ends in StoryUnavailable when the database does not answer."""

    def _where(self) -> str:
        return _url_of(self.bind)

    async def __aexit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the session; report a database that did not answer as StoryUnavailable."""
        try:
            await super().__aexit__(type_, value, traceback)
        except Exception as closing:
            # Rolling back on a broken connection can fail too.
            error = unavailable(closing, self._where())
            if error is None:
                raise
            raise error from closing
        if value is not None:
            error = unavailable(value, self._where())
            if error is not None:
                raise error from value


def reporting_sessions(
    factory: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Return FACTORY's sessions as ReportingSessions (FACTORY itself if they are already)."""
    if issubclass(factory.class_, ReportingSession):
        return factory
    return cast(
        async_sessionmaker[AsyncSession],
        async_sessionmaker(class_=ReportingSession, **factory.kw),
    )


def database_limits(settings: Settings) -> DatabaseLimits:
    """Return how long the bot's calls wait for the database, from SETTINGS."""
    return DatabaseLimits(
        connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s,
        busy_timeout_s=settings.sqlite_busy_timeout_s,
    )
