from __future__ import annotations

import pytest

from bot.discord.splitting import split_message


def words(text: str) -> list[str]:
    return text.split()


def test_short_text_is_one_message() -> None:
    assert split_message("  Once upon a time.  ") == ["Once upon a time."]


def test_empty_text_gives_no_messages() -> None:
    assert split_message("   \n ") == []


@pytest.mark.parametrize("limit", [20, 50, 200, 2000])
def test_chunks_respect_the_limit_and_keep_every_word(limit: int) -> None:
    text = " ".join(f"word{i}." if i % 7 == 0 else f"word{i}" for i in range(900))
    chunks = split_message(text, limit)
    assert all(len(chunk) <= limit for chunk in chunks)
    assert words(" ".join(chunks)) == words(text)


def test_paragraph_boundary_is_preferred() -> None:
    first = "The storm broke over the island. " * 20
    second = "Mira lit the lamp. " * 10
    chunks = split_message(first.strip() + "\n\n" + second.strip(), limit=len(first) + 40)
    assert chunks == [first.strip(), second.strip()]


def test_sentence_boundary_is_used_within_a_paragraph() -> None:
    text = "Tom waited. " * 10 + "Then the door creaked open slowly"
    chunks = split_message(text, limit=130)
    assert chunks[0].endswith("waited.")
    assert all(len(chunk) <= 130 for chunk in chunks)


def test_closing_quote_stays_with_its_sentence() -> None:
    text = '"Who is there?" ' * 8 + "nobody answered at all"
    chunks = split_message(text, limit=60)
    assert chunks[0].endswith('?"')


def test_words_are_not_split_when_avoidable() -> None:
    text = "lighthouse " * 300
    for chunk in split_message(text, limit=97):
        assert set(chunk.split()) == {"lighthouse"}


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    chunks = split_message("x" * 45, limit=20)
    assert chunks == ["x" * 20, "x" * 20, "x" * 5]


def test_invalid_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        split_message("text", limit=0)
