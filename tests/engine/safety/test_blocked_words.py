from __future__ import annotations

import pytest

from engine.errors import InvalidSetting, StoryError
from engine.safety import validate_blocked_word


@pytest.mark.parametrize(
    ("word", "stored"),
    [
        pytest.param("goblin", "goblin", id="plain"),
        pytest.param("  Goblin \n", "Goblin", id="stripped-case-kept"),
        pytest.param("Red \u00a0  Knight", "Red Knight", id="inner-spaces-collapsed"),
        pytest.param("gobl*", "gobl*", id="prefix-star"),
        pytest.param("sp@m", "sp@m", id="symbols-with-letters"),
        pytest.param("バカ", "バカ", id="japanese"),
        pytest.param("дурак", "дурак", id="russian"),
        pytest.param("88", "88", id="digits"),
        pytest.param("x" * 100, "x" * 100, id="longest"),
    ],
)
def test_valid_blocked_words_are_stored_clean(word: str, stored: str) -> None:
    assert validate_blocked_word(word) == stored


@pytest.mark.parametrize(
    ("word", "message"),
    [
        pytest.param("", "cannot be empty", id="empty"),
        pytest.param("  \n ", "cannot be empty", id="whitespace"),
        pytest.param("x" * 101, "at most 100 characters long (this one has 101)", id="too-long"),
        pytest.param("bad\x00word", "control characters", id="nul"),
        pytest.param("bad\u200bword", "control characters", id="zero-width"),
        pytest.param("bad\u202eword", "control characters", id="bidi-override"),
        pytest.param("two\nlines", "line breaks", id="newline"),
        pytest.param("tab\tword", "tabs", id="tab"),
        pytest.param("***", "at least one letter or digit", id="only-stars"),
        pytest.param("!?!", "at least one letter or digit", id="only-punctuation"),
    ],
)
def test_invalid_blocked_words_are_refused_with_a_clear_message(word: str, message: str) -> None:
    with pytest.raises(InvalidSetting, match="A blocked word") as refused:
        validate_blocked_word(word)

    assert message in str(refused.value)
    assert isinstance(refused.value, StoryError)
