"""Flood and spam filters: repeated characters, repeated words, emoji walls, zalgo text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from engine.safety.characters import is_droppable_mark
from engine.safety.filters import STORY_KINDS, FilterContext
from engine.safety.verdict import Verdict

# The longest group of characters whose repetition counts as one run ("ha" in
# "hahaha", "lol " in "lol lol lol").
MAX_UNIT_CHARS = 4


@dataclass(frozen=True)
class FloodLimits:
    """A server's limits on repetition; text over any of them is refused."""

    max_repeated_characters: int = 12
    max_repeated_words: int = 5
    max_emoji: int = 6
    max_combining_marks: int = 4


_WORD = re.compile(r"\w+")
# A group of exactly n characters followed by itself once or more, for n = 1 to 4.
_REPEATED_UNITS = tuple(
    (size, re.compile(rf"((?s:.{{{size}}}))\1+")) for size in range(1, MAX_UNIT_CHARS + 1)
)
# Emoji presentation selectors, skin tones and the zero-width joiner belong to the
# emoji before them: they never count as emoji of their own.
_EMOJI_MODIFIERS = frozenset({0xFE0E, 0xFE0F, 0x200D, *range(0x1F3FB, 0x1F400)})
_REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)


def is_emoji(char: str) -> bool:
    """Return whether ``char`` is in one of the blocks of pictographs shown as emoji.

    Symbols elsewhere ("™", "↩", "▶") are emoji only when an emoji presentation
    selector follows them (see ``count_emoji``); other symbols, such as box drawing or
    the replacement character of broken text, are not.
    """
    code = ord(char)
    if code in _EMOJI_MODIFIERS:
        return False
    return 0x1F000 <= code <= 0x1FAFF or 0x2600 <= code <= 0x27BF or 0x2B00 <= code <= 0x2BFF


def count_emoji(text: str) -> int:
    """Count emoji as people see them: a joined sequence or a flag counts once."""
    count = 0
    flags = 0
    previous = ""
    for index, char in enumerate(text):
        if ord(char) in _REGIONAL_INDICATORS:
            flags += 1
        elif previous != "\u200d" and (
            is_emoji(char) or (text[index + 1 : index + 2] == "\ufe0f" and char != "\u200d")
        ):
            count += 1
        previous = char
    return count + (flags + 1) // 2


def longest_repeat(text: str) -> tuple[str, int]:
    """Return the unit (1 to 4 characters) repeated most often in a row, and how often.

    Case is ignored; a unit made of white space only is not counted (line breaks are
    MarkupFilter's business). ``("", 0)`` when nothing is repeated.
    """
    folded = text.casefold()
    best, best_count = "", 0
    for size, pattern in _REPEATED_UNITS:
        for match in pattern.finditer(folded):
            unit = match.group(1)
            if not unit.strip():
                continue
            count = len(match.group()) // size
            if count > best_count:
                best, best_count = unit, count
    return best, best_count


def longest_word_repeat(text: str) -> tuple[str, int]:
    """Return the word repeated most often in a row (punctuation between ignored), and how often."""
    best, best_count = "", 0
    previous, count = "", 0
    for word in _WORD.findall(text.casefold()):
        count = count + 1 if word == previous else 1
        previous = word
        if count > best_count:
            best, best_count = word, count
    return best, best_count


def most_marks_on_one_character(text: str) -> int:
    """Return the most decorative combining marks stacked on one character."""
    most = run = 0
    for char in unicodedata.normalize("NFD", text):
        if is_droppable_mark(char) or unicodedata.category(char) == "Me":
            run += 1
            most = max(most, run)
        else:
            run = 0
    return most


def _shown(unit: str) -> str:
    return unit.strip() or repr(unit)


class RepeatedWordFilter:
    """Refuse the same word written over and over."""

    rule = "repeated_words"
    kinds = STORY_KINDS

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse a word repeated in a row more often than the limit."""
        word, count = longest_word_repeat(context.normalized)
        if count <= self.limit:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f'"{word}" is repeated {count} times in a row; this server allows at most '
            f"{self.limit}: please write it out as a sentence.",
            matched=f"{word} x{count}",
        )


class RepeatedCharacterFilter:
    """Refuse one character (or a short group, such as "ha") repeated far too often."""

    rule = "repeated_characters"
    kinds = STORY_KINDS

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse a character or group of up to four repeated in a row more than the limit."""
        unit, count = longest_repeat(context.normalized)
        if count <= self.limit:
            return Verdict.ok()
        shown = _shown(unit)
        return Verdict.refuse(
            self.rule,
            f'"{shown}" is repeated {count} times in a row; this server allows at most '
            f"{self.limit}: please shorten it.",
            matched=f"{shown} x{count}",
        )


class EmojiFloodFilter:
    """Refuse more emoji than the server allows in one text."""

    rule = "emoji_flood"
    kinds = STORY_KINDS

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text with more emoji than the limit."""
        count = count_emoji(context.text)
        if count <= self.limit:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f"This has {count} emoji and this server allows at most {self.limit} "
            "in one message: please keep a few and write the rest in words.",
            matched=f"{count} emoji",
        )


class CombiningMarkFilter:
    """Refuse "zalgo" text: letters buried under stacks of combining marks."""

    rule = "combining_marks"
    kinds = STORY_KINDS

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse a character carrying more combining marks than the limit."""
        most = most_marks_on_one_character(context.text)
        if most <= self.limit:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f"One letter here carries {most} accents or combining marks (zalgo text) and "
            f"this server allows at most {self.limit}: please send it as plain text.",
            matched=f"{most} marks on one character",
        )


def flood_filters(
    limits: FloodLimits,
) -> tuple[CombiningMarkFilter, RepeatedWordFilter, RepeatedCharacterFilter, EmojiFloodFilter]:
    """Return the flood filters for a server's limits, in the order they run."""
    return (
        CombiningMarkFilter(limits.max_combining_marks),
        RepeatedWordFilter(limits.max_repeated_words),
        RepeatedCharacterFilter(limits.max_repeated_characters),
        EmojiFloodFilter(limits.max_emoji),
    )
