from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from engine.actors import Actor
from engine.errors import PermissionDenied, SessionNotFound
from engine.export import ExportFormat, ExportOptions, ExportService, StoryChoice
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import SessionView
from storage.models import SessionStatus

from support.stories import ALICE, BOB, CARA, CHANNEL, DAN, GUILD, MOD

Story = Callable[..., Awaitable[SessionView]]
OTHER_GUILD = 2


@pytest.mark.parametrize(
    ("fmt", "filename", "media_type", "start"),
    [
        (ExportFormat.MARKDOWN, "the-lantern.md", "text/markdown; charset=utf-8", b"# The"),
        (ExportFormat.TEXT, "the-lantern.txt", "text/plain; charset=utf-8", b"The Lantern\n"),
        (ExportFormat.HTML, "the-lantern.html", "text/html; charset=utf-8", b"<!DOCTYPE"),
        (ExportFormat.EPUB, "the-lantern.epub", "application/epub+zip", b"PK\x03\x04"),
        (ExportFormat.JSON, "the-lantern.json", "application/json", b"{"),
    ],
)
async def test_every_format_exports_a_named_file(
    exports: ExportService,
    rich_story: Story,
    fmt: ExportFormat,
    filename: str,
    media_type: str,
    start: bytes,
) -> None:
    view = await rich_story()
    file = await exports.export(view.id, fmt)
    assert (file.filename, file.media_type) == (filename, media_type)
    assert file.data.startswith(start)


async def test_json_export_holds_everything(
    exports: ExportService, rich_story: Story, config_service: GuildConfigService
) -> None:
    view = await rich_story()
    data = json.loads((await exports.export(view.id, ExportFormat.JSON)).data)
    assert data["format"] == "taleweaver-story" and data["format_version"] == 1
    session = data["session"]
    assert (session["id"], session["guild_id"], session["channel_id"]) == (view.id, GUILD, CHANNEL)
    assert session["status"] == "ended" and session["ended_at"] is not None
    assert session["authors_note"] == "Keep it eerie."
    assert [(p["display_name"], p["status"]) for p in data["participants"]] == [
        ("Alice", "active"),
        ("Bob", "active"),
        ("Cara", "left"),
    ]
    turns = data["turns"]
    assert [(t["number"], t["kind"], t["author_name"]) for t in turns] == [
        (1, "player", "Alice"),
        (2, "narrator", "Narrator"),
        (3, "player", "Bob"),
        (4, "narrator", "Narrator"),
    ]
    assert turns[1]["text"] == "Version two."
    assert turns[1]["alternatives"] == [{"text": "Version one."}]
    assert turns[2]["edited_at"] is not None and turns[0]["edited_at"] is None
    assert turns[0]["author_id"] == ALICE.user_id and turns[1]["author_id"] is None
    assert all(t["created_at"].endswith("Z") for t in turns)
    assert data["lore"] == [
        {
            "name": "The Door",
            "keywords": ["door", "sea door"],
            "text": "Opens at dusk.",
            "created_by": ALICE.user_id,
        }
    ]
    assert [(s["text"], s["covers_through_turn"]) for s in data["summaries"]] == [
        ("Alice lit the lamp; Bob opened it.", 4)
    ]
    assert [(r["author_name"], r["after_turn"]) for r in data["table_talk"]] == [
        ("Alice", 0),
        ("Bob", 3),
    ]
    expected_settings = (await config_service.get(GUILD)).model_dump(mode="json")
    assert data["guild_settings"] == expected_settings


async def test_reading_formats_include_table_talk_and_versions_only_when_asked(
    exports: ExportService, rich_story: Story
) -> None:
    view = await rich_story()
    plain = (await exports.export(view.id, ExportFormat.MARKDOWN)).data.decode()
    full = (
        await exports.export(
            view.id,
            ExportFormat.MARKDOWN,
            ExportOptions(include_table_talk=True, include_alternatives=True),
        )
    ).data.decode()
    for extra in ("brb, tea", "ready when you are", "Version one."):
        assert extra not in plain and extra in full
    assert "Version two." in plain
    assert "**Bob:** *(edited)* I open the sea door." in plain
    assert "Begun" in plain and "finished" in plain


async def test_story_in_progress_exports_as_unfinished(
    exports: ExportService, rich_story: Story
) -> None:
    view = await rich_story(end=False)
    page = (await exports.export(view.id, ExportFormat.HTML)).data.decode()
    assert "still being written" in page
    data = json.loads((await exports.export(view.id, ExportFormat.JSON)).data)
    assert data["session"]["status"] == "active"
    assert data["session"]["current_player_id"] == ALICE.user_id


@pytest.mark.parametrize(
    "actor",
    [ALICE, BOB, CARA, MOD, Actor(50, "Role mod", role_ids=frozenset({777}))],
    ids=["host", "player", "player-who-left", "moderator", "moderator-role"],
)
async def test_players_host_and_moderators_may_export(
    exports: ExportService,
    rich_story: Story,
    config_service: GuildConfigService,
    actor: Actor,
) -> None:
    await config_service.update(GUILD, MOD, moderator_role_id=777)
    view = await rich_story()
    file = await exports.export(view.id, ExportFormat.TEXT, actor=actor, guild_id=GUILD)
    assert b"The Lantern" in file.data


async def test_strangers_may_not_export(exports: ExportService, rich_story: Story) -> None:
    view = await rich_story()
    with pytest.raises(PermissionDenied, match="players, its host or a moderator"):
        await exports.export(view.id, ExportFormat.TEXT, actor=DAN, guild_id=GUILD)


@pytest.mark.parametrize("guild_id", [OTHER_GUILD, None])
async def test_other_servers_cannot_tell_a_story_exists(
    exports: ExportService, rich_story: Story, guild_id: int | None
) -> None:
    view = await rich_story()
    with pytest.raises(SessionNotFound) as elsewhere:
        await exports.export(view.id, ExportFormat.TEXT, actor=MOD, guild_id=guild_id)
    with pytest.raises(SessionNotFound) as missing:
        await exports.export(view.id + 1000, ExportFormat.TEXT, actor=MOD, guild_id=guild_id)
    assert str(elsewhere.value) == str(missing.value).replace(str(view.id + 1000), str(view.id))


async def test_operator_may_export_any_story(exports: ExportService, rich_story: Story) -> None:
    view = await rich_story()
    assert (await exports.export(view.id, ExportFormat.TEXT)).data


async def _start(
    service: StoryService, host: Actor, title: str, channel: int, guild: int = GUILD
) -> SessionView:
    return await service.lifecycle.start(
        guild_id=guild, channel_id=channel, actor=host, title=title, genre="fantasy"
    )


async def test_find_lists_exportable_stories_matching_the_query_newest_first(
    exports: ExportService, service: StoryService
) -> None:
    lantern = await _start(service, ALICE, "The Lantern", 101)
    await service.lifecycle.end(101, ALICE)
    storm = await _start(service, ALICE, "LANTERN in the storm", 102)
    await service.lifecycle.join(102, BOB)
    bobs = await _start(service, BOB, "Bob's lantern", 103)
    await _start(service, ALICE, "The Lantern abroad", 104, guild=OTHER_GUILD)
    await _start(service, ALICE, "Unrelated", 105)

    found = await exports.find(GUILD, ALICE, "lantern")
    assert [c.session_id for c in found] == [storm.id, lantern.id]
    assert found[1] == StoryChoice(
        lantern.id, "The Lantern", SessionStatus.ENDED, lantern.created_at
    )

    by_bob = await exports.find(GUILD, BOB, "Lantern")
    assert [c.session_id for c in by_bob] == [bobs.id, storm.id]
    assert [c.session_id for c in await exports.find(GUILD, MOD, "lantern", limit=2)] == [
        bobs.id,
        storm.id,
    ]
    assert len(await exports.find(GUILD, MOD)) == 4
    assert await exports.find(GUILD, DAN) == []
    assert await exports.find(GUILD, ALICE, "no such title") == []
