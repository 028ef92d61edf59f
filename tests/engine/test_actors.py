"""Display names as front-ends hand them over: never refused, always storable."""

from __future__ import annotations

import pytest

from engine.actors import MAX_DISPLAY_NAME_CHARS, Actor


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Mira", "Mira"),
        ("Mi\x00ra", "Mira"),
        ("Mi\ud800ra", "Mira"),
        ("\ud83d\ude00 Mira", " Mira"),
        ("M\u00efra \U0001f409", "M\u00efra \U0001f409"),
        ("\x00", "Player 7"),
        ("  \ud800 ", "Player 7"),
        ("", "Player 7"),
    ],
)
def test_unstorable_characters_are_removed_from_a_display_name(given: str, kept: str) -> None:
    assert Actor(7, given).display_name == kept


def test_a_display_name_is_cut_to_what_the_story_stores() -> None:
    actor = Actor(7, "x" * 500, is_moderator=True)
    assert actor.display_name == "x" * MAX_DISPLAY_NAME_CHARS
    assert actor.is_moderator and actor.user_id == 7
