from __future__ import annotations

import pytest

from engine.safety import normalize
from engine.safety.word_matching import WordList


@pytest.mark.parametrize(
    ("entries", "text", "expected"),
    [
        pytest.param(["gobl*"], "three goblins", "gobl*", id="star-matches-word-starts"),
        pytest.param(["gobl*"], "hobgoblins", None, id="star-still-starts-a-word"),
        pytest.param(["ass"], "class assassin pass bass", None, id="whole-words-only"),
        pytest.param(["ass"], "you ass.", "ass", id="word-before-punctuation"),
        pytest.param(["ass"], "asssss", "ass", id="repeats-cut-to-two"),
        pytest.param(["ass"], "as", None, id="repeats-never-shorten-a-real-word"),
        pytest.param(["bad"], "b    a    d", None, id="long-separators-are-word-breaks"),
        pytest.param(["bad"], "b - a - d", "bad", id="short-separators-join"),
        pytest.param(["bad"], "a b a d idea", "bad", id="joined-run-inside-longer-run"),
        pytest.param(["bad"], "bad_", "bad", id="underscore-is-a-separator"),
        pytest.param(["lol"], "101", None, id="numbers-stay-numbers"),
        pytest.param(["kill"], "k1ll", "kill", id="one-as-l"),
        pytest.param(["spit"], "sp!t", "spit", id="bang-inside-a-word-as-i"),
        pytest.param(["spi"], "spi!", "spi", id="bang-after-a-word-is-punctuation"),
        pytest.param(["red knight"], "red\n\nknight", "red knight", id="phrase-across-lines"),
        pytest.param(["red kni*"], "red knights", "red kni*", id="phrase-with-star"),
        pytest.param(["馬鹿"], "この馬鹿者", "馬鹿", id="cjk-substring"),
        pytest.param(["馬鹿"], "馬 . 鹿", "馬鹿", id="cjk-separators-dropped"),
        pytest.param(["ควาย"], "ไอ้ควายตัวนี้", "ควาย", id="thai-substring"),
        pytest.param(["!!!", "***"], "!!! ***", None, id="entries-without-letters-ignored"),
        pytest.param([], "anything", None, id="empty-list"),
    ],
)
def test_first_match(entries: list[str], text: str, expected: str | None) -> None:
    term = WordList(entries).first_match(normalize(text))

    assert (term.key if term else None) == expected
