"""Run Alembic migrations programmatically (used by `taleweaver migrate` and tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import create_engine, validate_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """Build an Alembic config pointing at the bundled migrations for this URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def head_revision() -> str:
    """Return the newest migration revision."""
    head = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()
    assert head is not None
    return head


async def _run(url: str, action: str, revision: str) -> None:
    # Alembic's env.py runs its own event loop; keep it off ours with a thread.
    config = alembic_config(validate_database_url(url))
    fn = command.upgrade if action == "upgrade" else command.downgrade
    await asyncio.to_thread(fn, config, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at URL to REVISION."""
    await _run(url, "upgrade", revision)


async def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at URL to REVISION."""
    await _run(url, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the revision the database is at, or None when unmigrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )


async def current_revision_for_url(url: str) -> str | None:
    """Return the revision of the database at URL."""
    engine = create_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()
