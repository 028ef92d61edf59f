from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import pytest

from bot.cli import main
from engine.story import StoryService
from storage.database import create_engine, create_session_factory
from storage.migrate import upgrade

from support.stories import ALICE, BOB, CHANNEL, started


async def _populate(url: str) -> None:
    await upgrade(url)
    engine = create_engine(url)
    try:
        service = StoryService.create(create_session_factory(engine))
        view = await started(service, ALICE, BOB)
        outcome = await service.turns.submit_turn(CHANNEL, ALICE, "# I light the <b>lamp</b>.")
        assert outcome.narration is not None
        await service.ledger.record_narration(view.id, outcome.narration.job_id, "The sea stirs.")
        await service.turns.record_table_talk(CHANNEL, BOB, "nice one")
        await service.lifecycle.end(CHANNEL, ALICE)
        await started(service, BOB, channel=CHANNEL + 1, begin=False)
    finally:
        await engine.dispose()


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}"
    asyncio.run(_populate(url))
    return url


def test_list_prints_a_table_of_stories(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--database-url", database]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "title", "status", "turns", "players", "created", "(UTC)"]
    assert rows[0].split()[:5] == ["2", "The", "Lantern", "lobby", "0"]
    assert rows[1].split()[:6] == ["1", "The", "Lantern", "ended", "2", "Alice,"]


def test_list_reads_the_database_from_settings_and_filters_by_server(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALEWEAVER_DATABASE_URL", database)
    assert main(["list", "--guild", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["list", "--guild", "42"]) == 0
    assert capsys.readouterr().out.strip() == "No stories on server 42."


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("markdown", "the-lantern.md"),
        ("text", "the-lantern.txt"),
        ("html", "the-lantern.html"),
        ("epub", "the-lantern.epub"),
        ("json", "the-lantern.json"),
    ],
)
def test_export_writes_a_file_in_the_current_folder(
    database: str,
    fmt: str,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    assert main(["export", "1", "--format", fmt, "--database-url", database]) == 0
    assert (out / name).stat().st_size > 100
    assert f"to {name} (" in capsys.readouterr().out


def test_export_to_stdout_with_table_talk(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "1", "--format", "markdown", "--output", "-", "--database-url", database]
    assert main([*argv, "--table-talk"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# The Lantern\n")
    assert "**Alice:** \\# I light the \\<b\\>lamp\\</b\\>." in out
    assert "nice one" in out
    assert main(argv) == 0
    assert "nice one" not in capsys.readouterr().out


def test_export_to_a_named_file_or_folder(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "book.epub"
    argv = ["export", "1", "--format", "epub", "--output", str(target)]
    assert main([*argv, "--database-url", database]) == 0
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as book:
        assert book.namelist()[0] == "mimetype"
    assert main(["export", "1", "--output", str(tmp_path), "--database-url", database]) == 0
    assert (tmp_path / "the-lantern.md").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "99"], "There is no story with id 99."),
        (["export", "1", "--format", "epub", "--output", "-"], "epub is not a text format"),
        (["export", "1", "--output", "/nonexistent-dir/x.md"], "cannot write /nonexistent-dir"),
        (["import", "/nonexistent-file.json"], "cannot read /nonexistent-file.json"),
    ],
)
def test_errors_are_one_line_with_status_2(
    database: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--database-url", database]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--database-url", "sqlite+aiosqlite:////nonexistent-dir/x.db"]) == 2
    assert "cannot use the database" in capsys.readouterr().err


def test_import_reads_an_export_back_as_a_new_story(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "story.json"
    argv = ["export", "1", "--format", "json", "--output", str(exported)]
    assert main([*argv, "--database-url", database]) == 0
    capsys.readouterr()
    argv = ["import", str(exported), "--database-url", database]
    assert main([*argv, "--guild", "7", "--channel", "70"]) == 0
    assert capsys.readouterr().out.strip() == (
        "imported 'The Lantern' as story 3 (2 turns, ended) on server 7, channel 70"
    )
    assert main(argv) == 0  # twice, into its own server and channel
    assert "as story 4" in capsys.readouterr().out
    again = tmp_path / "again.json"
    argv = ["export", "3", "--format", "json", "--output", str(again)]
    assert main([*argv, "--database-url", database]) == 0
    first, second = json.loads(exported.read_text()), json.loads(again.read_text())
    assert first["turns"][0]["text"] == second["turns"][0]["text"] == "# I light the <b>lamp</b>."
    assert first["table_talk"] == second["table_talk"]


def test_import_refuses_a_bad_file_in_one_line(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "taleweaver-story", "format_version": 3}')
    assert main(["import", str(bad), "--database-url", database]) == 2
    assert "format version 3" in capsys.readouterr().err
