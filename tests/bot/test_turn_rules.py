from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.discord.turn_rules import MessageRole, classify_message, is_table_talk, table_talk_text
from storage.models import ParticipantStatus, SessionStatus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("((brb, pizza))", True),
        ("  // out of character", True),
        ("(just a parenthesis)", False),
        ("Mira opens the door.", False),
        ("http://example.com", False),
    ],
)
def test_table_talk_markers(text: str, expected: bool) -> None:
    assert is_table_talk(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("((brb))", "brb"), ("// back soon", "back soon"), ("(( ok", "ok")],
)
def test_table_talk_text_drops_markers(text: str, expected: str) -> None:
    assert table_talk_text(text) == expected


def test_no_story_means_ignore(fake: SimpleNamespace) -> None:
    assert classify_message(None, 1) is MessageRole.IGNORE


def test_current_player_writes_a_turn(fake: SimpleNamespace) -> None:
    assert classify_message(fake.session_view(current=1), 1) is MessageRole.TURN


def test_other_player_is_out_of_turn(fake: SimpleNamespace) -> None:
    assert classify_message(fake.session_view(current=1), 2) is MessageRole.OUT_OF_TURN


def test_current_player_waits_while_the_narrator_writes(fake: SimpleNamespace) -> None:
    view = fake.session_view(current=1, narrator_job_id="job")
    assert classify_message(view, 1) is MessageRole.OUT_OF_TURN


def test_non_player_is_ignored(fake: SimpleNamespace) -> None:
    assert classify_message(fake.session_view(current=1), 55) is MessageRole.IGNORE


def test_away_player_is_ignored(fake: SimpleNamespace) -> None:
    players = (
        fake.participant(1, 1, "Alice"),
        fake.participant(2, 2, "Bob", ParticipantStatus.AWAY),
    )
    assert classify_message(fake.session_view(players=players, current=1), 2) is (
        MessageRole.IGNORE
    )


@pytest.mark.parametrize("status", [SessionStatus.LOBBY, SessionStatus.PAUSED])
def test_messages_outside_active_play_are_chatter(
    fake: SimpleNamespace, status: SessionStatus
) -> None:
    assert classify_message(fake.session_view(status=status), 1) is MessageRole.IGNORE
