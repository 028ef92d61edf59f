"""The matching form of a text: what word lists and mention checks compare against."""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter

from engine.safety.characters import is_droppable_mark, is_invisible, is_word_char, script_of

# Cyrillic and Greek letters that look like Latin ones, written as escapes so that
# the source itself stays unambiguous. Upper and lower case are mapped separately
# because some letters only look Latin in one case (Greek eta: H, but n).
_CYRILLIC_LOOKALIKES = (
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf\u043a"
    "\u051b\u051d"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408"
    "\u0405\u04c0",
    "aeopcyxijsdhlkqwABEKMHOPCTXYIJSI",
)
_GREEK_LOOKALIKES = (
    "\u03b1\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03b3\u03c9"
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
    "aeikvoptuxywABEZHIKMNOPTYX",
)


def _inverse(pairs: tuple[str, str]) -> dict[int, str]:
    table: dict[int, str] = {}
    for foreign, latin in zip(*pairs, strict=True):
        table.setdefault(ord(latin), foreign)
    return table


_TO_LATIN = {
    **str.maketrans(*_CYRILLIC_LOOKALIKES),
    **str.maketrans(*_GREEK_LOOKALIKES),
}
_FROM_LATIN = {"cyrillic": _inverse(_CYRILLIC_LOOKALIKES), "greek": _inverse(_GREEK_LOOKALIKES)}


def normalize(text: str) -> str:
    """Return the matching form of ``text``.

    NFKC (full-width and styled letters become plain ones), invisible characters
    removed, accents and other decorative combining marks removed, look-alike
    letters in a word that mixes Latin, Cyrillic and Greek folded into the word's
    majority script, then case-folded. Whitespace and punctuation are kept, so
    word boundaries survive; leetspeak and spacing tricks are handled by matching.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(char for char in text if not is_invisible(char))
    text = _drop_marks(text)
    text = _fold_lookalikes(text)
    # Case folding can bring marks back ("İ" folds to "i" plus a combining dot).
    return _drop_marks(text.casefold())


def _drop_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFKC", "".join(c for c in decomposed if not is_droppable_mark(c)))


def _fold_lookalikes(text: str) -> str:
    if text.isascii():
        return text
    parts = []
    for is_word, chars in itertools.groupby(text, key=is_word_char):
        word = "".join(chars)
        parts.append(_fold_word(word) if is_word and not word.isascii() else word)
    return "".join(parts)


def _fold_word(word: str) -> str:
    scripts = Counter(script for char in word if (script := script_of(char)))
    if len(scripts) < 2:
        return word
    # A word whose foreign letters all look Latin is a Latin word in disguise ("HELLO"
    # with a Greek H, E and O); otherwise the Latin letters are the disguise (a Russian
    # word with a Latin "a" in it).
    if all(ord(char) in _TO_LATIN or script_of(char) in (None, "latin") for char in word):
        return word.translate(_TO_LATIN)
    foreign = max((s for s in scripts if s != "latin"), key=lambda script: scripts[script])
    return word.translate(_FROM_LATIN[foreign])


def lookalike_latin(word: str) -> str | None:
    """Return ``word`` spelt in Latin if every letter of it is a Cyrillic or Greek look-alike."""
    if word.isascii() or not all(ord(char) in _TO_LATIN or char.isdigit() for char in word):
        return None
    return word.translate(_TO_LATIN)
