"""Flood filters: repeated characters and words, emoji walls and zalgo text."""

from __future__ import annotations

import pytest

from engine.safety import ContentPolicy, FloodLimits, TextKind
from engine.safety.flood import (
    count_emoji,
    longest_repeat,
    longest_word_repeat,
    most_marks_on_one_character,
)
from storage.models import ContentRating

DRAGON = "\U0001f409"
ZALGO = "".join(c + "\u0336\u0337\u0338\u0334\u0335" for c in "The door opens")


@pytest.fixture(scope="module")
def policies() -> dict[ContentRating, ContentPolicy]:
    # Floods are refused at every rating; the classifier is beside the point here.
    return {rating: ContentPolicy(rating) for rating in (ContentRating.TEEN, ContentRating.MATURE)}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        pytest.param(DRAGON * 7, "emoji_flood", id="seven-dragons"),
        pytest.param(f"{DRAGON} " * 10, "emoji_flood", id="spaced-dragons"),
        pytest.param("\u2764\ufe0f" * 12, "emoji_flood", id="hearts-with-selectors"),
        pytest.param("x" * 70, "repeated_characters", id="seventy-x"),
        pytest.param("AAAAAAAAAAAAAAAAAAAAaaaaaaaa", "repeated_characters", id="mixed-case-run"),
        pytest.param("!" * 30, "repeated_characters", id="exclamation-wall"),
        pytest.param("ha" * 30, "repeated_characters", id="laughing-wall"),
        pytest.param("a\u200b" * 20, "repeated_characters", id="run-hidden-by-zero-width"),
        pytest.param("no " * 16, "repeated_words", id="same-word-sixteen-times"),
        pytest.param(
            "Dragon, dragon! DRAGON dragon... dragon; dragon",
            "repeated_words",
            id="same-word-punctuation-and-case",
        ),
        pytest.param(ZALGO, "combining_marks", id="zalgo-strikethrough"),
        pytest.param(
            "z\u0351\u0352\u0357\u0358\u035b\u035c\u035d", "combining_marks", id="zalgo-one-letter"
        ),
        pytest.param(
            "T\u0489\u0489\u0489\u0489\u0489he end", "combining_marks", id="enclosing-marks"
        ),
    ],
)
@pytest.mark.parametrize("rating", [ContentRating.TEEN, ContentRating.MATURE])
@pytest.mark.parametrize("kind", [TextKind.TURN, TextKind.NARRATION, TextKind.TITLE])
def test_floods_are_refused_with_a_clear_reason_at_every_rating(
    policies: dict[ContentRating, ContentPolicy],
    text: str,
    rule: str,
    rating: ContentRating,
    kind: TextKind,
) -> None:
    verdict = policies[rating].check(text, kind)

    assert (verdict.allowed, verdict.rule) == (False, rule)
    assert "at most" in verdict.reason and verdict.reason.endswith(".")
    assert verdict.matched


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Noooooooo! Not the dragon!", id="drawn-out-word"),
        pytest.param("Hahahaha, you fell for it.", id="short-laugh"),
        pytest.param('"No, no, no, no, no!" she cried.', id="five-noes"),
        pytest.param(
            "The dragon \U0001f409 breathes fire \U0001f525\U0001f525\U0001f525.", id="four-emoji"
        ),
        pytest.param(
            "\U0001f468\u200d\U0001f469\u200d\U0001f467 and \U0001f1eb\U0001f1f7",
            id="joined-family-and-flag-count-once-each",
        ),
        pytest.param("\U0001f44b\U0001f3fd" * 6, id="six-waves-with-skin-tone"),
        pytest.param("Vi\u1ec7t Nam, ph\u1edf b\u00f2.", id="vietnamese-stacked-accents"),
        pytest.param(
            "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05b4\u05c1\u05d9\u05ea", id="hebrew-points"
        ),
        pytest.param("\u0915\u094d\u0937\u093f\u0924\u093f\u091c", id="devanagari-signs"),
        pytest.param("It cost 1000000 gold.", id="number-with-zeros"),
        pytest.param("* * *\n\nMorning came.", id="scene-break"),
        pytest.param("----------", id="ten-dashes"),
        pytest.param("Well... well... we'll see.", id="ellipses"),
        pytest.param("the the cat", id="doubled-word"),
    ],
)
def test_ordinary_text_is_not_a_flood(
    policies: dict[ContentRating, ContentPolicy], text: str
) -> None:
    verdict = policies[ContentRating.MATURE].check(text, TextKind.TURN)

    assert verdict.allowed, verdict


def test_table_talk_is_not_checked_for_floods(
    policies: dict[ContentRating, ContentPolicy],
) -> None:
    assert policies[ContentRating.TEEN].check(DRAGON * 20, TextKind.TABLE_TALK).allowed


@pytest.mark.parametrize(
    ("limits", "text", "allowed"),
    [
        pytest.param(FloodLimits(max_emoji=2), DRAGON * 3, False, id="emoji-over"),
        pytest.param(FloodLimits(max_emoji=3), DRAGON * 3, True, id="emoji-at-limit"),
        pytest.param(FloodLimits(max_emoji=0), f"Fire {DRAGON}", False, id="no-emoji-at-all"),
        pytest.param(FloodLimits(max_repeated_words=2), "very very very", False, id="words-over"),
        pytest.param(FloodLimits(max_repeated_words=3), "very very very", True, id="words-at"),
        pytest.param(FloodLimits(max_repeated_characters=3), "Zzzz", False, id="chars-over"),
        pytest.param(FloodLimits(max_repeated_characters=4), "Zzzz", True, id="chars-at"),
        pytest.param(FloodLimits(max_repeated_characters=100), "x" * 70, True, id="chars-raised"),
        pytest.param(FloodLimits(max_combining_marks=1), "a\u0301\u0302", False, id="marks-over"),
        pytest.param(FloodLimits(max_combining_marks=2), "a\u0301\u0302", True, id="marks-at"),
    ],
)
def test_limits_are_the_servers(limits: FloodLimits, text: str, allowed: bool) -> None:
    policy = ContentPolicy(ContentRating.MATURE, flood=limits)

    assert policy.check(text, TextKind.TURN).allowed is allowed


def test_the_reason_names_the_count_and_the_limit() -> None:
    policy = ContentPolicy(ContentRating.MATURE, flood=FloodLimits(max_emoji=6))

    verdict = policy.check(DRAGON * 7, TextKind.TURN)

    assert verdict.reason == (
        "This has 7 emoji and this server allows at most 6 in one message: "
        "please keep a few and write the rest in words."
    )
    assert verdict.matched == "7 emoji"


def test_a_flood_of_a_listed_word_is_refused_without_spelling_it_out() -> None:
    verdict = ContentPolicy(ContentRating.MATURE).check("faggot " * 10, TextKind.TURN)

    assert verdict.rule == "builtin_word"
    assert "faggot" not in verdict.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("abc", ("", 0), id="nothing-repeated"),
        pytest.param("xxxxx", ("x", 5), id="one-character"),
        pytest.param("hahaha!", ("ha", 3), id="two-characters"),
        pytest.param("lol lol lol ", ("lol ", 3), id="word-and-space"),
        pytest.param("a      b", ("", 0), id="spaces-do-not-count"),
    ],
)
def test_longest_repeat(text: str, expected: tuple[str, int]) -> None:
    assert longest_repeat(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ("", 0), id="empty"),
        pytest.param("one two two three", ("two", 2), id="pair"),
        pytest.param("Spam, SPAM; spam!", ("spam", 3), id="case-and-punctuation"),
    ],
)
def test_longest_word_repeat(text: str, expected: tuple[str, int]) -> None:
    assert longest_word_repeat(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", 0, id="plain"),
        pytest.param("caf\u00e9", 1, id="precomposed-accent"),
        pytest.param("e\u0301\u0302\u0303 x\u0301", 3, id="stack-of-three"),
    ],
)
def test_most_marks_on_one_character(text: str, expected: int) -> None:
    assert most_marks_on_one_character(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("no emoji here", 0, id="none"),
        pytest.param(DRAGON * 3, 3, id="three"),
        pytest.param("\u2764\ufe0f\u2764\ufe0f", 2, id="selectors-not-counted"),
        pytest.param("\U0001f468\u200d\U0001f469\u200d\U0001f467", 1, id="zwj-family"),
        pytest.param("\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea", 2, id="two-flags"),
        pytest.param("\U0001f44d\U0001f3fb", 1, id="skin-tone"),
        pytest.param("\u2122\ufe0f \u21a9\ufe0f \u2122", 2, id="symbols-with-selector"),
        pytest.param("1\ufe0f\u20e3", 1, id="keycap"),
        pytest.param("\ufffd" * 10, 0, id="replacement-characters-of-broken-text"),
        pytest.param("\u2500" * 10 + "\u00a9", 0, id="box-drawing-and-copyright"),
    ],
)
def test_count_emoji(text: str, expected: int) -> None:
    assert count_emoji(text) == expected
