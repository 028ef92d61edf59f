"""What a plain message in a story channel is: a turn, table talk, out of turn, or chatter."""

from __future__ import annotations

import enum

from engine.story.views import SessionView

TABLE_TALK_MARKERS = ("((", "//")


class MessageRole(enum.Enum):
    """How the bot treats a message in a channel."""

    IGNORE = "ignore"  # no active story, or not a player in it
    OUT_OF_TURN = (
        "out_of_turn"  # a player writing while someone else (or the narrator) has the turn
    )
    TURN = "turn"  # the current player's turn


def is_table_talk(text: str) -> bool:
    """Tell whether a message is out-of-character table talk: it starts with (( or //."""
    return text.lstrip().startswith(TABLE_TALK_MARKERS)


def table_talk_text(text: str) -> str:
    """Return table talk without its markers: ``((brb))`` becomes ``brb``."""
    text = text.strip()
    for marker in TABLE_TALK_MARKERS:
        if text.startswith(marker):
            text = text[len(marker) :]
            break
    if text.endswith("))"):
        text = text[:-2]
    return text.strip()


def classify_message(view: SessionView | None, user_id: int) -> MessageRole:
    """Decide what a (non table talk) message by USER_ID is in a channel showing VIEW."""
    if view is None or view.status != "active":
        return MessageRole.IGNORE
    if not any(p.user_id == user_id for p in view.rotation):
        return MessageRole.IGNORE
    current = view.current_player
    if view.narrator_pending or view.voting or current is None or current.user_id != user_id:
        return MessageRole.OUT_OF_TURN
    return MessageRole.TURN
