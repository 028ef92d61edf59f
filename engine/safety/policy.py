"""A server's content policy: every filter for its rating and blocked words, in order."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.safety.classifier import CLASSIFIER_THRESHOLDS, ProfanityClassifier, shared_classifier
from engine.safety.filters import (
    BlockedWordFilter,
    BuiltinWordFilter,
    ClassifierFilter,
    ControlCharacterFilter,
    EmptyFilter,
    Filter,
    FilterContext,
    LengthFilter,
    MarkupFilter,
    MassMentionFilter,
    StorableTextFilter,
    UserMentionFilter,
)
from engine.safety.flood import FloodLimits, flood_filters
from engine.safety.normalization import normalize
from engine.safety.verdict import TextKind, Verdict
from engine.safety.word_matching import WordList
from engine.safety.wordlists import INNOCENT_AFTER, builtin_words

if TYPE_CHECKING:
    # Only for the annotation: the rating is a StrEnum, so its plain value is used at
    # run time and this package never imports the database layer.
    from storage.models import ContentRating

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 4000


@functools.cache
def _builtin_word_list(rating: str) -> WordList:
    return WordList(builtin_words(rating), innocent_after=INNOCENT_AFTER)


class ContentPolicy:
    """Check texts against a content rating and a server's blocked words.

    Filters run cheapest first and the first refusal wins: characters no database can
    store (in every kind of text, table talk included), empty, too long, control
    characters, mass mentions, user mentions, markup, the server's blocked words, the
    rating's built-in words, floods (combining marks, repeated words, repeated
    characters, emoji; after the word lists, so that a refusal never spells out a
    listed word), then the classifier (where the rating enables it).
    """

    def __init__(
        self,
        rating: ContentRating,
        blocked_words: Sequence[str] = (),
        *,
        classifier: ProfanityClassifier | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        flood: FloodLimits | None = None,
    ) -> None:
        self.rating = rating
        self._rating_name = str(rating)
        builtin = _builtin_word_list(self._rating_name)  # refuses an unknown rating
        self._blocked = WordList(blocked_words)
        self._builtin = builtin
        filters: list[Filter] = [
            StorableTextFilter(),
            EmptyFilter(),
            LengthFilter(max_chars),
            ControlCharacterFilter(),
            MassMentionFilter(),
            UserMentionFilter(),
            MarkupFilter(),
        ]
        if self._blocked:
            filters.append(BlockedWordFilter(self._blocked))
        filters.append(BuiltinWordFilter(builtin))
        filters.extend(flood_filters(flood or FloodLimits()))
        threshold = CLASSIFIER_THRESHOLDS[self._rating_name]
        if threshold is not None:
            filters.append(ClassifierFilter(classifier or shared_classifier(), threshold))
        self.filters: tuple[Filter, ...] = tuple(filters)

    def check(self, text: str, kind: TextKind) -> Verdict:
        """Return the first refusal of ``text`` by a filter that applies to ``kind``."""
        kind = TextKind(kind)
        context = FilterContext(text, normalize(text), kind, self._rating_name)
        for text_filter in self.filters:
            if kind not in text_filter.kinds:
                continue
            verdict = text_filter.triggered_on(context)
            if not verdict.allowed:
                log.debug("%s text refused by %s (%s)", kind, verdict.rule, verdict.matched)
                return verdict
        return Verdict.ok()

    def banned_phrases(self) -> tuple[str, ...]:
        """Return the server's blocked words, then the rating's, for generation to avoid."""
        seen: set[str] = set()
        phrases: list[str] = []
        for term in (*self._blocked.terms, *self._builtin.terms):
            if term.key not in seen:
                seen.add(term.key)
                phrases.append(term.entry.strip())
        return tuple(phrases)
