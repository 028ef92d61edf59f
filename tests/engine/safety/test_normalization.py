from __future__ import annotations

import pytest

from engine.safety import normalize

CASES = [
    pytest.param("Hello, World!", "hello, world!", id="case-folded-punctuation-kept"),
    pytest.param("Straße", "strasse", id="full-case-folding"),
    pytest.param("\uff26\uff55\uff4c\uff4c \uff37\uff49\uff44\uff54\uff48", "full width", id="fw"),
    pytest.param("\U0001d41b\U0001d428\U0001d425\U0001d41d", "bold", id="math-alphanumerics"),
    pytest.param("\u24b7\u24d4\u24db\u24db", "bell", id="circled-letters"),
    pytest.param("\ufb01ne", "fine", id="ligature"),
    pytest.param("a\u200bb\u200cc\u200dd\u2060e\ufeff", "abcde", id="zero-width-characters"),
    pytest.param("soft\u00adhyphen", "softhyphen", id="soft-hyphen"),
    pytest.param("\u202eevil\u202c", "evil", id="bidi-controls"),
    pytest.param("a\u2800b\u3164c", "abc", id="blank-fillers"),
    pytest.param("caf\u00e9 na\u00efve", "cafe naive", id="accents"),
    pytest.param("z\u0337\u0321a\u0334\u0317l\u0338g\u0335o\u0336", "zalgo", id="zalgo-marks"),
    pytest.param("\u0130stanbul", "istanbul", id="dotted-capital-i"),
    pytest.param("h\u0435llo", "hello", id="cyrillic-e-in-latin-word"),
    pytest.param("\u0397\u0395LL\u039f", "hello", id="greek-capitals-in-latin-word"),
    pytest.param("\u0434\u0443\u0440a\u043a", "дурак", id="latin-a-in-russian"),
    pytest.param("Привет мир", "привет мир", id="russian-unchanged"),
    pytest.param("ёлка", "елка", id="russian-yo-folds"),
    pytest.param("バカ", "バカ", id="kana-voicing-mark-kept"),
    pytest.param("नमस्ते", "नमस्ते", id="devanagari-vowel-signs-kept"),
    pytest.param("sh1t @ss 2025", "sh1t @ss 2025", id="leet-left-to-matching"),
    pytest.param("  spaced   out  ", "  spaced   out  ", id="whitespace-kept"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_normalize_gives_the_matching_form(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_normalize_is_idempotent(text: str, expected: str) -> None:
    assert normalize(normalize(text)) == normalize(text)
