"""The database layer: SQLite reads beside a writer, timeouts, what counts as unavailable."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.database import (
    DatabaseLimits,
    create_engine,
    create_session_factory,
    database_unavailable,
)

FAST = DatabaseLimits(busy_timeout_s=0.3)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Return a SQLite file with one table of one row, in WAL mode."""
    path = tmp_path / "lock.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    return path


@pytest.fixture
async def sessions(sqlite_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_path}", limits=FAST)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def other_writer(sqlite_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock (a long import or migration, say)."""
    conn = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (2)")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def _count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db:
        return int((await db.execute(text("SELECT count(*) FROM t"))).scalar_one())


async def test_a_sqlite_read_is_not_blocked_by_another_connections_write(
    sessions: async_sessionmaker[AsyncSession], other_writer: sqlite3.Connection
) -> None:
    started = time.monotonic()
    assert await _count(sessions) == 1  # the last committed state, at once
    assert time.monotonic() - started < FAST.busy_timeout_s


async def test_a_sqlite_write_waits_for_the_writer_and_fails_after_the_busy_timeout(
    sessions: async_sessionmaker[AsyncSession], other_writer: sqlite3.Connection
) -> None:
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked") as caught:
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO t VALUES (3)"))
    assert FAST.busy_timeout_s * 0.9 <= time.monotonic() - started < FAST.busy_timeout_s + 2
    assert database_unavailable(caught.value)


async def test_a_begun_transaction_that_reads_first_still_takes_the_write_lock(
    sqlite_path: Path, other_writer: sqlite3.Connection
) -> None:
    # Read-then-write must lock at BEGIN: upgrading a read lock later is what deadlocks.
    engine = create_engine(
        f"sqlite+aiosqlite:///{sqlite_path}", limits=DatabaseLimits(busy_timeout_s=2.0)
    )
    sessions = create_session_factory(engine)

    async def read_then_write() -> float:
        async with sessions() as db, db.begin():
            began = time.monotonic()
            count = (await db.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await db.execute(text("INSERT INTO t VALUES (:x)"), {"x": count + 10})
            return began

    try:
        task = asyncio.create_task(read_then_write())
        await asyncio.sleep(0.3)
        assert not task.done(), "the begun transaction waits for the other writer"
        other_writer.execute("COMMIT")
        await asyncio.wait_for(task, 5)
        # It read after the other writer committed, so it saw that row.
        async with sessions() as db:
            rows = (await db.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
        assert rows == [1, 2, 12]
    finally:
        await engine.dispose()


async def test_writes_serialise_instead_of_deadlocking(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def increment() -> None:
        async with sessions() as db, db.begin():
            value = (await db.execute(text("SELECT max(x) FROM t"))).scalar_one()
            await asyncio.sleep(0.01)  # hold the lock across an await, as services do
            await db.execute(text("INSERT INTO t VALUES (:x)"), {"x": value + 1})

    await asyncio.gather(*(increment() for _ in range(8)))
    async with sessions() as db:
        rows = (await db.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all()
    assert rows == list(range(1, 10))


async def test_queued_writers_hold_no_connection_so_reads_go_on(sqlite_path: Path) -> None:
    # Writers waiting for SQLite's lock inside a connection would take the whole pool
    # (15 connections) and leave a read waiting for one; queued in the process, they hold
    # none until it is their turn.
    engine = create_engine(
        f"sqlite+aiosqlite:///{sqlite_path}", limits=DatabaseLimits(busy_timeout_s=5.0)
    )
    sessions = create_session_factory(engine)
    holding = asyncio.Event()

    async def long_write() -> None:
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO t VALUES (2)"))
            holding.set()
            await asyncio.sleep(1.0)

    async def write(n: int) -> None:
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO t VALUES (:x)"), {"x": n})

    try:
        first = asyncio.create_task(long_write())
        await holding.wait()
        queued = [asyncio.create_task(write(n)) for n in range(10, 30)]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        assert await asyncio.wait_for(_count(sessions), 5) == 1
        assert time.monotonic() - started < 0.5
        await asyncio.gather(first, *queued)
        assert await _count(sessions) == 22
    finally:
        await engine.dispose()


async def test_a_writer_queued_past_the_busy_timeout_gives_up_as_locked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    holding = asyncio.Event()

    async def long_write() -> None:
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO t VALUES (2)"))
            holding.set()
            await asyncio.sleep(FAST.busy_timeout_s * 3)

    long = asyncio.create_task(long_write())
    await holding.wait()
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked") as caught:
        async with sessions() as db, db.begin():
            await db.execute(text("INSERT INTO t VALUES (3)"))
    assert FAST.busy_timeout_s * 0.9 <= time.monotonic() - started < FAST.busy_timeout_s + 1
    assert database_unavailable(caught.value)
    assert await _count(sessions) == 1, "reads go on meanwhile"
    await long
    async with sessions() as db, db.begin():  # the queue is free again
        await db.execute(text("INSERT INTO t VALUES (4)"))
    assert await _count(sessions) == 3


async def test_a_write_slipped_into_a_read_fails_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(OperationalError, match="readonly"):
        async with sessions() as db:
            await db.execute(text("SELECT 1"))
            await db.execute(text("INSERT INTO t VALUES (5)"))
    assert await _count(sessions) == 1
    async with sessions() as db, db.begin():
        await db.execute(text("INSERT INTO t VALUES (5)"))  # the same connection writes again
    assert await _count(sessions) == 2


async def test_reads_use_the_same_pool_as_writes(sqlite_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_path}")
    sessions = create_session_factory(engine)
    try:
        for _ in range(3):
            assert await _count(sessions) >= 1
            async with sessions() as db, db.begin():
                await db.execute(text("INSERT INTO t VALUES (7)"))
        assert engine.sync_engine.pool.checkedin() == 1
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _first_error(engine: AsyncEngine, sql: str) -> BaseException:
    try:
        async with create_session_factory(engine)() as db:
            await db.execute(text(sql))
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql} did not fail")


async def test_postgres_on_a_closed_port_fails_at_once_as_unavailable() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/x")
    try:
        started = time.monotonic()
        error = await _first_error(engine, "SELECT 1")
        assert isinstance(error, OSError)
        assert database_unavailable(error)
        assert time.monotonic() - started < 2
    finally:
        await engine.dispose()


async def test_postgres_statement_timeout_cancels_a_slow_statement(
    postgres_database: str,
) -> None:
    engine = create_engine(postgres_database, limits=DatabaseLimits(statement_timeout_s=0.3))
    try:
        started = time.monotonic()
        error = await _first_error(engine, "SELECT pg_sleep(5)")
        assert time.monotonic() - started < 2
        assert isinstance(error, DBAPIError) and "statement timeout" in str(error)
        assert database_unavailable(error)
        # The server cancelled it: the same pool serves the next call.
        async with create_session_factory(engine)() as db:
            assert (await db.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_migrations_get_no_statement_timeout(postgres_database: str) -> None:
    engine = create_engine(postgres_database, limits=DatabaseLimits(statement_timeout_s=None))
    try:
        async with create_session_factory(engine)() as db:
            setting = (await db.execute(text("SHOW statement_timeout"))).scalar_one()
        assert setting == "0"
    finally:
        await engine.dispose()


class _Orig(Exception):
    """A driver error carrying a PostgreSQL SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), True),
        (socket.gaierror(-2, "Name or service not known"), True),
        (TimeoutError(), True),
        (PoolTimeout("QueuePool limit reached"), True),
        (OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), True),
        (DBAPIError("SELECT 1", {}, _Orig("57014")), True),  # statement_timeout
        (DBAPIError("SELECT 1", {}, _Orig("08006")), True),  # connection failure
        (DBAPIError(None, None, _Orig("28P01")), True),  # refused at connect (password)
        (DBAPIError("SELECT 1", {}, _Orig("22P02")), False),  # bad input
        (IntegrityError("INSERT", {}, _Orig("23505")), False),
        (ProgrammingError("SELECT", {}, _Orig("42P01")), False),
        (ValueError("not the database's business"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_what_counts_as_the_database_being_unavailable(
    error: BaseException, unavailable: bool
) -> None:
    assert database_unavailable(error) is unavailable
