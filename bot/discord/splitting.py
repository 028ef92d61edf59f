"""Split long text into Discord-sized messages at the most natural boundary available."""

from __future__ import annotations

import re

MESSAGE_LIMIT = 2000

# Tried in order: paragraph, line, sentence, word. Each pattern's group 1 (or the whole
# match) is the whitespace to cut at, so punctuation and closing quotes stay with the text.
_BOUNDARIES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(\n[ \t]*\n\s*)"),
    re.compile(r"(\n\s*)"),
    # Closing quotes (straight and curly), brackets and emphasis markers end a sentence too.
    re.compile("[.!?\u2026][\"'\u201d\u2019\u00bb)\\]*_]*(\\s+)"),
    re.compile(r"(\s+)"),
)


def _cut_positions(pattern: re.Pattern[str], window: str) -> list[int]:
    return [match.start(1) for match in pattern.finditer(window)]


def _best_cut(text: str, limit: int) -> int:
    """Return where to end the first chunk of TEXT (longer than LIMIT)."""
    # One character more than the limit: whitespace right after the limit is a fine cut.
    window = text[: limit + 1]
    # A boundary in the second half keeps chunks reasonably full; otherwise settle for
    # the best boundary anywhere before falling back to a hard cut inside a word.
    for floor in (limit // 2, 0):
        for pattern in _BOUNDARIES:
            cuts = [c for c in _cut_positions(pattern, window) if floor < c <= limit]
            if cuts:
                return cuts[-1]
    return limit


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split TEXT into chunks of at most LIMIT characters, never inside a word if avoidable."""
    if limit < 1:
        raise ValueError("limit must be positive")
    rest = text.strip()
    chunks: list[str] = []
    while len(rest) > limit:
        cut = _best_cut(rest, limit)
        head = rest[:cut].rstrip()
        rest = rest[cut:].lstrip()
        if head:
            chunks.append(head)
    if rest:
        chunks.append(rest)
    return chunks
