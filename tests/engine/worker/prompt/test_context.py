import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.protocol.context import LoreEntryView, StoryContext, StoryContextFormatError, TurnView

texts = st.text(max_size=40)
lore_entries = st.builds(
    LoreEntryView, name=texts, keywords=st.lists(texts, max_size=4).map(tuple), text=texts
)
turns = st.builds(
    TurnView,
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    author=texts,
    is_narrator=st.booleans(),
    text=texts,
)
contexts = st.builds(
    StoryContext,
    title=texts,
    genre_key=texts,
    genre_instructions=texts,
    premise=texts,
    player_names=st.lists(texts, max_size=5).map(tuple),
    summary=texts,
    lore=st.lists(lore_entries, max_size=4).map(tuple),
    authors_note=texts,
    recent_turns=st.lists(turns, max_size=6).map(tuple),
    next_player=st.none() | texts,
)


@given(contexts)
def test_context_survives_a_json_round_trip_unchanged(context: StoryContext) -> None:
    wire = json.dumps(context.to_dict())

    assert StoryContext.from_dict(json.loads(wire)) == context


def sample_dict() -> dict[str, Any]:
    return StoryContext(
        title="The Tower",
        genre_key="fantasy",
        genre_instructions="Be epic.",
        premise="A tower rises.",
        player_names=("Alice", "Bob"),
        summary="",
        lore=(LoreEntryView("Tower", ("tower",), "Tall."),),
        authors_note="",
        recent_turns=(TurnView(1, "Alice", False, "Hi."),),
        next_player=None,
    ).to_dict()


def test_unknown_keys_are_ignored_so_newer_senders_stay_readable() -> None:
    data = sample_dict() | {"format_hint": 2}

    assert StoryContext.from_dict(data).title == "The Tower"


@pytest.mark.parametrize(
    ("path", "bad_value", "complaint"),
    [
        (("title",), None, "'title' must be a string"),
        (("player_names",), "Alice", "'player_names' must be a list of strings"),
        (("player_names",), ["Alice", 3], "'player_names' must be a list of strings"),
        (("next_player",), 7, "'next_player' must be a string or null"),
        (("lore",), ["Tower"], "'lore' must be a list of objects"),
        (("recent_turns", 0, "number"), "1", "'number' must be an integer"),
        (("recent_turns", 0, "number"), True, "'number' must be an integer"),
        (("recent_turns", 0, "is_narrator"), 0, "'is_narrator' must be a boolean"),
        (("lore", 0, "keywords"), [1], "'keywords' must be a list of strings"),
    ],
)
def test_malformed_field_is_refused_with_its_name(
    path: tuple[Any, ...], bad_value: object, complaint: str
) -> None:
    data = sample_dict()
    holder: Any = data
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = bad_value

    with pytest.raises(StoryContextFormatError, match=complaint):
        StoryContext.from_dict(data)


def test_missing_field_is_refused_with_its_name() -> None:
    data = sample_dict()
    del data["summary"]

    with pytest.raises(StoryContextFormatError, match="missing field 'summary'"):
        StoryContext.from_dict(data)
