from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from engine.safety import ContentPolicy, TextKind, Verdict
from engine.safety.wordlists import SLURS
from storage.models import ContentRating

EVERYONE, TEEN, MATURE = ContentRating.EVERYONE, ContentRating.TEEN, ContentRating.MATURE


@pytest.mark.parametrize(
    ("rating", "probability", "refused"),
    [
        pytest.param(EVERYONE, 0.95, True, id="everyone-over-threshold"),
        pytest.param(EVERYONE, 0.9, False, id="everyone-at-threshold"),
        pytest.param(EVERYONE, 0.5, False, id="everyone-under-threshold"),
        pytest.param(TEEN, 1.0, False, id="teen-disabled"),
        pytest.param(MATURE, 1.0, False, id="mature-disabled"),
    ],
)
def test_classifier_refuses_only_over_the_rating_threshold(
    fixed_classifier: Any, rating: ContentRating, probability: float, refused: bool
) -> None:
    classifier = fixed_classifier(probability)
    policy = ContentPolicy(rating, classifier=classifier)

    verdict = policy.check("The knight rode north.", TextKind.TURN)

    assert verdict.allowed is not refused
    assert verdict.rule == ("classifier" if refused else None)
    if rating is not EVERYONE:
        assert classifier.calls == []


def test_classifier_reason_names_the_rating_and_the_probability(fixed_classifier: Any) -> None:
    policy = ContentPolicy(EVERYONE, classifier=fixed_classifier(0.97))

    verdict = policy.check("whatever", TextKind.NARRATION)

    assert verdict.reason == (
        "This reads as too offensive for this server's content rating (everyone): "
        "please tone it down."
    )
    assert verdict.matched == "p=0.97 > 0.90, short outburst"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        pytest.param("@everyone " * 500, "too_long", id="length-before-mentions"),
        pytest.param("\u202e @everyone", "control_characters", id="control-before-mentions"),
        pytest.param("<@1> @here", "mass_mention", id="mass-before-user-mention"),
        pytest.param("<@1> ```", "user_mention", id="mention-before-markup"),
        pytest.param("```\nshit", "markup_abuse", id="markup-before-words"),
        pytest.param("goblin shit", "blocked_word", id="server-words-before-builtin"),
        pytest.param("shit", "builtin_word", id="words-before-classifier"),
    ],
)
def test_the_cheapest_failing_filter_wins_and_the_classifier_is_not_asked(
    fixed_classifier: Any, text: str, rule: str
) -> None:
    classifier = fixed_classifier(1.0)
    policy = ContentPolicy(EVERYONE, ["goblin"], classifier=classifier)

    verdict = policy.check(text, TextKind.TURN)

    assert verdict.rule == rule
    assert classifier.calls == []


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 20_000, id="long"),
        pytest.param("\x07 <@1> @everyone", id="control-and-mentions"),
        pytest.param("```\n> a\n> b\n> c\n> d\n```", id="markup"),
    ],
)
def test_table_talk_is_checked_only_for_words_and_the_classifier(
    fixed_classifier: Any, text: str
) -> None:
    policy = ContentPolicy(EVERYONE, ["goblin"], classifier=fixed_classifier(0.0))

    assert policy.check(text, TextKind.TABLE_TALK).allowed
    assert policy.check(text + " goblin", TextKind.TABLE_TALK).rule == "blocked_word"


@pytest.mark.parametrize("kind", list(TextKind))
def test_every_kind_is_checked_for_words(kind: TextKind) -> None:
    policy = ContentPolicy(MATURE, ["goblin"])

    assert policy.check("a g0blin appears", kind).rule == "blocked_word"
    assert policy.check("a hobgoblin appears", kind) == Verdict.ok()


def test_kind_may_be_given_as_its_value() -> None:
    policy = ContentPolicy(MATURE)

    assert policy.check("<@1>", "narration").rule == "user_mention"  # type: ignore[arg-type]


def test_max_chars_is_configurable() -> None:
    policy = ContentPolicy(MATURE, max_chars=10)

    assert policy.check("x" * 10, TextKind.TITLE).allowed
    verdict = policy.check("x" * 11, TextKind.TITLE)
    assert verdict.rule == "too_long"
    assert verdict.reason == "This is 11 characters long and the limit is 10: please shorten it."


@pytest.mark.parametrize(
    ("rating", "blocked", "text", "reason"),
    [
        pytest.param(
            MATURE,
            ["goblin"],
            "GOBLIN!",
            'This server does not allow "g*****": please rephrase.',
            id="blocked-word",
        ),
        pytest.param(
            MATURE,
            ["red knight"],
            "the red knight",
            'This server does not allow "r** k*****": please rephrase.',
            id="blocked-phrase",
        ),
        pytest.param(
            EVERYONE,
            [],
            "fucking hell",
            '"f***" is not allowed at this server\'s content rating (everyone): please rephrase.',
            id="builtin-prefix-word",
        ),
    ],
)
def test_word_refusals_mask_the_word(
    fixed_classifier: Any, rating: ContentRating, blocked: list[str], text: str, reason: str
) -> None:
    policy = ContentPolicy(rating, blocked, classifier=fixed_classifier(0.0))

    assert policy.check(text, TextKind.TURN).reason == reason


def test_banned_phrases_are_the_server_list_then_the_rating_list_without_duplicates() -> None:
    policy = ContentPolicy(EVERYONE, ["goblin", " Fuck* ", "!!!", "GOBLIN"])

    phrases = policy.banned_phrases()

    assert phrases[:2] == ("goblin", "Fuck*")
    assert phrases.count("goblin") == 1
    assert "fuck*" not in phrases
    assert "!!!" not in phrases
    assert {"shit*", "porn*", *SLURS} <= set(phrases)


@pytest.mark.parametrize(
    ("rating", "included", "excluded"),
    [
        pytest.param(EVERYONE, {"shit*", "sex", "porn*", "faggot"}, set(), id="everyone"),
        pytest.param(TEEN, {"porn*", "faggot"}, {"shit*", "sex"}, id="teen"),
        pytest.param(MATURE, {"faggot"}, {"shit*", "sex", "porn*"}, id="mature"),
    ],
)
def test_banned_phrases_follow_the_rating(
    rating: ContentRating, included: set[str], excluded: set[str]
) -> None:
    phrases = set(ContentPolicy(rating).banned_phrases())

    assert included <= phrases
    assert not excluded & phrases


def test_unknown_rating_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown content rating"):
        ContentPolicy("adults-only")  # type: ignore[arg-type]


def test_ok_verdict_carries_no_rule_and_verdicts_are_frozen() -> None:
    verdict = Verdict.ok()

    assert (verdict.allowed, verdict.rule, verdict.reason, verdict.matched) == (
        True,
        None,
        "",
        None,
    )
    with pytest.raises(AttributeError):
        verdict.allowed = False  # type: ignore[misc]


def test_safety_package_imports_no_torch_database_or_discord() -> None:
    script = (
        "import sys, engine.safety\n"
        "from engine.safety import ContentPolicy, TextKind\n"
        "ContentPolicy('mature').check('hello', TextKind.TURN)\n"
        "heavy = {'torch', 'sqlalchemy', 'discord', 'storage', 'profanity_check'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert result.stdout.strip() == "[]"
