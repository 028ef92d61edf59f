from __future__ import annotations

import pytest

from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.worker.rerank.passage_checks import (
    Scene,
    check_passage,
    summarise_checks,
    talks_about_the_game_or_lists,
)

LIGHTHOUSE = StoryContext(
    title="The Keeper's Log",
    genre_key="mystery",
    genre_instructions="",
    premise=(
        "Three strangers shelter from a storm in a lighthouse on Gull Rock. The keeper is "
        "missing, his lamp is still burning, and his logbook ends mid-sentence."
    ),
    player_names=("Mira", "Tobin", "Esra"),
    summary="",
    lore=(
        LoreEntryView(
            "The logbook", ("log", "logbook"), "A leather logbook whose last entry ends mid-word."
        ),
    ),
    authors_note="",
    recent_turns=(
        ContextTurn(
            1, "Mira", False, "Mira wiped the salt from the window and counted the lights."
        ),
        ContextTurn(2, "Tobin", False, "Tobin turned the logbook toward the lamp and read aloud."),
        ContextTurn(3, "Narrator", True, "The wind worried at the glass like a dog at a door."),
    ),
    next_player="Esra",
)
SCENE = Scene.of(LIGHTHOUSE)
GOOD = (
    "The wind howled against the glass. Somewhere below, a door banged, and the lamp above "
    "them flickered once, as if it had heard the keeper's name. Mira stepped back."
)


def test_a_passage_that_acts_on_the_scene_is_usable() -> None:
    check = check_passage(GOOD, SCENE)

    assert check.usable
    assert check.faults == ()
    assert "mira" in check.scene_names
    assert {"lamp", "glass"} <= set(check.scene_words)


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        (
            "In his humble home in Rome, a young man named Joe Lennon lived alone with a cat.",
            "off_scene",
        ),
        (
            "Amar and Avery climbed the stairs to the lamp room where the logbook lay open.",
            "invented_name",
        ),
        (
            "I am not ready to continue until the next user enters the lighthouse tonight, Mira.",
            "meta_talk",
        ),
        (
            "(2) The scene opens on the lighthouse, where Mira and Tobin read the logbook.",
            "list",
        ),
        (
            "- Mira reads the logbook.\n- Tobin holds the lamp.\n- The wind howls outside.",
            "list",
        ),
        ("(silence)", "too_short"),
        ("The lamp flickered.", "too_short"),
        ("", "too_short"),
        (
            "The lamp the lamp the lamp the lamp the lamp the lamp the lamp the lamp the lamp.",
            "repetitive",
        ),
        (
            "Tobin turned the logbook toward the lamp and read aloud. Mira wiped the salt from the "
            "window and counted the lights.",
            "repetitive",
        ),
        (
            "The wind worried at the glass like a dog at a door, and Mira held the logbook tight "
            "against the lamp.",
            "repetitive",
        ),
    ],
    ids=[
        "off scene",
        "invented names",
        "talks about the game",
        "numbering",
        "bullet list",
        "filler",
        "fragment",
        "empty",
        "repeats itself",
        "copies the players",
        "repeats an earlier passage",
    ],
)
def test_each_rule_a_bad_passage_breaks_is_named(text: str, fault: str) -> None:
    assert fault in check_passage(text, SCENE).faults


@pytest.mark.parametrize(
    "text",
    [
        "Slowly, Mira turned the logbook over. Suddenly the lamp went out and the walls shook.",
        "Esra took the turn of the stair two steps at a time, calling the keeper into the storm.",
        "The Keeper's logbook lay open on the table, and the lamp on Gull Rock burned on.",
    ],
    ids=["sentence openers", "turn as a word", "names from premise and title"],
)
def test_ordinary_words_and_known_names_are_not_counted_as_invented(text: str) -> None:
    check = check_passage(text, SCENE)

    assert check.invented_names == ()
    assert check.meta_talk == ()


def test_junk_is_only_what_no_player_should_see() -> None:
    assert check_passage("(silence)", SCENE).junk
    assert check_passage("The story continues as the players wait for their turn.", SCENE).junk
    # Off-scene or an invented name is a worse passage, not junk: the reranker decides.
    assert not check_passage(
        "Amar and Avery climbed the stairs to the lamp room at last.", SCENE
    ).junk


def test_short_requests_lower_the_fragment_threshold() -> None:
    short = Scene.of(LIGHTHOUSE, max_new_tokens=16)

    assert not check_passage("Mira lit the lamp again.", short).too_short
    assert check_passage("Mira lit the lamp again.", SCENE).too_short


def test_unfinished_text_with_a_list_or_meta_talk_is_recognised_early() -> None:
    assert talks_about_the_game_or_lists("1. The lamp")
    assert talks_about_the_game_or_lists("It is your turn now")
    assert not talks_about_the_game_or_lists("The lamp flickered and Mira")


def test_summary_reports_rates_over_all_passages() -> None:
    checks = [check_passage(GOOD, SCENE), check_passage("(silence)", SCENE)]

    rates = summarise_checks(checks)

    assert rates["passages"] == 2
    assert rates["usable"] == 0.5
    assert rates["too_short"] == 0.5
    assert rates["empty"] == 0.0
