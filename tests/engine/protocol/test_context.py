"""The story context's JSON form: it round-trips, and a bad field is refused by its path."""

import json
from typing import Any

import pytest
from hypothesis import given, settings

from engine.protocol import ContextTurn, JobRejected, LoreEntryView, StoryContext

from support.protocol import contexts


# No deadline: generated stories vary in size, and a busy machine is no failure.
@settings(deadline=None)
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
        recent_turns=(ContextTurn(1, "Alice", False, "Hi."),),
        next_player=None,
    ).to_dict()


@pytest.mark.parametrize(
    ("path", "bad_value", "complaint"),
    [
        (("title",), None, "field 'title' must be a string"),
        (("player_names",), "Alice", "field 'player_names' must be a list of strings"),
        (("player_names",), ["Alice", 3], "field 'player_names' must be a list of strings"),
        (("next_player",), 7, "field 'next_player' must be a string or null"),
        (("lore",), "Tower", "field 'lore' must be a list"),
        (("lore", 0), "Tower", r"field 'lore\[0\]' must be an object, not str"),
        (("recent_turns", 0, "number"), "1", r"field 'recent_turns\[0\].number' must be an int"),
        (("recent_turns", 0, "number"), True, r"'recent_turns\[0\].number' must be an integer"),
        (("recent_turns", 0, "is_narrator"), 0, r"'recent_turns\[0\].is_narrator' must be a bool"),
        (("lore", 0, "keywords"), [1], r"field 'lore\[0\].keywords' must be a list of strings"),
    ],
)
def test_malformed_field_is_refused_with_its_path(
    path: tuple[Any, ...], bad_value: object, complaint: str
) -> None:
    data = sample_dict()
    holder: Any = data
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = bad_value

    with pytest.raises(JobRejected, match=complaint):
        StoryContext.from_dict(data)


def test_missing_field_is_refused_with_its_name() -> None:
    data = sample_dict()
    del data["summary"]

    with pytest.raises(JobRejected, match="missing field 'summary'"):
        StoryContext.from_dict(data)


def test_unknown_field_is_refused_rather_than_silently_dropped() -> None:
    # A field the worker ignored would be a part of the story the narrator never sees.
    data = sample_dict()
    data["recent_turns"][0]["mood"] = "grim"

    with pytest.raises(JobRejected, match=r"unknown field 'recent_turns\[0\].mood'"):
        StoryContext.from_dict(data)


def test_context_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(JobRejected, match="must be an object, not list"):
        StoryContext.from_dict([])
