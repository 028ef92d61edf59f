"""Text every database can store: finding, describing and removing what none can."""

from __future__ import annotations

import pytest

from engine.safety import ContentPolicy, TextKind
from engine.safety.storable import find_unstorable, unstorable_reason, without_unstorable
from storage.models import ContentRating

NUL = "\x00"
SURROGATE = "\ud800"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Plain prose.",
        "Tabs\tand\nline breaks\r\n",
        "Emoji \U0001f409 and CJK \u9f8d and Zalgo a\u0300\u0301",
        "Other controls \x01\x1b\x7f are storable (other filters judge them)",
        "Noncharacters \ufffe\uffff and the replacement character \ufffd",
    ],
)
def test_storable_text_has_nothing_to_report(text: str) -> None:
    assert find_unstorable(text) is None
    assert without_unstorable(text) == text


@pytest.mark.parametrize(
    ("text", "index", "code_point", "what"),
    [
        (f"ab{NUL}c", 2, 0x0000, "a NUL byte"),
        (f"a{SURROGATE}", 1, 0xD800, "a broken character"),
        ("\udfff", 0, 0xDFFF, "a broken character"),
        # Half of a pair written as two escapes and never joined: both halves are broken.
        ("\ud83d\ude00", 0, 0xD83D, "a broken character"),
        (f"x{SURROGATE}y{NUL}", 1, 0xD800, "a broken character"),
        (f"x{NUL}y{SURROGATE}", 1, 0x0000, "a NUL byte"),
    ],
)
def test_the_first_unstorable_character_is_found_and_described(
    text: str, index: int, code_point: int, what: str
) -> None:
    found = find_unstorable(text)
    assert found is not None
    assert (found.index, found.code_point) == (index, code_point)
    assert found.description.startswith(what)
    assert str(found) == f"U+{code_point:04X} at character {index}"


def test_unstorable_characters_are_removed_or_replaced() -> None:
    text = f"A{NUL}li{SURROGATE}ce\ud83d\ude00"
    assert without_unstorable(text) == "Alice"
    marked = without_unstorable(text, replacement="\ufffd")
    assert marked == "A\ufffdli\ufffdce\ufffd\ufffd"
    assert find_unstorable(marked) is None
    marked.encode("utf-8")


def test_reason_names_the_field_and_what_to_do_without_echoing_the_character() -> None:
    for bad in (NUL, SURROGATE):
        found = find_unstorable(f"x{bad}")
        assert found is not None
        reason = unstorable_reason("The premise", found)
        assert reason.startswith("The premise contains a character that cannot be stored")
        assert "try again" in reason
        assert bad not in reason
        reason.encode("utf-8")


@pytest.mark.parametrize("kind", list(TextKind))
@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_every_kind_of_text_is_refused_first_naming_its_field(kind: TextKind, bad: str) -> None:
    policy = ContentPolicy(ContentRating.EVERYONE)
    verdict = policy.check(f"The keeper lights the lamp{bad}.", kind)
    assert not verdict.allowed
    assert verdict.rule == "unstorable_character"
    assert "cannot be stored" in verdict.reason and bad not in verdict.reason
    assert verdict.matched is not None and verdict.matched.startswith("U+")


def test_the_reason_says_which_text_is_refused() -> None:
    policy = ContentPolicy(ContentRating.EVERYONE)
    reasons = {kind: policy.check(f"Fine{NUL}", kind).reason for kind in TextKind}
    assert reasons[TextKind.TURN].startswith("Your turn ")
    assert reasons[TextKind.TABLE_TALK].startswith("Your message ")
    assert reasons[TextKind.TITLE].startswith("The title ")
    assert reasons[TextKind.PREMISE].startswith("The premise ")
    assert reasons[TextKind.AUTHORS_NOTE].startswith("The author's note ")
    assert reasons[TextKind.LORE].startswith("The lore entry ")


def test_an_unstorable_character_at_the_end_of_long_text_is_found() -> None:
    text = "word " * 1_000_000 + NUL
    found = find_unstorable(text)
    assert found is not None and found.index == len(text) - 1
