"""What a content check says about one piece of text."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TextKind(enum.StrEnum):
    """Where a piece of text comes from; decides which filters look at it."""

    TURN = "turn"
    TABLE_TALK = "table_talk"
    LORE = "lore"
    TITLE = "title"
    PREMISE = "premise"
    AUTHORS_NOTE = "authors_note"
    NARRATION = "narration"


@dataclass(frozen=True)
class Verdict:
    """Say whether a text may be used and, if not, which rule refused it and why."""

    allowed: bool
    rule: str | None = None
    reason: str = ""
    matched: str | None = None

    @classmethod
    def ok(cls) -> Verdict:
        """Return the verdict of a text that no filter objects to."""
        return _OK

    @classmethod
    def refuse(cls, rule: str, reason: str, matched: str | None = None) -> Verdict:
        """Return a refusal by ``rule`` with a user-facing ``reason``."""
        return cls(allowed=False, rule=rule, reason=reason, matched=matched)


_OK = Verdict(allowed=True)
