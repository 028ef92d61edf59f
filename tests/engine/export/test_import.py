from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.export import ExportFormat, ExportService
from engine.export.importer import StoryImportError, import_story, parse_archive
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import SessionView
from storage.models import SessionStatus

from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD

Story = Callable[..., Awaitable[SessionView]]
Factory = async_sessionmaker[AsyncSession]


async def _json(exports: ExportService, session_id: int) -> dict[str, Any]:
    return json.loads((await exports.export(session_id, ExportFormat.JSON)).data)


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """Drop what an import renews: ids, job ids, the export time and the turn clock."""
    data = copy.deepcopy(data)
    del data["exported_at"]
    for key in ("id", "turn_deadline"):
        del data["session"][key]
    for turn in data["turns"]:
        del turn["job_id"]
    return data


async def test_round_trip_keeps_every_detail(
    exports: ExportService, rich_story: Story, session_factory: Factory
) -> None:
    view = await rich_story()
    original = await _json(exports, view.id)
    imported = await import_story(session_factory, json.dumps(original))
    assert imported.id != view.id
    again = await _json(exports, imported.id)
    assert _content(again) == _content(original)
    assert [t["job_id"] for t in again["turns"]] == [None] * 4


async def test_unfinished_story_round_trips_into_a_free_channel(
    exports: ExportService,
    rich_story: Story,
    session_factory: Factory,
    service: StoryService,
) -> None:
    view = await rich_story(end=False)
    original = await _json(exports, view.id)
    imported = await import_story(session_factory, json.dumps(original), channel_id=555)
    assert imported.status == SessionStatus.ACTIVE
    assert imported.current_player is not None and imported.current_player.user_id == ALICE.user_id
    assert imported.turn_deadline is not None
    again = _content(await _json(exports, imported.id))
    expected = _content(original)
    expected["session"]["channel_id"] = 555
    assert again == expected
    # The imported story plays on: the current player writes, and undo restores the rotation.
    outcome = await service.turns.submit_turn(555, ALICE, "Back at the lamp.")
    assert outcome.turn.number == 5
    undone = await service.turns.undo(555, ALICE)
    assert undone.session.current_player is not None
    assert undone.session.current_player.user_id == ALICE.user_id


async def test_unfinished_story_is_refused_in_a_busy_channel(
    exports: ExportService, rich_story: Story, session_factory: Factory
) -> None:
    view = await rich_story(end=False)
    data = (await exports.export(view.id, ExportFormat.JSON)).data
    with pytest.raises(StoryImportError, match=rf"Channel {CHANNEL} already has .*--channel"):
        await import_story(session_factory, data)


async def test_the_same_file_imports_twice(
    exports: ExportService, rich_story: Story, session_factory: Factory
) -> None:
    view = await rich_story()
    data = (await exports.export(view.id, ExportFormat.JSON)).data
    first = await import_story(session_factory, data)
    second = await import_story(session_factory, data, guild_id=5, channel_id=6)
    assert len({view.id, first.id, second.id}) == 3
    assert (second.guild_id, second.channel_id) == (5, 6)
    assert (
        _content(await _json(exports, first.id))["turns"]
        == _content(await _json(exports, view.id))["turns"]
    )


async def test_server_keeps_its_own_settings_and_a_new_server_adopts_the_files(
    exports: ExportService,
    rich_story: Story,
    session_factory: Factory,
    config_service: GuildConfigService,
) -> None:
    await config_service.update(GUILD, MOD, min_turn_chars=2, default_genre="horror")
    await config_service.update(9, MOD, max_turn_chars=300)
    view = await rich_story()
    data = (await exports.export(view.id, ExportFormat.JSON)).data
    await import_story(session_factory, data, guild_id=8)
    await import_story(session_factory, data, guild_id=9)
    assert await config_service.get(8) == await config_service.get(GUILD)
    kept = await config_service.get(9)
    assert (kept.min_turn_chars, kept.default_genre, kept.max_turn_chars) == (1, "fantasy", 300)


def _minimal() -> dict[str, Any]:
    stamp = "2026-01-01T12:00:00Z"
    return {
        "format": "taleweaver-story",
        "format_version": 1,
        "exported_at": stamp,
        "session": {
            "id": 1,
            "guild_id": 1,
            "channel_id": 100,
            "title": "T",
            "genre": "fantasy",
            "premise": "",
            "authors_note": "",
            "age_restricted": False,
            "status": "ended",
            "host_id": 1,
            "current_player_id": None,
            "turn_count": 1,
            "turn_deadline": None,
            "created_at": stamp,
            "ended_at": stamp,
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
                "text": "Hi.",
                "discord_message_id": None,
                "job_id": None,
                "alternatives": [],
                "created_at": stamp,
                "edited_at": None,
            }
        ],
        "lore": [],
        "summaries": [],
        "table_talk": [],
        "guild_settings": {},
    }


def _break(change: Callable[[dict[str, Any]], object]) -> str:
    data = _minimal()
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[]", "not a Taleweaver story"),
        (_break(lambda d: d.update(format="other")), "not a Taleweaver story"),
        (_break(lambda d: d.update(format_version=2)), "format version 2; this Taleweaver reads"),
        (_break(lambda d: d.pop("format_version")), "format version None"),
        (_break(lambda d: d["session"].pop("title")), r"session\.title: Field required"),
        (
            _break(lambda d: d["turns"][0].update(number="1")),
            r"turns\[0\]\.number: Input should be a valid integer",
        ),
        (
            _break(lambda d: d["turns"][0].update(kind="ghost")),
            r"turns\[0\]\.kind: Input should be 'player' or 'narrator'",
        ),
        (
            _break(lambda d: d["turns"][0].update(created_at="2026-01-01T12:00:00")),
            r"turns\[0\]\.created_at: Input should have timezone info",
        ),
        (_break(lambda d: d["session"].update(titel="x")), r"session\.titel: Extra inputs"),
        (_break(lambda d: d["turns"][0].update(number=2)), "numbers must run 1, 2, 3"),
        (_break(lambda d: d["turns"][0].update(author_id=7)), "7 is not a participant"),
        (_break(lambda d: d["session"].update(genre="opera")), "Unknown genre 'opera'"),
        (
            _break(lambda d: d["participants"].append(dict(d["participants"][0]))),
            "a user appears twice",
        ),
        (
            _break(lambda d: d["guild_settings"].update(max_turn_chars=5)),
            r"guild_settings are invalid: max_turn_chars",
        ),
        (
            _break(lambda d: d["guild_settings"].update(sampling={"temperature": "hot"})),
            r"guild_settings are invalid: Sampling setting 'temperature' must be a number",
        ),
    ],
)
async def test_bad_files_are_refused_with_the_reason(
    session_factory: Factory, service: StoryService, data: str | bytes, message: str
) -> None:
    with pytest.raises(StoryImportError, match=message):
        await import_story(session_factory, data, guild_id=GUILD + 40)
    assert await service.queries.list_sessions() == []


def test_minimal_file_is_valid() -> None:
    archive = parse_archive(json.dumps(_minimal()))
    assert archive.turns[0].text == "Hi."


async def test_imported_minimal_story_lists_and_exports(
    session_factory: Factory, exports: ExportService
) -> None:
    view = await import_story(session_factory, json.dumps(_minimal()), channel_id=BOB.user_id)
    assert view.status == SessionStatus.ENDED and view.turn_count == 1
    text = (await exports.export(view.id, ExportFormat.TEXT)).data.decode()
    assert "Alice:\nHi." in text
