"""Decide where a narrator continuation ends: plain text rules, no torch needed."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

log = logging.getLogger(__name__)

DEFAULT_MARKERS: tuple[str, ...] = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "User:",
    "Assistant:",
)

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# A line such as "Mira:" or "**Old Tom**:" that opens a script-style dialogue turn.
_SPEAKER_LINE = re.compile(
    r"^[ \t*_]*(?P<name>[A-Z][\w'\u2019-]*(?:[ \t]+[A-Z][\w'\u2019-]*){0,2})[ \t*_]*:(?=\s|$)",
    re.MULTILINE,
)
# A sentence ends in . ! ? or …, optionally followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]*_]*(?=\s|$)")


def paragraph_stop_index(text: str, max_paragraphs: int) -> int | None:
    """Return where the blank line after paragraph ``max_paragraphs`` starts, if written yet."""
    paragraphs = 0
    previous_end = 0
    for separator in _BLANK_LINE.finditer(text):
        if text[previous_end : separator.start()].strip():
            paragraphs += 1
            if paragraphs >= max_paragraphs:
                return separator.start()
        previous_end = separator.end()
    return None


def sentence_stop_index(text: str, max_sentences: int) -> int | None:
    """Return where sentence ``max_sentences`` ends, once the text goes on after it."""
    count = 0
    for match in _SENTENCE_END.finditer(text):
        count += 1
        if count >= max_sentences and text[match.end() :].strip():
            return match.end()
    return None


def marker_stop_index(text: str, markers: Iterable[str]) -> int | None:
    """Return the position of the earliest chat-template or role marker in ``text``."""
    positions = [index for marker in markers if marker and (index := text.find(marker)) >= 0]
    return min(positions, default=None)


def trim_to_last_sentence(text: str) -> str:
    """Drop a trailing incomplete sentence; keep ``text`` unchanged if it has no full one."""
    last_end = None
    for match in _SENTENCE_END.finditer(text):
        last_end = match.end()
    if last_end is None:
        return text
    return text[:last_end]


@dataclass(frozen=True)
class StopPolicy:
    """Say when a narrator continuation is complete and how to clean it up."""

    max_paragraphs: int = 2
    max_sentences: int | None = None
    player_names: tuple[str, ...] = ()
    markers: tuple[str, ...] = DEFAULT_MARKERS
    # Any "Name:" line (not only a known player's) starts a dialogue script the
    # narrator should not write; the narrator's own label is exempt.
    stop_at_any_speaker: bool = True
    narrator_label: str = "Narrator"

    def __post_init__(self) -> None:
        if self.max_paragraphs < 1:
            raise ValueError("max_paragraphs must be at least 1")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")

    @cached_property
    def _player_line(self) -> re.Pattern[str] | None:
        names = [re.escape(name.strip()) for name in self.player_names if name.strip()]
        if not names:
            return None
        alternatives = "|".join(sorted(names, key=len, reverse=True))
        return re.compile(rf"^[ \t*_@]*(?:{alternatives})[ \t*_]*:", re.MULTILINE | re.IGNORECASE)

    def _speaker_stop_index(self, text: str) -> int | None:
        positions: list[int] = []
        if self._player_line is not None and (match := self._player_line.search(text)):
            positions.append(match.start())
        if self.stop_at_any_speaker:
            narrator = self.narrator_label.casefold()
            for match in _SPEAKER_LINE.finditer(text):
                if match.group("name").casefold() != narrator:
                    positions.append(match.start())
                    break
        return min(positions, default=None)

    def stop_index(self, text: str) -> int | None:
        """Return where the continuation should be cut, or None while it may go on."""
        candidates = [
            paragraph_stop_index(text, self.max_paragraphs),
            None if self.max_sentences is None else sentence_stop_index(text, self.max_sentences),
            marker_stop_index(text, self.markers),
            self._speaker_stop_index(text),
        ]
        return min((index for index in candidates if index is not None), default=None)

    def should_stop(self, text: str) -> bool:
        """Return whether generation can stop because ``text`` reached a stop point."""
        return self.stop_index(text) is not None

    def visible_text(self, text: str) -> str:
        """Return ``text`` cut at the stop point, without the narrator label, stripped."""
        index = self.stop_index(text)
        if index is not None:
            text = text[:index]
        return self._drop_narrator_label(text.strip()).strip()

    def finalize(self, text: str) -> str:
        """Return the finished continuation: cut, stripped and trimmed to a full sentence."""
        return trim_to_last_sentence(self.visible_text(text)).strip()

    def _drop_narrator_label(self, text: str) -> str:
        label = self.narrator_label
        if label and text[: len(label) + 1].casefold() == f"{label}:".casefold():
            return text[len(label) + 1 :]
        return text
