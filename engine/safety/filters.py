"""The content filters: one small object per rule, each asked in turn by the policy."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from engine.safety.classifier import ProfanityClassifier
from engine.safety.storable import find_unstorable, unstorable_reason
from engine.safety.verdict import TextKind, Verdict
from engine.safety.word_matching import ListedTerm, WordList

log = logging.getLogger(__name__)

ALL_KINDS = frozenset(TextKind)
# Table talk is the players' own chat beside the story: the bot neither stores it in
# the story nor posts it, so only what it says (words, classifier) is checked, and
# that it can be stored at all (it is kept for export).
STORY_KINDS = ALL_KINDS - {TextKind.TABLE_TALK}

# Markup limits for story text (see MarkupFilter).
MAX_MARKUP_LINES = 3
MAX_CONSECUTIVE_NEWLINES = 5


@dataclass(frozen=True)
class FilterContext:
    """The text under check, its matching form, where it comes from and the rating."""

    text: str
    normalized: str
    kind: TextKind
    rating: str


class Filter(Protocol):
    """One rule: says whether a text breaks it."""

    rule: str
    kinds: frozenset[TextKind]

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Return a refusal if the text breaks this rule, else ``Verdict.ok()``."""
        ...


# How a refusal names the text it refuses, by where the text comes from.
_FIELD_NAMES = {
    TextKind.TURN: "Your turn",
    TextKind.TABLE_TALK: "Your message",
    TextKind.LORE: "The lore entry",
    TextKind.TITLE: "The title",
    TextKind.PREMISE: "The premise",
    TextKind.AUTHORS_NOTE: "The author's note",
    TextKind.NARRATION: "The passage",
}


class StorableTextFilter:
    """Refuse NUL bytes and broken surrogates: no database can store them."""

    rule = "unstorable_character"
    kinds = ALL_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse the first character that cannot be stored, naming the kind of text."""
        found = find_unstorable(context.text)
        if found is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule, unstorable_reason(_FIELD_NAMES[context.kind], found), matched=str(found)
        )


class EmptyFilter:
    """Refuse text with nothing visible in it."""

    rule = "empty"
    kinds = STORY_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse empty, whitespace-only or invisible-only text."""
        if context.normalized.strip():
            return Verdict.ok()
        return Verdict.refuse(self.rule, "There is nothing to post: write some text first.")


class LengthFilter:
    """Refuse text longer than a fixed number of characters."""

    rule = "too_long"
    kinds = STORY_KINDS

    def __init__(self, max_chars: int) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.max_chars = max_chars

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text over ``max_chars`` characters."""
        length = len(context.text)
        if length <= self.max_chars:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f"This is {length:,} characters long and the limit is {self.max_chars:,}: "
            "please shorten it.",
            matched=f"{length} characters",
        )


# Text-direction embeddings, overrides and isolates ("Trojan Source" reordering),
# and line/paragraph separators that break lines invisibly.
_FORBIDDEN_FORMAT = frozenset(
    {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFFF9, 0xFFFA, 0xFFFB}
)


def _is_control(text: str, index: int) -> bool:
    char = text[index]
    if char in "\n\t":
        return False
    if char == "\r" and text[index + 1 : index + 2] == "\n":
        return False  # a Windows line break
    return ord(char) in _FORBIDDEN_FORMAT or unicodedata.category(char) in ("Cc", "Cs")


def strip_control_characters(text: str) -> str:
    """Remove the characters ControlCharacterFilter refuses (for the model's own output)."""
    return "".join(char for index, char in enumerate(text) if not _is_control(text, index))


def _first_control_character(text: str) -> str | None:
    return next((char for index, char in enumerate(text) if _is_control(text, index)), None)


class ControlCharacterFilter:
    """Refuse control characters other than line breaks and tabs, and bidi overrides."""

    rule = "control_characters"
    kinds = STORY_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse the first control or text-direction character found."""
        char = _first_control_character(context.text)
        if char is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            "This contains invisible control characters (such as text-direction "
            "overrides): please remove them and send it again.",
            matched=f"U+{ord(char):04X}",
        )


# Matched on the normalised text, so that a full-width at sign and zero-width characters
# hidden inside the mention do not get it through.
_MASS_MENTION = re.compile(r"@(?:everyone|here)|<@&\d+>")
_USER_MENTION = re.compile(r"<@!?\d+>")


class MassMentionFilter:
    """Refuse @everyone, @here and role mentions."""

    rule = "mass_mention"
    kinds = STORY_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text that would ping a whole server or a role."""
        match = _MASS_MENTION.search(context.normalized)
        if match is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            "Stories cannot mention @everyone, @here or a role: please remove the mention.",
            matched=match.group(),
        )


class UserMentionFilter:
    """Refuse mentions of members: stories are not for pinging people."""

    rule = "user_mention"
    kinds = STORY_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text containing a <@id> or <@!id> mention."""
        match = _USER_MENTION.search(context.normalized)
        if match is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            "Stories are not for pinging people: write the name instead of the mention.",
            matched=match.group(),
        )


_CODE_FENCE = "```"
_MASKED_LINK = re.compile(
    r"\[[^\[\]\n]*\]\(\s*<?\s*(?:[a-z][a-z0-9+.\-]*://|www\.|mailto:)", re.IGNORECASE
)
_BLOCK_QUOTE = re.compile(r"^[ \t]*>>>(?:[ \t]|$)")
_MARKUP_LINE = re.compile(r"^[ \t]*(?:>(?:[ \t]|$)|#{1,3}[ \t]|-#[ \t])")
_NEWLINE_RUN = re.compile(rf"(?:\n[ \t\r]*){{{MAX_CONSECUTIVE_NEWLINES + 1},}}")


class MarkupFilter:
    """Refuse Discord markup that hijacks how a story looks or hides what it says.

    Refused: code fences (they switch the story to a monospace block), masked links
    ``[text](url)`` (they hide where a link goes), more than ``MAX_MARKUP_LINES`` lines
    of quote (``>``, or everything after ``>>>``) or heading (``#``, ``##``, ``###``,
    ``-#``) markup, and more than ``MAX_CONSECUTIVE_NEWLINES`` line breaks in a row
    (a wall of empty space). Emphasis, spoilers, inline code, a short quote or a
    chapter heading are fine.
    """

    rule = "markup_abuse"
    kinds = STORY_KINDS

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse the first kind of markup abuse found."""
        text = context.text
        if _CODE_FENCE in text:
            return Verdict.refuse(
                self.rule,
                "Code blocks are not allowed in a story: write it as prose, without ```.",
                matched=_CODE_FENCE,
            )
        if (link := _MASKED_LINK.search(text)) is not None:
            return Verdict.refuse(
                self.rule,
                "Links hidden behind text are not allowed in a story: "
                "remove the [text](link) markup.",
                matched=link.group()[:100],
            )
        markup_lines = _count_markup_lines(text)
        if markup_lines > MAX_MARKUP_LINES:
            return Verdict.refuse(
                self.rule,
                f"At most {MAX_MARKUP_LINES} lines may be quotes or headings: "
                "remove the > or # from the start of the others.",
                matched=f"{markup_lines} quote or heading lines",
            )
        if (run := _NEWLINE_RUN.search(text)) is not None:
            return Verdict.refuse(
                self.rule,
                f"Please leave at most {MAX_CONSECUTIVE_NEWLINES - 1} empty lines in a row.",
                matched=f"{run.group().count(chr(10))} line breaks in a row",
            )
        return Verdict.ok()


def _count_markup_lines(text: str) -> int:
    lines = text.split("\n")
    count = 0
    for index, line in enumerate(lines):
        if _BLOCK_QUOTE.match(line):
            # Discord quotes everything after ">>>", to the end of the message.
            return count + sum(1 for rest in lines[index:] if rest.strip())
        if _MARKUP_LINE.match(line):
            count += 1
    return count


def mask(term: ListedTerm) -> str:
    """Return the term with all but the first letter of each word starred ("f***")."""
    words = term.key.rstrip("*").split(" ")
    return " ".join(word[0] + "*" * (len(word) - 1) if len(word) > 1 else "*" for word in words)


class BlockedWordFilter:
    """Refuse words and phrases from the server's own blocked list."""

    rule = "blocked_word"
    kinds = ALL_KINDS

    def __init__(self, words: WordList) -> None:
        self.words = words

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text containing a word the server's moderators blocked."""
        term = self.words.first_match(context.normalized)
        if term is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f'This server does not allow "{mask(term)}": please rephrase.',
            matched=term.key,
        )


class BuiltinWordFilter:
    """Refuse words from the built-in list of the content rating."""

    rule = "builtin_word"
    kinds = ALL_KINDS

    def __init__(self, words: WordList) -> None:
        self.words = words

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse text containing a word the content rating does not allow."""
        term = self.words.first_match(context.normalized)
        if term is None:
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            f'"{mask(term)}" is not allowed at this server\'s content rating '
            f"({context.rating}): please rephrase.",
            matched=term.key,
        )


# Words that put the people at the table into a text: a player addressed ("you",
# "your") or the writer speaking for themselves ("suck my ...").
_PERSONAL_PRONOUNS = frozenset(
    "you your yours yourself yourselves ya u ur youre thou thee thy thine me my mine myself".split()
)
_CLAUSE_BREAK = re.compile(r"[.,;:!?\"()\[\]\n\u2014\u2013]+|--")
_CLASSIFIER_WORD = re.compile(r"\w+")
# A clause of at most this many words is an outburst ("loser", "shut up", "you moron").
OUTBURST_WORDS = 3


class ClassifierFilter:
    """Refuse text the statistical classifier is confident is offensive and aimed at someone.

    The classifier (a bag of words) judges a short sentence by its one or two known
    words: "shut" alone scores 0.98, so "The grimoire snapped shut." would be refused,
    and so would "so odd and so stupid" in a novel. Over the threshold, the score must
    therefore also rest on more than narration: the text names the people at the table
    ("you", "your", "me", "my"), or one of its clauses is a short outburst (at most
    three words) that scores over the threshold by itself ("loser", "shut up"), or at
    least two of its words score over the threshold on their own ("go die in a ditch,
    loser"). On 3,508 sentences of published prose the classifier alone refused
    3 (0.09%) and now refuses 1 (0.03%); every hostile text it refused before is still
    refused (``taleweaver bench safety``).
    """

    rule = "classifier"
    kinds = ALL_KINDS

    def __init__(self, classifier: ProfanityClassifier, threshold: float) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.classifier = classifier
        self.threshold = threshold

    def triggered_on(self, context: FilterContext) -> Verdict:
        """Refuse offensive text that addresses someone, is an outburst, or stacks insults."""
        probability = self.classifier.probability(context.normalized)
        if probability <= self.threshold:
            return Verdict.ok()
        because = self.aimed_at_someone(context.normalized)
        if because is None:
            log.debug("classifier p=%.2f, but the score rests on narration only", probability)
            return Verdict.ok()
        return Verdict.refuse(
            self.rule,
            "This reads as too offensive for this server's content rating "
            f"({context.rating}): please tone it down.",
            matched=f"p={probability:.2f} > {self.threshold:.2f}, {because}",
        )

    def aimed_at_someone(self, normalized: str) -> str | None:
        """Return why an offensive score concerns people, or None when it rests on narration."""
        words = _CLASSIFIER_WORD.findall(normalized)
        if any(word in _PERSONAL_PRONOUNS for word in words):
            return "addresses someone"
        clauses = [
            clause.strip()
            for clause in _CLAUSE_BREAK.split(normalized)
            if 0 < len(_CLASSIFIER_WORD.findall(clause)) <= OUTBURST_WORDS
        ]
        distinct = sorted(set(words))
        scores = self.classifier.probabilities([*clauses, *distinct])
        if any(score > self.threshold for score in scores[: len(clauses)]):
            return "short outburst"
        if sum(score > self.threshold for score in scores[len(clauses) :]) >= 2:
            return "several offensive words"
        return None
