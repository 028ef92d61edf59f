"""Bad, borderline and innocent inputs with the verdict each rating gives them."""

from __future__ import annotations

import pytest

from engine.safety import ContentPolicy, ProfanityClassifier, TextKind
from storage.models import ContentRating

EVERYONE, TEEN, MATURE = ContentRating.EVERYONE, ContentRating.TEEN, ContentRating.MATURE
TURN, NARRATION, TABLE_TALK = TextKind.TURN, TextKind.NARRATION, TextKind.TABLE_TALK
# A server's own list: a Japanese and a Russian word, a phrase, a word with a symbol.
SERVER_WORDS = ("dragonfly", "バカ", "дурак", "red knight", "sp@m")
HORROR = (
    "The creature tore the guard apart; blood sprayed across the stone walls as he "
    "screamed, and the thing dragged what was left of him into the dark."
)


def case(
    text: str,
    rating: ContentRating,
    expected: str | None,
    case_id: str,
    kind: TextKind = TURN,
) -> object:
    return pytest.param(text, rating, kind, expected, id=case_id)


CASES = [
    # Common profanity at the everyone rating, plain and disguised.
    case("you piece of shit", EVERYONE, "builtin_word", "plain-profanity"),
    case("S H I T", EVERYONE, "builtin_word", "spaced-letters"),
    case("s.h.i.t", EVERYONE, "builtin_word", "dotted-letters"),
    case("s-h-i-t", EVERYONE, "builtin_word", "hyphenated-letters"),
    case("s_h_i_t", EVERYONE, "builtin_word", "underscored-letters"),
    case("go away, sh1t", EVERYONE, "builtin_word", "leet-digit"),
    case("$hit happens", EVERYONE, "builtin_word", "leet-dollar"),
    case("what an @ss", EVERYONE, "builtin_word", "leet-at"),
    case("a$$hole", EVERYONE, "builtin_word", "leet-symbols-in-prefix-word"),
    case("f\u200bu\u200cc\u200dk", EVERYONE, "builtin_word", "zero-width-joiners"),
    case("fu\u00adck", EVERYONE, "builtin_word", "soft-hyphen"),
    case("f\u0301u\u0308c\u0327k\u0336", EVERYONE, "builtin_word", "combining-marks"),
    case("\uff46\uff55\uff43\uff4b", EVERYONE, "builtin_word", "full-width"),
    case("\U0001d41f\U0001d42e\U0001d41c\U0001d424", EVERYONE, "builtin_word", "math-bold"),
    case("fu\u0441k off", EVERYONE, "builtin_word", "cyrillic-es-in-latin-word"),
    case("\u0392\u0399\u03a4C\u0397", EVERYONE, "builtin_word", "greek-capitals-mixed"),
    case("\u0455\u0435\u0445", EVERYONE, "builtin_word", "all-cyrillic-look-alikes"),
    case("fuuuuuck", EVERYONE, "builtin_word", "repeated-letters"),
    case("FUCKING", EVERYONE, "builtin_word", "caps-and-star-entry"),
    case("b i t c h e s", EVERYONE, "builtin_word", "spaced-longer-form"),
    case("look at those b00bs", EVERYONE, "builtin_word", "mild-sexual-leet"),
    case("what the fuck", TEEN, None, "teen-allows-profanity"),
    case("shit happens", TEEN, None, "teen-allows-mild-words"),
    case("fuck this, he growled", MATURE, None, "mature-allows-profanity"),
    # Explicit sexual terms: teen refuses, mature allows.
    case("she gave him a blowjob", TEEN, "builtin_word", "teen-explicit"),
    case("p0rn", TEEN, "builtin_word", "teen-explicit-leet"),
    case("p.o.r.n.o.g.r.a.p.h.y", TEEN, "builtin_word", "teen-explicit-spaced-prefix"),
    case("the porn magazine", MATURE, None, "mature-allows-explicit"),
    # Slurs: refused at every rating, however disguised.
    case("n1gger", MATURE, "builtin_word", "slur-leet-mature"),
    case("f a g g o t", MATURE, "builtin_word", "slur-spaced-mature"),
    case("k\u0456ke", MATURE, "builtin_word", "slur-cyrillic-i-mature"),
    case("porch   ...   monkey", MATURE, "builtin_word", "slur-phrase-punctuation"),
    case("R.E.T.A.R.D", TEEN, "builtin_word", "slur-dotted-teen"),
    case("wetbacks", EVERYONE, "builtin_word", "slur-plural"),
    # The server's own list, including non-Latin words.
    case("the dragonfly hovered", EVERYONE, "blocked_word", "server-word"),
    case("DRAGONFLY!", MATURE, "blocked_word", "server-word-caps-mature"),
    case("d r a g o n f l y", TEEN, "blocked_word", "server-word-spaced"),
    case("dragonflies darted", EVERYONE, None, "server-word-whole-word-only"),
    case("あのバカが来た", EVERYONE, "blocked_word", "japanese-substring"),
    case("バ カ", TEEN, "blocked_word", "japanese-spaced"),
    case("\uff8a\uff9e\uff76", MATURE, "blocked_word", "japanese-half-width"),
    case("ты дурак!", EVERYONE, "blocked_word", "russian-word"),
    case("Дурак", MATURE, "blocked_word", "russian-capitalised"),
    case("\u0434\u0443\u0440a\u043a", TEEN, "blocked_word", "russian-with-latin-a"),
    case(" ".join("дурак"), TEEN, "blocked_word", "russian-spaced"),
    case("дураки", EVERYONE, None, "russian-whole-word-only"),
    case("the red   knight rode", EVERYONE, "blocked_word", "phrase-extra-spaces"),
    case("the red-knight rode", EVERYONE, "blocked_word", "phrase-hyphen"),
    case("the red knights rode", EVERYONE, None, "phrase-whole-words-only"),
    case("redknight", EVERYONE, None, "phrase-words-run-together"),
    case("buy spam now", EVERYONE, "blocked_word", "server-word-with-symbol"),
    case("buy sp4m now", EVERYONE, "blocked_word", "server-word-leet"),
    # Mentions.
    case("@everyone wake up", EVERYONE, "mass_mention", "everyone"),
    case("hey @here", MATURE, "mass_mention", "here"),
    case("@\u200beveryone", TEEN, "mass_mention", "everyone-zero-width"),
    case("\uff20everyone", TEEN, "mass_mention", "everyone-full-width-at"),
    case("@\u0435veryone", TEEN, "mass_mention", "everyone-cyrillic-e"),
    case("calling <@&123456789>", EVERYONE, "mass_mention", "role"),
    case("<@123456789> look", EVERYONE, "user_mention", "user"),
    case("<@!123456789>", MATURE, "user_mention", "user-nickname"),
    case("\uff1c@123\uff1e", MATURE, "user_mention", "user-full-width-brackets"),
    case("ask @Mira what she saw", EVERYONE, None, "plain-at-name"),
    case("The narrator calls @everyone", MATURE, "mass_mention", "narration-mention", NARRATION),
    case("<@42> said so", MATURE, "user_mention", "narration-user-mention", NARRATION),
    case("@everyone brb", EVERYONE, None, "table-talk-mentions-unchecked", TABLE_TALK),
    # Markup.
    case("```\nrm -rf /\n```", EVERYONE, "markup_abuse", "code-fence"),
    case("```python", MATURE, "markup_abuse", "narration-code-fence", NARRATION),
    case("[click here](https://evil.example)", EVERYONE, "markup_abuse", "masked-link"),
    case("[map](<www.example.com>)", TEEN, "markup_abuse", "masked-link-angle"),
    case("> a\n> b\n> c\n> d", EVERYONE, "markup_abuse", "four-quote-lines"),
    case("# One\n## Two\n### Three\n-# Four", EVERYONE, "markup_abuse", "four-headings"),
    case(">>> all\nof\nthis\nis quoted", EVERYONE, "markup_abuse", "block-quote"),
    case("a" + "\n" * 6 + "b", EVERYONE, "markup_abuse", "six-newlines"),
    case("a" + "\n \n" * 3 + "b", EVERYONE, "markup_abuse", "newlines-with-spaces"),
    case("a\n\n\n\n\nb", EVERYONE, None, "five-newlines"),
    case("She *whispered* the **name** and ~~ran~~.", EVERYONE, None, "emphasis"),
    case("> a single quote\nand prose after it", EVERYONE, None, "one-quote"),
    case("# Chapter Two\nThe rain fell.", EVERYONE, None, "one-heading"),
    case("It cost `3 gold` and a ||secret||.", EVERYONE, None, "inline-code-and-spoiler"),
    case("[sic] (see page 5)", EVERYONE, None, "brackets-not-a-link"),
    case("```lol```", EVERYONE, None, "table-talk-markup-unchecked", TABLE_TALK),
    # Length, emptiness and control characters.
    case("x" * 10_000, EVERYONE, "too_long", "ten-thousand-chars"),
    case("word " * 2_000, MATURE, "too_long", "ten-thousand-chars-of-words"),
    case(((HORROR + " ") * 30)[:4_000], EVERYONE, None, "exactly-the-limit"),
    case("", EVERYONE, "empty", "empty"),
    case("   \n\t ", TEEN, "empty", "whitespace-only"),
    case("\u200b\u200b\ufeff", MATURE, "empty", "invisible-only"),
    case("abc\u202edef", EVERYONE, "control_characters", "right-to-left-override"),
    case("abc\u2066def\u2069", EVERYONE, "control_characters", "bidi-isolate"),
    case("ring the bell\x07", EVERYONE, "control_characters", "bell"),
    case("null\x00byte", MATURE, "unstorable_character", "nul"),
    case("half \ud83d emoji", TEEN, "unstorable_character", "lone-surrogate"),
    case("null\x00byte", EVERYONE, "unstorable_character", "table-talk-nul", TABLE_TALK),
    case("\x1b[31mred", MATURE, "control_characters", "narration-escape", NARRATION),
    case("line one\r\nline two", EVERYONE, None, "windows-line-break"),
    case("a tab\tand a\nnewline", EVERYONE, None, "tab-and-newline"),
    # Innocent texts that must pass.
    case("The class went to see the assassin.", EVERYONE, None, "class-assassin"),
    case("He moved to Scunthorpe last spring.", EVERYONE, None, "scunthorpe"),
    case("The therapist listened quietly.", EVERYONE, None, "therapist"),
    case("Pass the bass to the grass.", EVERYONE, None, "pass-bass-grass"),
    case("She read the cocktail menu in Sussex.", EVERYONE, None, "cocktail-sussex"),
    case("In 2025 the 3 knights rode 40 miles.", EVERYONE, None, "numbers"),
    case("l33t h4x0r", EVERYONE, None, "harmless-leet"),
    case("a ss", EVERYONE, None, "split-fragments-not-joined"),
    case("The pen is mightier than the sword.", EVERYONE, None, "pen-is"),
    case("Mira *drew* her sword and **charged** the dragon.", EVERYONE, None, "prose"),
    case("Hello! Are you there?! Yes!!", EVERYONE, None, "exclamation-marks"),
    case("Il était une fois un château près de la rivière.", EVERYONE, None, "french"),
    case("Привет, как дела?", EVERYONE, None, "russian-prose"),
    case("昔々、ある村に竜がいました。", EVERYONE, None, "japanese-prose"),
    case(HORROR, TEEN, None, "horror-at-teen"),
    case(HORROR, EVERYONE, None, "horror-at-everyone"),
    # The classifier: a second signal, for the everyone rating only.
    case("you stupid fool", EVERYONE, "classifier", "classifier-insult"),
    case("suck my dick", EVERYONE, "classifier", "classifier-crude"),
    case("you suck", EVERYONE, "classifier", "classifier-table-talk", TABLE_TALK),
    case("you stupid fool", TEEN, None, "classifier-off-at-teen"),
    case("suck my dick", MATURE, None, "classifier-off-at-mature"),
    # Over the threshold, the classifier refuses only what is aimed at someone: an
    # addressed player or the writer, a short outburst, or several offensive words.
    case("shut up you idiot", EVERYONE, "classifier", "classifier-addressed"),
    case("loser", EVERYONE, "classifier", "classifier-one-word-outburst"),
    case("nobody asked, shut up", EVERYONE, "classifier", "classifier-outburst-clause"),
    case("go die in a ditch, loser", EVERYONE, "classifier", "classifier-several-words"),
    case("cum on my face", EVERYONE, "classifier", "classifier-writer-speaking"),
    case("The grimoire snapped shut.", EVERYONE, None, "narration-grimoire-shut"),
    case("She shut the door.", EVERYONE, None, "narration-shut-door"),
    case("The door slammed shut behind him.", EVERYONE, None, "narration-door-slammed"),
    case("The old king was stupid.", EVERYONE, None, "narration-one-insult"),
    case("The stupid, ridiculous king.", EVERYONE, "classifier", "narration-stacked-insults"),
    case("The grimoire snapped shut.", EVERYONE, None, "passage-grimoire", NARRATION),
    # "sex" meaning gender, as older prose uses it, and the word meant otherwise.
    case("to recommend themselves to the other sex", EVERYONE, None, "sex-as-gender-other"),
    case("no young person of either sex", EVERYONE, None, "sex-as-gender-either"),
    case("he would please all her sex", EVERYONE, None, "sex-as-gender-possessive"),
    case("they had sex", EVERYONE, "builtin_word", "sex-meant-otherwise"),
    case("a compliment to the sex", EVERYONE, "builtin_word", "sex-after-the-stays-refused"),
    case("all her s3x", EVERYONE, "builtin_word", "sex-disguised-after-innocent-word"),
    case("all her sexxx", EVERYONE, "builtin_word", "sex-stretched-after-innocent-word"),
    # Floods, refused at every rating (more in test_flood.py).
    case("\U0001f409" * 7, MATURE, "emoji_flood", "seven-dragon-emoji"),
    case("x" * 70, TEEN, "repeated_characters", "seventy-x"),
    case("dragon " * 10, EVERYONE, "repeated_words", "same-word-ten-times"),
    case("z\u0351\u0352\u0357\u0358\u035b\u035c", MATURE, "combining_marks", "zalgo"),
]


@pytest.fixture(scope="module")
def policies(classifier: ProfanityClassifier) -> dict[ContentRating, ContentPolicy]:
    return {
        rating: ContentPolicy(rating, SERVER_WORDS, classifier=classifier)
        for rating in ContentRating
    }


@pytest.mark.parametrize(("text", "rating", "kind", "expected"), CASES)
def test_policy_verdict(
    policies: dict[ContentRating, ContentPolicy],
    text: str,
    rating: ContentRating,
    kind: TextKind,
    expected: str | None,
) -> None:
    verdict = policies[rating].check(text, kind)

    assert (verdict.allowed, verdict.rule) == (expected is None, expected), verdict
    if expected is None:
        assert verdict.reason == ""
    else:
        assert verdict.reason.endswith(".")
        assert verdict.matched or expected == "empty"


@pytest.mark.parametrize(
    ("text", "rating", "kind", "expected"),
    [c for c in CASES if c.values[3] in ("builtin_word", "blocked_word")],  # type: ignore[attr-defined]
)
def test_word_refusals_never_repeat_the_word_in_full(
    policies: dict[ContentRating, ContentPolicy],
    text: str,
    rating: ContentRating,
    kind: TextKind,
    expected: str,
) -> None:
    verdict = policies[rating].check(text, kind)

    assert verdict.matched is not None
    for word in verdict.matched.rstrip("*").split():
        if len(word) > 1:
            assert word not in verdict.reason.lower()
    assert "*" in verdict.reason


def test_table_has_enough_cases() -> None:
    assert len(CASES) >= 60
