"""Where the command line's log lines go, how many there are, and what they never show."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.cli import _configure_logging, build_parser, main
from engine.settings import reset_settings

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _level_for(*argv: str) -> str:
    reset_settings()
    _configure_logging(build_parser().parse_args(argv))
    return logging.getLevelName(logging.getLogger().level)


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["demo"], "WARNING"),
        (["play"], "WARNING"),
        (["-v", "demo"], "INFO"),
        (["demo", "-v"], "INFO"),
        (["-vv", "play"], "DEBUG"),
        (["play", "-vv"], "DEBUG"),
        (["list"], "WARNING"),
        (["export", "--all"], "WARNING"),
        (["status"], "WARNING"),
        (["-v", "list"], "INFO"),
        (["worker"], "ERROR"),  # TALEWEAVER_LOG_LEVEL
        (["bot"], "ERROR"),
        (["bench", "generate", "-vv"], "DEBUG"),
    ],
)
def test_one_shot_commands_are_quiet_unless_asked_and_services_follow_the_setting(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], level: str
) -> None:
    monkeypatch.setenv("TALEWEAVER_LOG_LEVEL", "error")
    assert _level_for(*argv) == level


def test_log_lines_go_to_stderr_as_json_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TALEWEAVER_LOG_FORMAT", "json")
    _level_for("worker")
    logging.getLogger("engine.test").warning("a warning")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["message"] == "a warning"
    _level_for("--log-format", "text", "worker")
    logging.getLogger("engine.test").warning("a warning")
    assert capsys.readouterr().err.split(" ", 1)[1] == "WARNING engine.test: a warning\n"


def test_a_failing_command_shows_neither_token_nor_passwords(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TALEWEAVER_DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("TALEWEAVER_QUEUE_URL", "redis://:queue-pass-77@127.0.0.1:1/0")
    reset_settings()
    url = "postgresql+asyncpg://story:db-pass-77@127.0.0.1:1/stories"
    assert main(["-vv", "list", "--database-url", url]) == 2
    # A careless library line, after the command configured logging:
    logging.getLogger("somelib").error("url=%s queue=%s token=%s", url, "queue-pass-77", TOKEN)
    err = capfd.readouterr().err
    assert "cannot use the database at postgresql+asyncpg://story:***@127.0.0.1:1/stories" in err
    assert "url=postgresql+asyncpg://story:***@127.0.0.1:1/stories" in err
    for secret in (TOKEN, "db-pass-77", "queue-pass-77"):
        assert secret not in err


def test_an_unknown_log_level_is_refused_in_plain_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TALEWEAVER_LOG_LEVEL", "chatty")
    reset_settings()
    with pytest.raises(SystemExit) as exited:
        main(["list"])
    assert exited.value.code == 2
    assert "TALEWEAVER_LOG_LEVEL" in capsys.readouterr().err
