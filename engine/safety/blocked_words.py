"""Moderators' blocked-word entries: what is accepted and how it is stored."""

from __future__ import annotations

import unicodedata

from engine.errors import InvalidSetting
from engine.safety.word_matching import compile_term

MAX_BLOCKED_WORD_CHARS = 100


def validate_blocked_word(word: str) -> str:
    """Return the stored form of a blocked word, or raise InvalidSetting saying what is wrong.

    The stored form is the word with surrounding whitespace removed and inner runs of
    whitespace made one space; case is kept for display (matching ignores it). A
    trailing ``*`` blocks every word that starts with the rest ("gobl*").
    """
    stripped = word.strip()
    if not stripped:
        raise InvalidSetting("A blocked word cannot be empty.")
    if any(
        unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        for char in stripped
        if char != " "
    ) or any(char in "\t\n\r" for char in stripped):
        raise InvalidSetting(
            "A blocked word cannot contain line breaks, tabs or invisible control characters."
        )
    stored = " ".join(stripped.split())
    if len(stored) > MAX_BLOCKED_WORD_CHARS:
        raise InvalidSetting(
            f"A blocked word can be at most {MAX_BLOCKED_WORD_CHARS} characters long "
            f"(this one has {len(stored)})."
        )
    if compile_term(stored) is None:
        raise InvalidSetting("A blocked word needs at least one letter or digit.")
    return stored
