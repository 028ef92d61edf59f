"""Find listed words and phrases in normalised text: whole words, despite disguises.

A term matches when its words appear as whole words, in order, separated by any
run of non-word characters ("porch monkey" matches "porch... monkey"). Besides the
text as written, each word is also tried:

- in leetspeak (0→o, 1→i or l, 3→e, 4→a, 5→s, 7→t, @→a, $→s, ! inside a word→i),
  unless it is only digits, so that numbers such as "2025" never turn into letters;
- with letters repeated three or more times cut to one and to two ("baaaad", "asss");
- spelt in Latin, when every letter is a Cyrillic or Greek look-alike ("sex" in
  Cyrillic dze, ie and ha);
- joined with its neighbours, when it is part of a run of single characters separated
  by at most three non-word characters ("b a d", "b.a.d", "b-a-d", "b_a_d").

Only single characters are joined: joining longer fragments would read "pen is" as
one word, so "a ss" or "fu ck" are not matched as "ass" or "fuck" (the classifier
may still object to them). Terms in scripts written without spaces (Chinese,
Japanese, Thai, Korean...) are matched as substrings instead, also with spaces and
separator punctuation removed.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from engine.safety.characters import is_spaceless_char, is_word_char
from engine.safety.normalization import lookalike_latin, normalize

log = logging.getLogger(__name__)

_LEET = str.maketrans("013457@$!", "oieastasi")
_LEET_SYMBOLS = frozenset("@$!")
_REPEATS = re.compile(r"(.)\1{2,}")
_MAX_SEPARATOR = 3
# Separators removed when looking for a term of a spaceless script ("馬 鹿", "馬.鹿").
_COMPACT_DROP = re.compile(r"[\s.,_\-*~|/\\+=:;'\"`·・]+")

WordAlternatives = frozenset[str]


@dataclass(frozen=True)
class ListedTerm:
    """One entry of a word list, compiled for matching."""

    entry: str
    key: str
    forms: tuple[tuple[str, ...], ...]
    prefix: bool
    spaceless: bool


class WordList:
    """Match a list of words and phrases against normalised text.

    ``innocent_after`` maps a listed one-word term to the words after which it has an
    innocent sense ("sex" after "other" or "either" means gender): a term written
    plainly right after one of them is not a match.
    """

    def __init__(
        self,
        entries: Iterable[str],
        innocent_after: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self._innocent_after = {
            key: frozenset(words) for key, words in (innocent_after or {}).items()
        }
        self.terms: tuple[ListedTerm, ...] = tuple(
            term for entry in entries if (term := compile_term(entry)) is not None
        )
        self._by_first: dict[str, list[tuple[tuple[str, ...], ListedTerm]]] = {}
        self._stems: list[tuple[str, ListedTerm]] = []
        self._spaceless: list[ListedTerm] = []
        for term in self.terms:
            if term.spaceless:
                self._spaceless.append(term)
                continue
            for form in term.forms:
                if term.prefix and len(form) == 1:
                    self._stems.append((form[0], term))
                else:
                    self._by_first.setdefault(form[0], []).append((form, term))

    def __bool__(self) -> bool:
        return bool(self.terms)

    def first_match(self, normalized: str) -> ListedTerm | None:
        """Return the first listed term found in ``normalized`` (see ``normalize``)."""
        if not self.terms:
            return None
        plain = _words(normalized, leet=False)
        sequences = [([_plain_alternatives(word) for _, _, word in plain], plain)]
        if any(char.isdigit() or char in _LEET_SYMBOLS for char in normalized):
            leet_words = _words(normalized, leet=True)
            sequences.append(([_leet_alternatives(word) for _, _, word in leet_words], leet_words))
            spellings = [plain, leet_words]
        else:
            spellings = [plain]
        for sequence, written in sequences:
            if (term := self._match_sequence(sequence, written)) is not None:
                return term
        for words in spellings:
            for joined in _joined_single_characters(normalized, words):
                if (term := self._match_word(_leet_alternatives(joined))) is not None:
                    return term
        return self._match_spaceless(normalized)

    def _match_sequence(
        self, sequence: Sequence[WordAlternatives], written: Sequence[Word]
    ) -> ListedTerm | None:
        for index, alternatives in enumerate(sequence):
            for word in alternatives:
                for form, term in self._by_first.get(word, ()):
                    if _rest_matches(form, term.prefix, sequence, index) and not (
                        self._innocent(term, written, index)
                    ):
                        return term
                for stem, term in self._stems:
                    if word.startswith(stem):
                        return term
        return None

    def _innocent(self, term: ListedTerm, written: Sequence[Word], index: int) -> bool:
        """Whether the term, written plainly at ``index``, follows a word of its innocent sense."""
        after = self._innocent_after.get(term.key)
        return (
            after is not None
            and index > 0
            and written[index][2] == term.key
            and written[index - 1][2] in after
        )

    def _match_word(self, alternatives: WordAlternatives) -> ListedTerm | None:
        for word in alternatives:
            for form, term in self._by_first.get(word, ()):
                if len(form) == 1:
                    return term
            for stem, term in self._stems:
                if word.startswith(stem):
                    return term
        return None

    def _match_spaceless(self, normalized: str) -> ListedTerm | None:
        if not self._spaceless:
            return None
        compact = _COMPACT_DROP.sub("", normalized)
        for term in self._spaceless:
            needle = term.forms[0][0]
            if needle in normalized or needle in compact:
                return term
        return None


def compile_term(entry: str) -> ListedTerm | None:
    """Compile one list entry; return None for one that can never match (no letters)."""
    text = entry.strip()
    prefix = text.endswith("*")
    text = normalize(text.rstrip("*").strip())
    if any(is_spaceless_char(char) for char in text):
        needle = _COMPACT_DROP.sub("", text)
        if not needle:
            return None
        return ListedTerm(entry, text, ((needle,),), prefix, spaceless=True)
    plain = tuple(word for _, _, word in _words(text, leet=False))
    if not plain:
        log.debug("Ignoring list entry without letters or digits: %r", entry)
        return None
    forms = [plain]
    if any(char in _LEET_SYMBOLS for char in text):
        forms.append(tuple(word.translate(_LEET) for _, _, word in _words(text, leet=True)))
    latin = tuple(lookalike_latin(word) or word for word in plain)
    forms.append(latin)
    unique = tuple(dict.fromkeys(form for form in forms if form))
    key = " ".join(plain) + ("*" if prefix else "")
    return ListedTerm(entry, key, unique, prefix, spaceless=False)


Word = tuple[int, int, str]


def _words(text: str, *, leet: bool) -> list[Word]:
    """Split ``text`` into (start, end, word) runs; leet runs also take @, $ and !."""
    words: list[Word] = []
    position = 0
    for in_word, chars in itertools.groupby(
        text, key=lambda c: is_word_char(c) or (leet and c in _LEET_SYMBOLS)
    ):
        run = "".join(chars)
        start, position = position, position + len(run)
        if not in_word:
            continue
        if leet:
            # A "!" that ends a word is punctuation, not an "i".
            run = run.rstrip("!")
            if not run:
                continue
        words.append((start, start + len(run), run))
    return words


def _squeezed(word: str) -> Iterator[str]:
    if _REPEATS.search(word):
        yield _REPEATS.sub(r"\1", word)
        yield _REPEATS.sub(r"\1\1", word)


def _plain_alternatives(text: str) -> WordAlternatives:
    alternatives = {text, *_squeezed(text)}
    if (latin := lookalike_latin(text)) is not None:
        alternatives.add(latin)
    return frozenset(alternatives)


def _leet_alternatives(text: str) -> WordAlternatives:
    if text.isdigit():
        return frozenset({text})
    spellings = {text, text.translate(_LEET)}
    if "1" in text:
        spellings.add(text.replace("1", "l").translate(_LEET))
    return frozenset(itertools.chain(spellings, *(_squeezed(s) for s in spellings)))


def _rest_matches(
    form: tuple[str, ...], prefix: bool, sequence: Sequence[WordAlternatives], index: int
) -> bool:
    if index + len(form) > len(sequence):
        return False
    for offset in range(1, len(form)):
        alternatives = sequence[index + offset]
        wanted = form[offset]
        if prefix and offset == len(form) - 1:
            if not any(word.startswith(wanted) for word in alternatives):
                return False
        elif wanted not in alternatives:
            return False
    return True


def _joined_single_characters(text: str, words: list[Word], longest: int = 40) -> Iterator[str]:
    """Yield every join of two or more single-character words spelt out with separators."""
    for run in _single_character_runs(text, words):
        for start in range(len(run) - 1):
            for end in range(start + 2, min(len(run), start + longest) + 1):
                yield "".join(run[start:end])


def _single_character_runs(text: str, words: list[Word]) -> Iterator[list[str]]:
    run: list[str] = []
    previous_end = -1
    for start, end, word in words:
        if len(word) == 1 and (not run or start - previous_end <= _MAX_SEPARATOR):
            run.append(word)
        else:
            if len(run) >= 2:
                yield run
            run = [word] if len(word) == 1 else []
        previous_end = end
    if len(run) >= 2:
        yield run
