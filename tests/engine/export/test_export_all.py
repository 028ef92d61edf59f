"""`taleweaver export --all`: every story (of one server) as JSON files that import back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import main
from engine.story import StoryService
from storage.database import create_engine, create_session_factory
from storage.migrate import upgrade

from support.stories import ALICE, BOB, CHANNEL, GUILD, started

OTHER_GUILD = GUILD + 1


async def _populate(url: str) -> None:
    await upgrade(url)
    engine = create_engine(url)
    try:
        service = StoryService.create(create_session_factory(engine))
        await started(service, ALICE, BOB)
        await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")
        await started(service, BOB, channel=CHANNEL + 1, begin=False)
        await service.lifecycle.start(
            guild_id=OTHER_GUILD,
            channel_id=CHANNEL + 2,
            actor=ALICE,
            title="The Lantern",  # the same title as the first story
            genre="fantasy",
            premise="Elsewhere.",
        )
    finally:
        await engine.dispose()


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}"
    asyncio.run(_populate(url))
    return url


def test_every_story_is_written_as_json_one_file_each(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "backup" / "today"
    assert main(["export", "--all", "--output", str(folder), "--database-url", database]) == 0
    files = sorted(folder.iterdir())
    assert [f.name[:6] for f in files] == ["00001-", "00002-", "00003-"]
    stories = [json.loads(f.read_text()) for f in files]
    assert all(f.suffix == ".json" for f in files)
    assert stories[0]["session"]["title"] == stories[2]["session"]["title"] == "The Lantern"
    assert "wrote 3 stories as json to" in capsys.readouterr().out
    # A backup file reads back as a new story.
    assert main(["import", str(files[0]), "--channel", "555", "--database-url", database]) == 0


def test_one_servers_stories_only(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "guild"
    argv = ["export", "--all", "--guild", str(OTHER_GUILD), "-o", str(folder)]
    assert main([*argv, "--database-url", database]) == 0
    [only] = list(folder.iterdir())
    assert json.loads(only.read_text())["session"]["guild_id"] == OTHER_GUILD


def test_another_format_on_request(database: str, tmp_path: Path) -> None:
    folder = tmp_path / "md"
    argv = ["export", "--all", "--format", "markdown", "-o", str(folder)]
    assert main([*argv, "--database-url", database]) == 0
    assert sorted(f.suffix for f in folder.iterdir()) == [".md", ".md", ".md"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "--all"], "name a folder with --output DIR"),
        (["export", "--all", "-o", "-"], "name a folder with --output DIR"),
        (["export"], "name the story to export"),
        (["export", "1", "--guild", "1"], "--guild goes with --all"),
    ],
)
def test_refusals_say_what_to_do(
    database: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--database-url", database]) == 2
    assert message in capsys.readouterr().err
