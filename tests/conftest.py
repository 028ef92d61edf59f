"""Shared fixtures: databases (SQLite and the real PostgreSQL), services, a controllable clock."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.settings import reset_settings
from storage.database import create_engine, create_session_factory
from storage.migrate import upgrade

POSTGRES_URL = os.environ.get(
    "TALEWEAVER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, exc: BaseException) -> None:
    """Skip when a local service is absent, but fail in CI where it must be there."""
    message = f"{what} is not reachable: {exc}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it)", pytrace=False)
    pytest.skip(message)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_postgres_database(name: str) -> str:
    """Create an empty PostgreSQL database next to the test one and return its URL."""
    conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(name: str) -> None:
    """Drop a database made by create_postgres_database."""
    conn = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TALEWEAVER_DATABASE_URL", raising=False)
    monkeypatch.delenv("TALEWEAVER_QUEUE_URL", raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create one migrated PostgreSQL database for the test run."""
    name = f"taleweaver_test_{uuid.uuid4().hex[:8]}"
    try:
        url = asyncio.run(create_postgres_database(name))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_missing(f"PostgreSQL at {POSTGRES_URL}", exc)
    asyncio.run(upgrade(url))
    yield url
    asyncio.run(drop_postgres_database(name))


async def _truncate_all(url: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename != 'alembic_version'"
        )
        names = ", ".join(f'"{t["tablename"]}"' for t in tables)
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty, migrated database of each supported kind."""
    if request.param == "sqlite":
        path = tmp_path / "story.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_database")
    asyncio.run(_truncate_all(url))
    yield url


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Yield a session factory over the test database."""
    engine = create_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
