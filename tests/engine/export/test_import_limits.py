"""An imported file meets the limits of live play, or is refused in one line with status 2."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from engine.actors import Actor
from engine.export import ExportFormat, ExportService, importer
from engine.export.importer import StoryImportError, import_story, parse_archive
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from storage.database import create_engine, create_session_factory
from storage.models import NarratorCadence

from support.stories import CHANNEL, GUILD, MOD

STAMP = "2026-01-01T12:00:00Z"
BIG = 2**64
MB5 = 5 * 1024 * 1024


def _full() -> dict[str, Any]:
    """A small but complete story file: every kind of text appears once."""
    return {
        "format": "taleweaver-story",
        "format_version": 1,
        "exported_at": STAMP,
        "session": {
            "id": 1,
            "guild_id": 1,
            "channel_id": 100,
            "title": "The Lantern",
            "genre": "fantasy",
            "premise": "A keeper finds a door in the sea.",
            "authors_note": "Keep it eerie.",
            "age_restricted": False,
            "status": "ended",
            "host_id": 1,
            "current_player_id": None,
            "turn_count": 2,
            "turn_deadline": None,
            "created_at": STAMP,
            "ended_at": STAMP,
        },
        "participants": [
            {
                "user_id": 1,
                "display_name": "Alice",
                "join_order": 1,
                "status": "active",
                "consecutive_timeouts": 0,
            }
        ],
        "turns": [
            {
                "number": 1,
                "kind": "player",
                "author_id": 1,
                "author_name": "Alice",
                "text": "I light the lamp.",
                "discord_message_id": 123,
                "job_id": None,
                "alternatives": [],
                "created_at": STAMP,
                "edited_at": None,
            },
            {
                "number": 2,
                "kind": "narrator",
                "author_id": None,
                "author_name": "Narrator",
                "text": "The sea stirs.",
                "discord_message_id": None,
                "job_id": "job-2",
                "alternatives": [{"text": "The tide turns."}],
                "created_at": STAMP,
                "edited_at": None,
            },
        ],
        "lore": [{"name": "Door", "keywords": ["door"], "text": "Opens at dusk.", "created_by": 1}],
        "summaries": [
            {"text": "Alice lit the lamp.", "covers_through_turn": 2, "created_at": STAMP}
        ],
        "table_talk": [
            {
                "author_id": 1,
                "author_name": "Alice",
                "text": "ready",
                "after_turn": 0,
                "created_at": STAMP,
            }
        ],
        "guild_settings": {"custom_genre_instructions": "Be terse.", "moderator_role_id": 5},
    }


def _with(change: Callable[[dict[str, Any]], object]) -> str:
    data = copy.deepcopy(_full())
    change(data)
    return json.dumps(data)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return a change that sets one field, addressed as "turns.1.alternatives.0.text"."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


TEXT_FIELDS = [
    "session.title",
    "session.premise",
    "session.authors_note",
    "participants.0.display_name",
    "turns.0.text",
    "turns.0.author_name",
    "turns.1.text",
    "turns.1.alternatives.0.text",
    "lore.0.name",
    "lore.0.keywords.0",
    "lore.0.text",
    "summaries.0.text",
    "table_talk.0.text",
    "table_talk.0.author_name",
    "guild_settings.custom_genre_instructions",
]


def _location(path: str) -> str:
    out = ""
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def test_the_full_file_is_valid() -> None:
    archive = parse_archive(_with(lambda d: None))
    assert archive.lore[0].keywords == ("door",)


@pytest.mark.parametrize("path", TEXT_FIELDS)
@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["nul", "surrogate"])
def test_unstorable_text_is_refused_in_every_field(path: str, bad: str) -> None:
    with pytest.raises(StoryImportError) as refused:
        parse_archive(_with(_set(path, f"Ab{bad}c")))
    message = str(refused.value)
    assert f"{_location(path)} contains a character that cannot be stored" in message
    assert f"U+{ord(bad):04X} at character 2" in message
    assert bad not in message


def test_a_surrogate_written_as_raw_bytes_is_refused_like_an_escaped_one() -> None:
    data = _with(_set("turns.0.text", "Ab\ud800c")).encode("ascii")
    raw = data.replace(b"\\ud800", b"\xed\xa0\x80")  # UTF-8 bytes of a lone surrogate
    with pytest.raises(StoryImportError, match=r"turns\[0\]\.text contains a character"):
        parse_archive(raw)


def test_unstorable_text_in_a_key_is_refused() -> None:
    with pytest.raises(StoryImportError, match=r"guild_settings: a key contains a character"):
        parse_archive(_with(lambda d: d["guild_settings"].update({"a\x00": 1})))


@pytest.mark.parametrize(
    "path",
    [
        "session.id",
        "session.guild_id",
        "session.channel_id",
        "session.host_id",
        "participants.0.user_id",
        "turns.0.author_id",
        "turns.0.discord_message_id",
        "lore.0.created_by",
        "table_talk.0.author_id",
        "guild_settings.moderator_role_id",
    ],
)
@pytest.mark.parametrize("value", [BIG, 2**63, -(2**63) - 1], ids=["2**64", "2**63", "-2**63-1"])
def test_ids_past_64_bits_are_refused(path: str, value: int) -> None:
    with pytest.raises(StoryImportError, match=re.escape(_location(path))):
        parse_archive(_with(_set(path, value)))


def test_ids_at_the_64_bit_bounds_are_accepted() -> None:
    archive = parse_archive(_with(_set("turns.0.discord_message_id", 2**63 - 1)))
    assert archive.turns[0].discord_message_id == 2**63 - 1


@pytest.mark.parametrize(
    "path",
    [
        "participants.0.join_order",
        "participants.0.consecutive_timeouts",
        "summaries.0.covers_through_turn",
        "table_talk.0.after_turn",
    ],
)
def test_counters_past_32_bits_are_refused(path: str) -> None:
    with pytest.raises(StoryImportError, match=r"at most 2,147,483,647"):
        parse_archive(_with(_set(path, 2**31)))


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("session.title", 200),
        ("session.premise", 2000),
        ("session.authors_note", 500),
        ("participants.0.display_name", 100),
        ("turns.0.text", 4000),
        ("turns.1.text", 4000),
        ("turns.1.alternatives.0.text", 4000),
        ("lore.0.name", 100),
        ("lore.0.keywords.0", 50),
        ("lore.0.text", 1000),
        ("summaries.0.text", 8000),
        ("table_talk.0.text", 2000),
        ("guild_settings.custom_genre_instructions", 1500),
    ],
)
def test_texts_longer_than_live_play_allows_are_refused(path: str, limit: int) -> None:
    parse_archive(_with(_set(path, "x" * limit)))
    with pytest.raises(StoryImportError, match=f"at most ({limit:,}|{limit})\\b"):
        parse_archive(_with(_set(path, "x" * (limit + 1))))


def test_more_lore_keywords_than_live_play_allows_are_refused() -> None:
    keywords = [f"k{i}" for i in range(11)]
    with pytest.raises(StoryImportError, match=r"lore\[0\]\.keywords: 11 entries \(at most 10\)"):
        parse_archive(_with(_set("lore.0.keywords", keywords)))


@pytest.mark.parametrize(
    ("key", "entry"),
    [
        ("turns", lambda d: d["turns"][0]),
        ("lore", lambda d: d["lore"][0]),
        ("summaries", lambda d: d["summaries"][0]),
        ("table_talk", lambda d: d["table_talk"][0]),
        ("participants", lambda d: d["participants"][0]),
    ],
)
def test_lists_longer_than_their_bound_are_refused(
    key: str, entry: Callable[[dict[str, Any]], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(importer.MAX_ENTRIES, key, 2)
    data = _full()
    data[key] = [copy.deepcopy(entry(data)) for _ in range(3)]
    with pytest.raises(StoryImportError, match=rf"{key}: 3 entries \(at most 2\)"):
        parse_archive(json.dumps(data))


def test_alternatives_beyond_their_bound_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "MAX_ALTERNATIVES", 1)
    alternatives = [{"text": "One."}, {"text": "Two."}]
    with pytest.raises(StoryImportError, match=r"turns\[1\]\.alternatives: 2 entries"):
        parse_archive(_with(_set("turns.1.alternatives", alternatives)))


PROSE = (
    "The keeper climbs the stair and trims the wick. Salt wind rattles the glass. "
    "Far below, a bell answers from under the water, slow and patient. "
    "She counts the rings, writes them in the log, and waits for dawn. "
)


def _prose(chars: int) -> str:
    """Return prose of exactly CHARS characters that passes the content filters."""
    return (PROSE * (chars // len(PROSE) + 1))[: chars - 1] + "."


async def test_a_story_at_every_live_limit_exports_and_imports_again(
    service: StoryService,
    config_service: GuildConfigService,
    exports: ExportService,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await config_service.update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, max_turn_chars=4000
    )
    view = await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=CHANNEL,
        actor=Actor(1, "A" * 100),
        title=_prose(200),
        genre="fantasy",
        premise=_prose(2000),
    )
    await service.lifecycle.set_authors_note(CHANNEL, MOD, _prose(500))
    await service.lifecycle.begin(CHANNEL, MOD)
    await service.turns.submit_turn(CHANNEL, Actor(1, "A" * 100), _prose(4000))
    keywords = [f"{i}{_prose(49)}" for i in range(10)]
    await service.lore.add_lore(CHANNEL, MOD, _prose(100), keywords, _prose(1000))
    await service.turns.record_table_talk(CHANNEL, Actor(1, "A"), _prose(5000))
    data = (await exports.export(view.id, ExportFormat.JSON)).data

    imported = await import_story(session_factory, data, channel_id=CHANNEL + 1)

    original = await service.queries.transcript(view.id)
    again = await service.queries.transcript(imported.id)
    assert len(again.turns[0].text) == 4000 and again.turns == original.turns
    assert (again.session.title, again.session.premise, again.session.authors_note) == (
        original.session.title,
        original.session.premise,
        original.session.authors_note,
    )
    assert again.lore == original.lore and len(again.lore[0].keywords) == 10
    assert len(again.table_talk[0].text) == 2000


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deep_nesting_is_refused_without_recursing(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    data = _with(lambda d: None).replace('"guild_settings": {', f'"deep": {nested}, "x": {{', 1)
    with pytest.raises(
        StoryImportError, match=r"nests arrays and objects more than 32 levels deep"
    ):
        parse_archive(data)
    with pytest.raises(
        StoryImportError, match=r"nests arrays and objects more than 32 levels deep"
    ):
        parse_archive("[" * depth)  # not even closed


def test_brackets_inside_texts_do_not_count_as_nesting() -> None:
    text = '[[[{{{"\\"]]]' * 50
    archive = parse_archive(_with(_set("turns.0.text", text)))
    assert archive.turns[0].text == text


def test_a_file_over_the_size_limit_is_refused_before_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _with(lambda d: None).encode()
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", len(data) - 1)
    with pytest.raises(StoryImportError, match=r"larger than"):
        parse_archive(data)


def _sampling(number: str) -> str:
    return _with(_set("guild_settings.sampling", {"temperature": 0.5})).replace("0.5", number)


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("NaN", r"guild_settings\.sampling\.temperature is not a finite number"),
        ("-Infinity", r"guild_settings\.sampling\.temperature is not a finite number"),
        ("1e400", r"guild_settings\.sampling\.temperature is not a finite number"),
        ("9" * 5000, "not valid JSON: it holds a number too long to read"),
    ],
)
def test_numbers_json_allows_but_no_database_stores_are_refused(number: str, message: str) -> None:
    with pytest.raises(StoryImportError, match=message):
        parse_archive(_sampling(number))


@pytest.mark.parametrize("path", ["session.created_at", "turns.0.created_at"])
def test_times_that_do_not_fit_in_utc_are_refused(path: str) -> None:
    with pytest.raises(StoryImportError, match=re.escape(_location(path))):
        parse_archive(_with(_set(path, "0001-01-01T00:00:00+01:00")))


async def test_server_and_channel_overrides_past_64_bits_are_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        factory = create_session_factory(engine)
        with pytest.raises(StoryImportError, match="server id"):
            await import_story(factory, _with(lambda d: None), guild_id=BIG)
        with pytest.raises(StoryImportError, match="channel id"):
            await import_story(factory, _with(lambda d: None), channel_id=-(2**63) - 1)
    finally:
        await engine.dispose()


# Through the command line, on both databases ---------------------------------------------------

CLI_FILES: dict[str, Callable[[], bytes]] = {
    "5MB-premise": lambda: _with(_set("session.premise", "x" * MB5)).encode(),
    "5MB-turn": lambda: _with(_set("turns.0.text", "x" * MB5)).encode(),
    "100000-deep": lambda: ("[" * 100_000 + "]" * 100_000).encode(),
    "100000-deep-inside": lambda: (
        _with(lambda d: None)
        .replace('"guild_settings": {', '"x": ' + "[" * 100_000 + "]" * 100_000 + ', "y": {', 1)
        .encode()
    ),
    "id-2**64": lambda: _with(_set("session.guild_id", BIG)).encode(),
    "nul": lambda: _with(_set("turns.0.text", "a\x00b")).encode(),
    "nul-in-premise": lambda: _with(_set("session.premise", "\x00")).encode(),
    "nul-in-name": lambda: _with(_set("participants.0.display_name", "Al\x00ice")).encode(),
    "surrogate": lambda: _with(_set("lore.0.text", "a\ud800b")).encode(),
    "surrogate-in-table-talk": lambda: _with(_set("table_talk.0.text", "\udfff")).encode(),
}


@pytest.mark.parametrize("case", list(CLI_FILES))
def test_the_import_command_refuses_a_bad_file_in_one_line_with_status_2(
    database_url: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    story = tmp_path / "story.json"
    story.write_bytes(CLI_FILES[case]())
    assert main(["import", str(story), "--database-url", database_url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err[:500]
    assert "Traceback" not in err and len(err) < 600, err[:600]
    assert main(["list", "--database-url", database_url]) == 0
    assert capsys.readouterr().out.strip() == "No stories."


def test_the_import_command_refuses_a_guild_id_past_64_bits(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    story = tmp_path / "story.json"
    story.write_text(_with(lambda d: None))
    argv = ["import", str(story), "--database-url", database_url, "--guild", str(BIG)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "server id" in err and err.count("\n") == 1
    assert main(["import", str(story), "--database-url", database_url]) == 0
    assert "imported 'The Lantern'" in capsys.readouterr().out


def test_the_import_command_reads_no_more_than_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 1000)
    story = tmp_path / "story.json"
    story.write_bytes(b" " * 5000 + _with(lambda d: None).encode())
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    assert main(["import", str(story), "--database-url", url]) == 2
    assert "larger than" in capsys.readouterr().err
