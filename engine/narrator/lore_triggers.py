"""Pick the lore entries whose keywords appear in the story's recent text.

Matching rules:

* Text and keywords are compared after NFKC normalisation and case folding (so
  ``STRASSE`` finds ``Straße``, a decomposed ``é`` finds a composed one, and a
  Greek final sigma finds a medial one); runs of whitespace count as one space and
  typographic apostrophes as ``'``. Accents still matter: ``cafe`` does not find ``café``.
* A keyword matches only as a whole word or phrase: the characters just outside it
  must not continue a word (letters, marks, digits or ``_`` of any script). Multi-word
  keywords are phrases. Punctuation around a keyword does not prevent a match.
* Scripts written without spaces between words (Chinese, Japanese, Korean, Thai, Lao,
  Khmer, Myanmar) have no word boundaries to check, so there a keyword matches as a
  plain substring.
* Only the keywords count; an entry's name is a label. An entry without keywords
  never triggers.

Order: most recently mentioned first, judged by the latest occurrence of any of the
entry's keywords (later text, then later position in it); ties keep entry order.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from engine.protocol.context import LoreEntryView

DEFAULT_SCAN_DEPTH = 4
DEFAULT_MAX_ENTRIES = 6

_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2032": "'"})

# Scripts written without spaces between words: (first, last) code point.
_UNSPACED_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x31FF),  # Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA000, 0xA4CF),  # Yi
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x3134F),  # CJK extensions B-G
)


def normalise_for_matching(text: str) -> str:
    """Return ``text`` as lore matching compares it: NFKC, case-folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.translate(_APOSTROPHES).split())


def triggered_lore(
    entries: Sequence[LoreEntryView],
    texts: Sequence[str],
    scan_depth: int = DEFAULT_SCAN_DEPTH,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> tuple[LoreEntryView, ...]:
    """Return up to ``max_entries`` entries mentioned in the last ``scan_depth`` texts.

    ``texts`` are oldest first (like a story's turns); see the module docstring for the
    matching rules and the order of the result.
    """
    if scan_depth < 0 or max_entries < 0:
        raise ValueError("scan_depth and max_entries must not be negative")
    scanned = [normalise_for_matching(text) for text in texts[max(0, len(texts) - scan_depth) :]]
    if not scanned or max_entries == 0:
        return ()
    mentioned: list[tuple[tuple[int, int], int, LoreEntryView]] = []
    for index, entry in enumerate(entries):
        latest = _latest_mention(entry, scanned)
        if latest is not None:
            mentioned.append((latest, index, entry))
    mentioned.sort(key=lambda item: (-item[0][0], -item[0][1], item[1]))
    return tuple(entry for _, _, entry in mentioned[:max_entries])


def _latest_mention(entry: LoreEntryView, scanned: Sequence[str]) -> tuple[int, int] | None:
    """Return (text index, end offset) of the entry's latest keyword occurrence."""
    keywords = [k for k in (normalise_for_matching(k) for k in entry.keywords) if k]
    for text_index in range(len(scanned) - 1, -1, -1):
        ends = [_last_match_end(scanned[text_index], keyword) for keyword in keywords]
        found = [end for end in ends if end is not None]
        if found:
            return text_index, max(found)
    return None


def _last_match_end(text: str, keyword: str) -> int | None:
    start = text.rfind(keyword)
    while start != -1:
        end = start + len(keyword)
        if _is_boundary(text, start, keyword[0], before=True) and _is_boundary(
            text, end, keyword[-1], before=False
        ):
            return end
        start = text.rfind(keyword, 0, end - 1)
    return None


def _is_boundary(text: str, offset: int, keyword_edge: str, *, before: bool) -> bool:
    """Tell whether the keyword's edge at ``offset`` does not continue a word."""
    neighbour_at = offset - 1 if before else offset
    if neighbour_at < 0 or neighbour_at >= len(text):
        return True
    neighbour = text[neighbour_at]
    if _is_unspaced_script(neighbour) or _is_unspaced_script(keyword_edge):
        return True
    return not (_is_word_char(neighbour) and _is_word_char(keyword_edge))


def _is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LMN" or category == "Pc"


def _is_unspaced_script(char: str) -> bool:
    code = ord(char)
    return any(first <= code <= last for first, last in _UNSPACED_RANGES)
