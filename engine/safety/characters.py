"""Unicode facts the filters rely on: word characters, scripts, invisible characters."""

from __future__ import annotations

import unicodedata

# Scripts written without spaces between words (or, for Hangul, with particles glued
# to the word): whole-word matching would miss nearly everything, so terms in them
# are matched as substrings.
_SPACELESS_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3005, 0x3007),  # CJK iteration and number marks
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK extensions B-G
)

# Combining marks that are letters in their own right (abugida vowel signs, kana
# voicing marks): dropping them would merge different words, so they are kept.
_ESSENTIAL_MARK_RANGES = (
    (0x0900, 0x0DFF),  # Devanagari to Sinhala
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3099, 0x309A),  # kana voiced and semi-voiced sound marks
)

# Characters that render as nothing (or as a blank) but are not format characters
# (category Cf, which are all treated as invisible): Hangul fillers, the Braille blank.
_INVISIBLE_EXTRA = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800})

_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _in_ranges(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def is_word_char(char: str) -> bool:
    """Return whether ``char`` is part of a word: a letter, a combining mark or a digit."""
    if char.isascii():
        return char.isalnum()
    return unicodedata.category(char)[0] in "LMN"


def is_spaceless_char(char: str) -> bool:
    """Return whether ``char`` belongs to a script that does not separate words by spaces."""
    return _in_ranges(ord(char), _SPACELESS_RANGES)


def is_invisible(char: str) -> bool:
    """Return whether ``char`` is a zero-width or format character that hides in text."""
    return unicodedata.category(char) == "Cf" or ord(char) in _INVISIBLE_EXTRA


def is_droppable_mark(char: str) -> bool:
    """Return whether ``char`` is a decorative combining mark (an accent, Zalgo noise)."""
    return unicodedata.category(char) == "Mn" and not _in_ranges(ord(char), _ESSENTIAL_MARK_RANGES)


def script_of(char: str) -> str | None:
    """Return "latin", "cyrillic" or "greek" for letters of those scripts, else None."""
    if char.isascii():
        return "latin" if char.isalpha() else None
    first = unicodedata.name(char, "").split(" ", 1)[0]
    return first.lower() if first in _SCRIPTS else None
