"""The requests a worker receives: they round-trip, and anything else is refused by name."""

import json
from typing import Any

import pytest
from hypothesis import given, settings

from engine.protocol import (
    ContextTurn,
    JobRejected,
    JobRequest,
    NarrateRequest,
    SamplingSettings,
    StoryContext,
    SummariseRequest,
    new_job_id,
    request_from_dict,
)

from support.protocol import requests

CONTEXT = StoryContext(
    title="The Tower",
    genre_key="fantasy",
    genre_instructions="Be epic.",
    premise="A tower rises.",
    player_names=("Alice", "Bob"),
    summary="",
    lore=(),
    authors_note="",
    recent_turns=(ContextTurn(1, "Alice", False, "Hi."),),
    next_player="Bob",
)
SAMPLING = SamplingSettings(temperature=0.5, max_new_tokens=64)


def narrate_dict() -> dict[str, Any]:
    return NarrateRequest(CONTEXT, SAMPLING, ("moonstone",)).to_dict()


def summarise_dict() -> dict[str, Any]:
    return SummariseRequest("Once.", CONTEXT.recent_turns, SAMPLING).to_dict()


# No deadline: generated stories vary in size, and a busy machine is no failure.
@settings(deadline=None)
@given(requests)
def test_request_survives_a_json_round_trip_unchanged(request: JobRequest) -> None:
    wire = json.loads(json.dumps(request.to_dict()))

    assert type(request).from_dict(wire) == request
    assert request_from_dict(request.kind, wire) == request


def test_each_request_names_its_kind() -> None:
    assert NarrateRequest(CONTEXT, SAMPLING).kind == "narrate"
    assert SummariseRequest("", (), SAMPLING).kind == "summarise"


def test_every_sampling_setting_is_sent() -> None:
    # A setting left out would be read back as the worker's default, not the story's.
    assert set(narrate_dict()["sampling"]) == set(SamplingSettings.model_fields)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d.update(retry_of_turn=3), "unknown field 'retry_of_turn'"),
        (lambda d: d.pop("banned_phrases"), "missing field 'banned_phrases'"),
        (lambda d: d.pop("context"), "missing field 'context'"),
        (lambda d: d["context"].pop("premise"), "missing field 'context.premise'"),
        (lambda d: d["context"].update(title=5), "field 'context.title' must be a string"),
        (
            lambda d: d["context"]["recent_turns"][0].update(author=None),
            r"field 'context.recent_turns\[0\].author' must be a string",
        ),
        (
            lambda d: d.update(banned_phrases="moonstone"),
            "field 'banned_phrases' must be a list of strings",
        ),
        (lambda d: d.update(sampling=None), "field 'sampling' must be an object, not NoneType"),
        (lambda d: d["sampling"].pop("top_k"), "missing field 'sampling.top_k'"),
        (lambda d: d["sampling"].update(no_such=1), "unknown field 'sampling.no_such'"),
        (lambda d: d["sampling"].update(temperature=9), "field 'sampling.temperature': .*less"),
        (lambda d: d["sampling"].update(temperature="hot"), "field 'sampling.temperature'"),
        (lambda d: d["sampling"].update(top_k=True), "field 'sampling.top_k'"),
        (lambda d: d["sampling"].update(top_k="40"), "field 'sampling.top_k'"),
    ],
)
def test_malformed_narrate_request_is_refused_naming_the_field(
    change: Any, complaint: str
) -> None:
    data = narrate_dict()
    change(data)

    with pytest.raises(JobRejected, match=complaint):
        NarrateRequest.from_dict(data)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda d: d.update(covers_through_turn=4), "unknown field 'covers_through_turn'"),
        (lambda d: d.pop("previous_summary"), "missing field 'previous_summary'"),
        (lambda d: d.update(previous_summary=None), "field 'previous_summary' must be a string"),
        (lambda d: d.update(turns={}), "field 'turns' must be a list"),
        (lambda d: d["turns"][0].update(number="1"), r"field 'turns\[0\].number' must be an int"),
        (lambda d: d["turns"][0].pop("text"), r"missing field 'turns\[0\].text'"),
        (lambda d: d["sampling"].update(max_new_tokens=1), "field 'sampling.max_new_tokens'"),
    ],
)
def test_malformed_summarise_request_is_refused_naming_the_field(
    change: Any, complaint: str
) -> None:
    data = summarise_dict()
    change(data)

    with pytest.raises(JobRejected, match=complaint):
        SummariseRequest.from_dict(data)


def test_request_of_the_other_kind_is_refused() -> None:
    with pytest.raises(JobRejected, match="missing field 'context'"):
        request_from_dict("narrate", summarise_dict())


def test_request_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(JobRejected, match="the request must be an object, not list"):
        NarrateRequest.from_dict([])


def test_job_ids_are_unique() -> None:
    assert len({new_job_id() for _ in range(1000)}) == 1000
