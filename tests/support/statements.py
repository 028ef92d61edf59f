"""Count the SQL statements a piece of code sends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@contextmanager
def counted(factory: async_sessionmaker[AsyncSession]) -> Iterator[list[str]]:
    """Collect every SQL statement sent through FACTORY's engine while the block runs."""
    engine = factory.kw["bind"].sync_engine
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE/DEFERRED and the query_only switch between reads and
        # writes are the project's own transaction statements, not queries.
        if not statement.startswith(("BEGIN", "PRAGMA query_only")):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
