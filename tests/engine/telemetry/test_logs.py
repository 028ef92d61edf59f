from __future__ import annotations

import io
import json
import logging

import pytest

from engine.telemetry.logs import SecretRedactor, configure_logging, log_context, url_password

TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
DB_URL = "postgresql+asyncpg://taleweaver:pg-secret-42@postgres:5432/taleweaver"
REDIS_URL = "redis://:redis-secret-42@redis:6379/0"

log = logging.getLogger("engine.table")


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_carry_the_story_and_job_of_their_context() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)
    with log_context(story_id=7, job_id="n-7-3"):
        log.info("narrator job queued at position %d", 2)
        with log_context(job_id="s-7-9"):
            log.info("summary queued")
    log.warning("outside", extra={"story_id": 8})
    events = [json.loads(line) for line in _lines(stream)]
    assert [(e["message"], e["story_id"], e["job_id"]) for e in events] == [
        ("narrator job queued at position 2", 7, "n-7-3"),
        ("summary queued", 7, "s-7-9"),
        ("outside", 8, None),
    ]
    assert events[0]["level"] == "INFO" and events[0]["logger"] == "engine.table"
    assert events[0]["time"].endswith("Z")


def test_an_exception_stays_inside_its_one_json_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)
    try:
        raise RuntimeError("line one\nline two")
    except RuntimeError:
        log.exception("applying the event failed")
    [line] = _lines(stream)
    event = json.loads(line)
    assert "RuntimeError: line one\nline two" in event["exception"]


def test_text_lines_name_story_and_job_at_the_end() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    with log_context(story_id=3, job_id="n-3-5"):
        log.debug("turn %d stored\nwith a newline", 4)
    [line] = _lines(stream)
    assert line.endswith("DEBUG engine.table: turn 4 stored\\nwith a newline story=3 job=n-3-5")


def test_the_level_filters_lines() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", stream=stream)
    log.info("hidden")
    log.warning("shown")
    assert [line.split(": ", 1)[1] for line in _lines(stream)] == ["shown"]


def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    configure_logging("INFO", stream=second)
    log.info("once")
    assert first.getvalue() == "" and len(_lines(second)) == 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_token_and_passwords_never_appear(log_format: str) -> None:
    stream = io.StringIO()
    secrets = [TOKEN, "pg-secret-42", "redis-secret-42"]
    configure_logging("DEBUG", log_format=log_format, stream=stream, secrets=secrets)
    log.info("connecting with %s to %s and %s", TOKEN, DB_URL, REDIS_URL)
    log.info("headers {'Authorization': 'Bot %s'}", TOKEN)
    try:
        raise ConnectionError(f"cannot reach {DB_URL} (password pg-secret-42)")
    except ConnectionError:
        log.exception("database down")
    text = stream.getvalue()
    for secret in secrets:
        assert secret not in text
    assert "postgresql+asyncpg://taleweaver:***@postgres:5432/taleweaver" in text
    assert "redis://:***@redis:6379/0" in text


def test_unconfigured_tokens_and_url_passwords_are_hidden_too() -> None:
    redact = SecretRedactor()
    other_token = "NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I"
    text = redact(f"token {other_token} at https://bob:swordfish@example.org/x")
    assert text == "token *** at https://bob:***@example.org/x"


@pytest.mark.parametrize(
    ("url", "password"),
    [
        (DB_URL, "pg-secret-42"),
        (REDIS_URL, "redis-secret-42"),
        ("sqlite+aiosqlite:///taleweaver.db", None),
        ("redis://redis:6379/0", None),
    ],
)
def test_url_password(url: str, password: str | None) -> None:
    assert url_password(url) == password
