from __future__ import annotations

import re
from types import SimpleNamespace

import discord

from bot.discord.components import (
    DYNAMIC_ITEMS,
    MAX_VERSION_OPTIONS,
    RetryButton,
    UndoButton,
    VersionSelect,
    VoteButton,
    narrator_view,
    retry_id,
    undo_id,
    version_id,
    version_options,
    vote_id,
)


def template(item: type[discord.ui.DynamicItem]) -> re.Pattern[str]:  # type: ignore[type-arg]
    return item.__discord_ui_compiled_template__


def test_custom_ids_match_their_templates_and_fit_discord() -> None:
    big = 2**63 - 1
    for item, custom_id in [
        (RetryButton, retry_id(big, 99999)),
        (UndoButton, undo_id(big, 99999)),
        (VersionSelect, version_id(big, 99999)),
        (VoteButton, vote_id(big, 99999, 2)),
    ]:
        match = template(item).fullmatch(custom_id)
        assert match is not None and int(match["session"]) == big
        assert len(custom_id) <= 100


def test_templates_do_not_overlap() -> None:
    examples = {
        RetryButton: retry_id(1, 2),
        UndoButton: undo_id(1, 2),
        VersionSelect: version_id(1, 2),
        VoteButton: vote_id(1, 2, 0),
    }
    for item in DYNAMIC_ITEMS:
        others = [other for other in DYNAMIC_ITEMS if other is not item]
        custom_id = examples[item]
        assert not any(template(other).fullmatch(custom_id) for other in others)


def test_passage_controls_without_alternatives(fake: SimpleNamespace) -> None:
    view = narrator_view(7, fake.narrator_turn(4))
    assert view.timeout is None
    ids = [child["custom_id"] for row in view.to_components() for child in row["components"]]
    assert ids == ["tw:retry:7:4", "tw:undo:7:4"]


def test_passage_controls_offer_earlier_versions(fake: SimpleNamespace) -> None:
    view = narrator_view(7, fake.narrator_turn(4, alternatives=("First try.", "Second try.")))
    rows = view.to_components()
    select = rows[1]["components"][0]
    assert select["custom_id"] == "tw:version:7:4"
    assert [o["value"] for o in select["options"]] == ["0", "1"]
    assert select["options"][0]["label"].startswith("1. First try")


def test_version_options_keep_the_newest_when_there_are_too_many() -> None:
    options = version_options([f"version {i}" for i in range(40)])
    assert len(options) == MAX_VERSION_OPTIONS
    assert options[-1].value == "39" and options[0].value == str(40 - MAX_VERSION_OPTIONS)
    assert all(len(o.label) <= 100 for o in version_options(["word " * 100]))


async def test_buttons_are_rebuilt_from_their_custom_id() -> None:
    match = template(RetryButton).fullmatch("tw:retry:12:34")
    assert match is not None
    item = await RetryButton.from_custom_id(None, None, match)  # type: ignore[arg-type]
    assert (item.session_id, item.number) == (12, 34)
    assert item.custom_id == "tw:retry:12:34"


async def test_version_menu_keeps_the_options_of_the_message() -> None:
    shown = discord.ui.Select(
        custom_id="tw:version:3:9", options=[discord.SelectOption(label="1. a", value="0")]
    )
    match = template(VersionSelect).fullmatch("tw:version:3:9")
    assert match is not None
    item = await VersionSelect.from_custom_id(None, shown, match)  # type: ignore[arg-type]
    assert item.item is shown and (item.session_id, item.number) == (3, 9)
