"""Database engine and session factory for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be used."""


def validate_database_url(url: str) -> str:
    """Return the URL if it names a supported async driver, else raise DatabaseUrlError."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"malformed database URL {url!r}: {exc}") from exc
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseUrlError(
            f"unsupported database driver {parsed.drivername!r}; "
            f"use one of {', '.join(d + '://' for d in SUPPORTED_DRIVERS)}"
        )
    return url


def _use_immediate_transactions(engine: AsyncEngine) -> None:
    # SQLite upgrades a read lock to a write lock lazily, so two concurrent
    # read-then-write transactions deadlock ("database is locked"). Taking the
    # write lock at BEGIN serialises writers the way PostgreSQL's row locks do.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for a validated URL."""
    validate_database_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _use_immediate_transactions(engine)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the one session factory used by services."""
    return async_sessionmaker(engine, expire_on_commit=False)
