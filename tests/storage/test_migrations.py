from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.cli import main
from storage.database import create_engine
from storage.migrate import current_revision_for_url, downgrade, head_revision, upgrade
from storage.models import Base

from conftest import create_postgres_database, drop_postgres_database, service_missing

EXPECTED_TABLES = {
    "guild_settings",
    "story_sessions",
    "participants",
    "turns",
    "turn_alternatives",
    "skip_votes",
    "lore_entries",
    "story_summaries",
    "moderation_events",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _schema_diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"taleweaver_mig_{uuid.uuid4().hex[:8]}"
    try:
        url = await create_postgres_database(name)
    except OSError as exc:
        service_missing("PostgreSQL", exc)
    yield url
    await drop_postgres_database(name)


async def test_upgrade_to_head_and_back_to_base(empty_database: str) -> None:
    await upgrade(empty_database)
    assert EXPECTED_TABLES <= await _tables(empty_database)
    assert await current_revision_for_url(empty_database) == head_revision()
    await downgrade(empty_database)
    assert await _tables(empty_database) - {"alembic_version"} == set()
    assert await current_revision_for_url(empty_database) is None


async def test_models_and_migrations_agree(empty_database: str) -> None:
    await upgrade(empty_database)
    assert await _schema_diff(empty_database) == []


def test_cli_migrate_reports_revision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert main(["migrate", "--database-url", url]) == 0
    assert f"at revision {head_revision()}" in capsys.readouterr().out


def test_cli_migrate_reads_url_from_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALEWEAVER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'env.db'}")
    assert main(["migrate"]) == 0
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "malformed database URL"),
        ("mysql://root@localhost/db", "unsupported database driver 'mysql'"),
        ("postgresql+asyncpg://postgres@127.0.0.1:1/x", "cannot use the database"),
        ("sqlite+aiosqlite:////nonexistent-dir/x.db", "cannot use the database"),
    ],
)
def test_cli_migrate_explains_bad_urls(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_rejects_malformed_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TALEWEAVER_DATABASE_URL", "oracle://x")
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate"])
    assert exit_info.value.code == 2
    assert "TALEWEAVER_DATABASE_URL" in capsys.readouterr().err
