"""Measure what makes a narrator passage usable: plain text rules, no model needed.

A good passage continues the players' scene: it names or acts on people, places and
things already in the premise, lore or recent turns; it invents no new named
characters; it never talks about the game; it writes no lists, headings or
numbering; it is more than a fragment; it does not repeat itself, earlier passages
or the players' own words. :func:`check_passage` measures each of these on one
passage; the benchmark reports them as rates and the reranker uses them to choose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from engine.protocol.context import StoryContext

MIN_WORDS = 12
MIN_DISTINCT_BIGRAMS = 0.75
MAX_EARLIER_OVERLAP = 0.25
MAX_PROMPT_OVERLAP = 0.5
_OVERLAP_N = 4
_RECENT_TURNS_IN_SCENE = 4

_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_SENTENCE_START = re.compile(r"(?:^|[.!?\u2026]['\"\u201d\u2019)]*\s+|[\n:;\"\u201c(\u2014-]\s*)$")

# Words about the game rather than in it. "turn" only with a possessive or "next":
# the verb ("she turned") and "a turn in the road" are story words.
_META_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\b(?:the|this|our|your|my) (?:story|scene|game|narrat(?:or|ive)|prompt|passage|"
        r"chapter|roleplay|text|paragraph|sentence)\b",
        r"\bnarrator\b",
        r"\b(?:players?|users?|readers?|assistant|AI|language model)\b",
        r"\b(?:your|my|his|her|their|next|whose) turns?\b",
        r"\b(?:continue|continuing|begin|beginning) (?:the|this|with the) (?:story|tale|scene)\b",
        r"\bas an? (?:AI|assistant|narrator)\b",
        r"\b(?:role ?play|in-character|out of character|OOC)\b",
    )
)
_LIST_LINE = re.compile(
    r"^\s*(?:[-*\u2022#>]|\d+[.):]|\(\d+\)|[A-Za-z][.)]\s|\*\*[^*]+\*\*\s*:?\s*$|"
    r"(?:chapter|part|scene|act)\s+(?:\d+|[ivxlc]+)\b)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING_LINE = re.compile(r"^[^.!?\n]{1,60}:\s*$", re.MULTILINE)
_FILLER = re.compile(r"^\W*(?:\(\s*[^)]{0,40}\)|\[[^\]]{0,40}\]|\*[^*]{0,40}\*)\W*$")

# Capitalised words that are not names wherever they stand. Anything else
# capitalised and absent from the story's own text counts as a new proper name.
_COMMON_CAPITALISED = frozenset(
    """
    a about above across after again against ah ahead all almost alone along already also
    although always am among an and another any anyone anything are around as at away back
    be because before behind below beneath beside besides best better between beyond both
    but by can cannot come could dark day days deep did do does down during each either
    else even ever every everyone everything far few finally first for from further get
    give go good great had half has have he her here hers herself high him himself his
    how however i if in inside instead into is it its itself just last late later least
    less let like little long many may maybe me meanwhile might more most much must my
    myself near neither never new next night no nobody none nor not nothing now of off
    oh often old on once one only or other others our out outside over perhaps quickly
    quietly rather right round same several she should silence silently since slowly so
    some somehow someone something sometimes somewhere soon still such suddenly than that
    the their them then there these they this those though through thus to today together
    tomorrow tonight too toward towards under until up upon us very was we well were what
    whatever when where whether which while who whoever whole why will with within without
    yes yet you your yours yourself
    monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december god sir madam lady lord mister
    mr mrs ms dr captain doctor professor father mother brother sister aunt uncle king
    queen prince princess master miss hello hey okay ok no yes thanks please sorry stop
    wait look listen come run quick help careful behold alas
    """.split()
)
_STOPWORDS = _COMMON_CAPITALISED | frozenset(
    """
    said says say like just into onto there their they them then than that this these
    those what which while with without would could should shall will been being were
    have having make made take took come came went gone look looked looks seemed seem
    seems back still even ever over under again more most very much some such only own
    other another each every both either neither thing things something nothing anything
    everything someone anyone everyone time times way ways felt feel feels know knew
    known think thought around through across toward towards away along eyes hand hands
    head voice face moment little long first last next right left turned turn
    """.split()
)


def words(text: str) -> list[str]:
    """Return the words of ``text`` in order, as written."""
    return [m.group(0).strip("'\u2019-") for m in _WORD.finditer(text)]


def _key(word: str) -> str:
    """Fold a word for comparison: lower case, a plural or possessive ending dropped."""
    key = word.casefold().replace("\u2019", "'")
    if key.endswith("'s"):
        key = key[:-2]
    if len(key) > 4 and key.endswith("es") and not key.endswith("ses"):
        return key[:-2]
    if len(key) > 3 and key.endswith("s") and not key.endswith("ss"):
        return key[:-1]
    return key


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class Scene:
    """What a passage may refer to: the story's names and content words, and its text."""

    names: frozenset[str]
    content_words: frozenset[str]
    known_words: frozenset[str]
    prompt_ngrams: frozenset[tuple[str, ...]]
    earlier_passages: tuple[str, ...] = ()
    min_words: int = MIN_WORDS

    @classmethod
    def of(cls, context: StoryContext, *, max_new_tokens: int | None = None) -> Scene:
        """Return the scene of a story context: premise, lore, summary and recent turns.

        With ``max_new_tokens``, a passage counts as a fragment below a third of what
        that many tokens hold (at most ``MIN_WORDS`` words), so a server that asks for
        very short passages does not see them all refused.
        """
        recent = context.recent_turns[-_RECENT_TURNS_IN_SCENE:]
        scene_texts = [
            context.title,
            context.premise,
            context.summary,
            context.authors_note,
            *(f"{entry.name} {' '.join(entry.keywords)} {entry.text}" for entry in context.lore),
            *(turn.text for turn in recent),
        ]
        names = {_key(n) for name in context.player_names for n in words(name)}
        names.update(_key(w) for entry in context.lore for w in words(entry.name))
        names.update(_key(w) for entry in context.lore for k in entry.keywords for w in words(k))
        content: set[str] = set()
        for text in scene_texts:
            for index, word in enumerate(words(text)):
                key = _key(word)
                if key in _STOPWORDS or len(key) < 3:
                    continue
                content.add(key)
                if word[:1].isupper() and index > 0:
                    names.add(key)
        everything = [
            *scene_texts,
            *context.player_names,
            *(turn.text for turn in context.recent_turns),
        ]
        known = {_key(w) for text in everything for w in words(text)}
        player_text = " ".join(turn.text for turn in recent if not turn.is_narrator)
        prompt_tokens = [w.casefold() for w in words(f"{context.premise} {player_text}")]
        earlier = tuple(turn.text for turn in context.recent_turns if turn.is_narrator)
        return cls(
            names=frozenset(names - _STOPWORDS),
            content_words=frozenset(content),
            known_words=frozenset(known),
            prompt_ngrams=frozenset(_ngrams(prompt_tokens, _OVERLAP_N)),
            earlier_passages=earlier,
            min_words=MIN_WORDS
            if max_new_tokens is None
            else max(2, min(MIN_WORDS, max_new_tokens // 3)),
        )

    @cached_property
    def earlier_ngrams(self) -> frozenset[tuple[str, ...]]:
        """Return the word n-grams of the narrator's earlier passages."""
        grams: set[tuple[str, ...]] = set()
        for passage in self.earlier_passages:
            grams.update(_ngrams([w.casefold() for w in words(passage)], _OVERLAP_N))
        return frozenset(grams)


@dataclass(frozen=True)
class PassageCheck:
    """The measurements of one passage against its scene, and which rules it breaks."""

    word_count: int
    scene_names: tuple[str, ...]
    scene_words: tuple[str, ...]
    invented_names: tuple[str, ...]
    meta_talk: tuple[str, ...]
    list_lines: int
    filler: bool
    distinct_bigrams: float
    earlier_overlap: float
    prompt_overlap: float
    min_words: int = MIN_WORDS
    faults: tuple[str, ...] = field(default=())

    @property
    def on_scene(self) -> bool:
        """Return whether the passage names a scene entity or acts on two scene things."""
        return bool(self.scene_names) or len(self.scene_words) >= 2

    @property
    def too_short(self) -> bool:
        """Return whether the passage is empty, filler or a fragment."""
        return self.filler or self.word_count < self.min_words

    @property
    def repetitive(self) -> bool:
        """Return whether the passage repeats itself, earlier passages or the players."""
        return (
            self.distinct_bigrams < MIN_DISTINCT_BIGRAMS
            or self.earlier_overlap > MAX_EARLIER_OVERLAP
            or self.prompt_overlap > MAX_PROMPT_OVERLAP
        )

    @property
    def junk(self) -> bool:
        """Return whether no player should ever see this passage."""
        return self.too_short or bool(self.meta_talk) or self.list_lines > 0

    @property
    def usable(self) -> bool:
        """Return whether the passage passes every rule."""
        return not self.faults


def talks_about_the_game_or_lists(text: str) -> bool:
    """Return whether ``text`` (even unfinished) has meta-talk, a list or a heading."""
    return (
        any(pattern.search(text) for pattern in _META_PATTERNS)
        or bool(_LIST_LINE.search(text))
        or bool(_HEADING_LINE.search(text))
    )


def check_passage(text: str, scene: Scene) -> PassageCheck:
    """Measure one passage against its scene."""
    stripped = text.strip()
    tokens = words(stripped)
    keys = [_key(w) for w in tokens]
    scene_names = sorted({k for k in keys if k in scene.names})
    scene_words = sorted({k for k in keys if k in scene.content_words} - set(scene_names))
    invented = _invented_names(stripped, scene)
    meta = tuple(sorted({m.group(0) for p in _META_PATTERNS for m in p.finditer(stripped)}))
    list_lines = len(_LIST_LINE.findall(stripped)) + len(_HEADING_LINE.findall(stripped))
    lowered = [w.casefold() for w in tokens]
    bigrams = _ngrams(lowered, 2)
    distinct = len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    grams = _ngrams(lowered, _OVERLAP_N)
    earlier = sum(g in scene.earlier_ngrams for g in grams) / len(grams) if grams else 0.0
    prompt = sum(g in scene.prompt_ngrams for g in grams) / len(grams) if grams else 0.0
    check = PassageCheck(
        word_count=len(tokens),
        scene_names=tuple(scene_names),
        scene_words=tuple(scene_words),
        invented_names=invented,
        meta_talk=meta,
        list_lines=list_lines,
        filler=bool(_FILLER.match(stripped)) or not tokens,
        distinct_bigrams=distinct,
        earlier_overlap=earlier,
        prompt_overlap=prompt,
        min_words=scene.min_words,
    )
    return _with_faults(check)


def _with_faults(check: PassageCheck) -> PassageCheck:
    faults = [
        name
        for name, broken in (
            ("too_short", check.too_short),
            ("meta_talk", bool(check.meta_talk)),
            ("list", check.list_lines > 0),
            ("off_scene", not check.on_scene),
            ("invented_name", bool(check.invented_names)),
            ("repetitive", check.repetitive),
        )
        if broken
    ]
    return replace(check, faults=tuple(faults))


def _invented_names(text: str, scene: Scene) -> tuple[str, ...]:
    """Return capitalised words that look like names and appear nowhere in the story."""
    found: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'\u2019-")
        if not word[:1].isupper() or len(word) < 2:
            continue
        key = _key(word)
        if key in _COMMON_CAPITALISED or key in scene.known_words or key in scene.names:
            continue
        if word.isupper() and len(word) > 1 and key not in scene.known_words:
            continue  # SHOUTED words are emphasis, not names
        at_start = bool(_SENTENCE_START.search(text[: match.start()]))
        if at_start and key in _STOPWORDS:
            continue
        if at_start and not _looks_like_name(word):
            continue
        if word not in found:
            found.append(word)
    return tuple(found)


def _looks_like_name(word: str) -> bool:
    """Guess whether a sentence-initial capitalised word is a name rather than a word."""
    # Ordinary sentence openers are adverbs and verbs ("Slowly", "Turning", "Inside");
    # these endings are rare in names.
    lowered = word.casefold()
    return not lowered.endswith(("ly", "ing", "ed", "ness", "tion", "ful", "less"))


def summarise_checks(checks: Iterable[PassageCheck]) -> dict[str, float]:
    """Return the rates and means the quality benchmark reports for a set of passages."""
    items = list(checks)
    total = len(items) or 1
    return {
        "passages": float(len(items)),
        "usable": sum(c.usable for c in items) / total,
        "on_scene": sum(c.on_scene for c in items) / total,
        "invented_names": sum(bool(c.invented_names) for c in items) / total,
        "meta_talk": sum(bool(c.meta_talk) for c in items) / total,
        "lists": sum(c.list_lines > 0 for c in items) / total,
        "too_short": sum(c.too_short for c in items) / total,
        "empty": sum(c.word_count == 0 for c in items) / total,
        "distinct_2": sum(c.distinct_bigrams for c in items) / total,
        "earlier_overlap": sum(c.earlier_overlap for c in items) / total,
        "prompt_overlap": sum(c.prompt_overlap for c in items) / total,
        "mean_words": sum(c.word_count for c in items) / total,
    }
