"""Database engine and session factory for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransactionOrigin

log = logging.getLogger(__name__)

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")

# A connection option naming a read: SQLite begins it DEFERRED and refuses writes in it.
READ_ONLY_OPTION = "taleweaver_read_only"

# PostgreSQL error classes that mean the server cannot serve us now, not that we erred:
# 08 connection exception, 53 insufficient resources, 57 operator intervention
# (query cancelled by statement_timeout, shutdown, starting up), 58 system error.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be used."""


@dataclass(frozen=True)
class DatabaseLimits:
    """How long a caller waits for the database before it gives up."""

    # PostgreSQL: opening a connection (asyncpg's connect timeout).
    connect_timeout_s: float = 5.0
    # PostgreSQL: one statement (the server's statement_timeout, and a client-side timeout
    # a little longer for a server that does not answer at all); also the longest wait for
    # a free pooled connection. None: no limit (migrations may run long).
    statement_timeout_s: float | None = 10.0
    # SQLite: how long a writer waits for another connection's write lock.
    busy_timeout_s: float = 5.0


DEFAULT_LIMITS = DatabaseLimits()
# Migrations rewrite whole tables: no statement limit.
MIGRATION_LIMITS = DatabaseLimits(statement_timeout_s=None)
# The client gives the server this long past its own statement_timeout to report it.
_CLIENT_TIMEOUT_MARGIN_S = 0.5


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


def _sqlite_transactions(engine: AsyncEngine, limits: DatabaseLimits) -> None:
    # SQLite upgrades a read lock to a write lock lazily, so two concurrent
    # read-then-write transactions deadlock ("database is locked"). A transaction that
    # may write therefore takes the write lock at BEGIN (IMMEDIATE), which serialises
    # writers the way PostgreSQL's row locks do. A read begins DEFERRED: in WAL mode it
    # reads a snapshot without waiting for any writer, and query_only makes a write
    # slipped into it fail at once instead of deadlocking later.
    sync_engine = engine.sync_engine
    busy_ms = round(limits.busy_timeout_s * 1000)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = bool(connection.get_execution_options().get(READ_ONLY_OPTION))
        # The pragma stays with the pooled connection: set it only when it changes.
        if connection.info.get(READ_ONLY_OPTION, False) != read_only:
            connection.exec_driver_sql(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            connection.info[READ_ONLY_OPTION] = read_only
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def create_engine(
    url: str, *, echo: bool = False, limits: DatabaseLimits = DEFAULT_LIMITS
) -> AsyncEngine:
    """Create the async engine for a validated URL, with LIMITS on every wait."""
    validate_database_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": limits.busy_timeout_s}
        )
        _sqlite_transactions(engine, limits)
        _writers[engine.sync_engine] = _WriterQueue(limits.busy_timeout_s)
        return engine
    connect_args: dict[str, Any] = {"timeout": limits.connect_timeout_s}
    pool_timeout = 30.0
    if limits.statement_timeout_s is not None:
        statement_ms = round(limits.statement_timeout_s * 1000)
        connect_args["server_settings"] = {"statement_timeout": str(statement_ms)}
        connect_args["command_timeout"] = limits.statement_timeout_s + _CLIENT_TIMEOUT_MARGIN_S
        pool_timeout = limits.statement_timeout_s
    # pool_pre_ping: a connection the server dropped (restart, failover) is replaced on
    # checkout, so service resumes by itself once the database is back.
    return create_async_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
    )


_read_binds: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def _read_bind(engine: Engine) -> Engine:
    bind = _read_binds.get(engine)
    if bind is None:
        # Same pool, same events; only the option that makes SQLite begin DEFERRED.
        bind = _read_binds[engine] = engine.execution_options(**{READ_ONLY_OPTION: True})
    return bind


class ReadWriteSession(Session):
    """A session whose begun transactions write and whose autobegun ones only read.

    Services begin a transaction (``db.begin()``) for every change and use the session
    as it is for questions; on SQLite that tells a write (BEGIN IMMEDIATE) from a read
    (BEGIN DEFERRED, which never waits for a writer).
    """

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        """Return the engine, or its read-only variant outside a begun transaction."""
        bind = super().get_bind(*args, **kwargs)
        if not isinstance(bind, Engine) or bind.dialect.name != "sqlite":
            return bind
        transaction = self.get_transaction()
        if transaction is not None and transaction.origin is not SessionTransactionOrigin.AUTOBEGIN:
            return bind
        return _read_bind(bind)


class _WriterQueue:
    """Let a process's SQLite writers write one at a time, in the order they asked.

    SQLite lets one connection write; the others poll for the lock with growing sleeps,
    so under load a writer can lose the race again and again until its busy timeout.
    Queueing the process's own writers first hands the lock over at once and in turn;
    the busy timeout is left for writers in other processes (an import, a migration).
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            WeakKeyDictionary()
        )

    def lock(self) -> asyncio.Lock:
        """Return the lock of the running event loop."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


_writers: WeakKeyDictionary[Engine, _WriterQueue] = WeakKeyDictionary()


class _QueuedWrite(AsyncSessionTransaction):
    """A begun SQLite transaction that waits its turn among the process's writers first."""

    def __init__(self, session: AsyncSession, writers: _WriterQueue) -> None:
        super().__init__(session)
        self._lock = writers.lock()
        self._wait_s = writers.wait_s

    async def __aenter__(self) -> AsyncSessionTransaction:
        try:
            await asyncio.wait_for(self._lock.acquire(), self._wait_s)
        except TimeoutError as exc:
            # What SQLite itself says after its busy timeout, so callers see one error.
            locked = sqlite3.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", None, locked) from exc
        try:
            return await super().__aenter__()
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        finally:
            self._lock.release()


class DatabaseSession(AsyncSession):
    """The services' session: on SQLite a begun transaction first queues for the write.

    It waits behind the process's other writers before it takes SQLite's write lock.
    """

    def begin(self) -> AsyncSessionTransaction:
        """Return the transaction to enter (queued behind other writers on SQLite)."""
        bind = self.bind
        writers = _writers.get(bind.sync_engine) if isinstance(bind, AsyncEngine) else None
        if writers is None or self.in_transaction():
            return super().begin()
        return _QueuedWrite(self, writers)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the one session factory used by services."""
    return async_sessionmaker(
        engine,
        class_=DatabaseSession,
        expire_on_commit=False,
        sync_session_class=ReadWriteSession,
    )


def database_unavailable(error: BaseException) -> bool:
    """Tell whether ERROR means the database cannot serve us now (down, stalled, locked).

    What the database refused of a request (a constraint, bad SQL on PostgreSQL) is not.
    """
    if isinstance(error, PoolTimeout | DisconnectionError):
        return True
    if isinstance(error, DBAPIError):
        if isinstance(error, IntegrityError | ProgrammingError | DataError | NotSupportedError):
            return False
        if (
            error.connection_invalidated
            or error.statement is None  # no connection to run anything on
            or isinstance(error, OperationalError | InterfaceError | InternalError)
        ):
            return True
        sqlstate = getattr(error.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    # Raised by the drivers themselves while connecting or waiting: refused, unknown
    # host, timed out (TimeoutError and socket.gaierror are OSErrors too).
    if isinstance(error, OSError):
        return True
    # asyncpg's own errors that reach us unwrapped (at connect time).
    if type(error).__module__.startswith("asyncpg"):
        sqlstate = getattr(error, "sqlstate", None)
        return not isinstance(sqlstate, str) or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    return False
