from __future__ import annotations

import pytest

from engine.worker.model.stopping import (
    StopPolicy,
    marker_stop_index,
    paragraph_stop_index,
    sentence_stop_index,
    trim_to_last_sentence,
)


@pytest.mark.parametrize(
    ("text", "max_paragraphs", "expected"),
    [
        ("One paragraph still going", 1, None),
        ("First.\n\nSecond", 1, 6),
        ("First.\n \nSecond", 1, 6),
        ("First.\n\n", 1, 6),
        ("First.\nStill first.\n\n", 1, 19),
        ("\n\nFirst.", 1, None),
        ("First.\n\nSecond.", 2, None),
        ("First.\n\nSecond.\n\nThird", 2, 15),
        ("First.\n\n\n\nSecond.\n\n", 2, 17),
    ],
)
def test_paragraph_stop_is_the_blank_line_after_the_last_allowed_paragraph(
    text: str, max_paragraphs: int, expected: int | None
) -> None:
    assert paragraph_stop_index(text, max_paragraphs) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The end.<|im_end|>", 8),
        ("Plain text", None),
        ("A.<|endoftext|> B<|im_start|>", 2),
        ("Then User: hi", 5),
    ],
)
def test_earliest_marker_is_found(text: str, expected: int | None) -> None:
    markers = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "User:")
    assert marker_stop_index(text, markers) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The door opened. The wind", "The door opened."),
        ("She ran! Did he follow? Nobody", "She ran! Did he follow?"),
        ('"Run." And then', '"Run."'),
        ("He whispered, “Come.” The night", "He whispered, “Come.”"),
        ("Silence… and then", "Silence…"),
        ("No full sentence here", "No full sentence here"),
        ("It cost 3.5 gold and", "It cost 3.5 gold and"),
        ("Done.", "Done."),
        ("", ""),
    ],
)
def test_trim_to_last_sentence_drops_a_trailing_fragment(text: str, expected: str) -> None:
    assert trim_to_last_sentence(text) == expected


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("The tide rose slowly over the rocks", False),
        ("The tide rose.\n\nMira:", True),
        ("The tide rose.\nmira: hello", True),
        ("The tide rose.\n**Mira**: hello", True),
        ("The tide rose.\nOld Tom: get inside!", True),
        ("The tide rose.\nNarrator: the tide rose", False),
        ("The keeper said: hurry", False),
        ("The tide rose.<|im_end|>", True),
        ("The tide rose.\nUser: what now", True),
        ("First.\n\nSecond.\n\nThird", True),
        ("First.\n\nSecond.", False),
    ],
)
def test_should_stop_at_paragraphs_players_speakers_and_markers(text: str, stops: bool) -> None:
    policy = StopPolicy(max_paragraphs=2, player_names=("Mira",))
    assert policy.should_stop(text) is stops


def test_known_player_line_stops_even_when_generic_speakers_are_allowed() -> None:
    policy = StopPolicy(player_names=("bob_the_bard",), stop_at_any_speaker=False)

    assert policy.should_stop("The song ended.\nbob_the_bard: encore!")
    assert not policy.should_stop("The song ended.\nOld Tom: encore!")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  The door creaked open. A cold wind", "The door creaked open."),
        (
            "The door creaked open.\n\nMira stepped in.\n\nThird",
            "The door creaked open.\n\nMira stepped in.",
        ),
        ("The wind howled.\nMira: I go in.", "The wind howled."),
        ("The wind howled.<|im_end|>junk", "The wind howled."),
        ("Narrator: The wind howled. And", "The wind howled."),
        ("Mira: I go in.", ""),
        ("a fragment without end", "a fragment without end"),
    ],
)
def test_finalize_cuts_strips_and_trims(raw: str, expected: str) -> None:
    policy = StopPolicy(max_paragraphs=2, player_names=("Mira",))
    assert policy.finalize(raw) == expected


def test_visible_text_keeps_the_unfinished_sentence() -> None:
    policy = StopPolicy()

    assert policy.visible_text(" The wind howled. The door ") == "The wind howled. The door"


def test_policy_is_hashable_and_comparable() -> None:
    assert StopPolicy(player_names=("A",)) == StopPolicy(player_names=("A",))
    assert len({StopPolicy(), StopPolicy(), StopPolicy(max_paragraphs=3)}) == 2


def test_zero_paragraphs_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_paragraphs"):
        StopPolicy(max_paragraphs=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two. Three.", None),
        ("One. Two. Three. Four", 16),
        ('He said "stop." Then', 15),
        ("Wait... what? Yes! And", 18),
    ],
    ids=["not past the last sentence yet", "cut after the limit", "closing quote", "ellipsis"],
)
def test_sentence_stop_is_after_the_last_allowed_sentence_once_more_follows(
    text: str, expected: int | None
) -> None:
    limit = 1 if text.startswith("He said") else 3
    assert sentence_stop_index(text, limit) == expected


def test_a_passage_is_cut_to_its_sentence_limit() -> None:
    policy = StopPolicy(max_paragraphs=5, max_sentences=2)

    assert policy.should_stop("The lamp went out. Mira gasped. Tobin")
    assert policy.finalize("The lamp went out. Mira gasped. Tobin ran.") == (
        "The lamp went out. Mira gasped."
    )
    with pytest.raises(ValueError, match="max_sentences"):
        StopPolicy(max_sentences=0)
