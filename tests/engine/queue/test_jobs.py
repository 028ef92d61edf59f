"""Wire format of jobs and events."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.protocol import (
    JobRequest,
    SamplingSettings,
    SummariseRequest,
    new_job_id,
)
from engine.queue import GenerationJob, JobCompleted, JobFailed, JobProgress
from engine.queue.jobs import (
    MalformedRequest,
    WireFormatError,
    decode_event,
    decode_job,
    encode_event,
    encode_job,
)

from support.protocol import narrate_request, requests

SUMMARY = SummariseRequest("Once.", (), SamplingSettings())


# No deadline: generated stories vary in size, and a busy machine is no failure.
@settings(deadline=None)
@given(session_id=st.integers(min_value=-(2**63), max_value=2**63 - 1), request=requests)
def test_job_survives_the_wire(session_id: int, request: JobRequest) -> None:
    job = GenerationJob(new_job_id(), session_id, request, 1_700_000_000.25)
    assert decode_job(encode_job(job)) == job


def test_job_kind_follows_its_request() -> None:
    narrate = GenerationJob("n", 1, narrate_request())
    summarise = GenerationJob("s", 1, SUMMARY)

    assert (narrate.kind, summarise.kind) == ("narrate", "summarise")
    assert json.loads(encode_job(narrate))["kind"] == "narrate"


def test_job_message_carries_the_request_under_its_own_key() -> None:
    data = json.loads(encode_job(GenerationJob("j", 2, SUMMARY, 5.0)))

    assert data == {
        "job_id": "j",
        "session_id": 2,
        "kind": "summarise",
        "request": SUMMARY.to_dict(),
        "enqueued_at": 5.0,
    }


@pytest.mark.parametrize(
    "event",
    [
        JobProgress("j1", 3, "Once upon"),
        JobCompleted("j1", 3, "summarise", "The end.", {"batch_size": 2}),
        JobFailed("j1", 3, "narrate", "RuntimeError: boom", dead_lettered=True),
    ],
)
def test_event_survives_the_wire(event):
    assert decode_event(encode_event(event)) == event


def message(**changes: object) -> str:
    data = json.loads(encode_job(GenerationJob("j", 1, SUMMARY, 1.0)))
    data.update(changes)
    return json.dumps({key: value for key, value in data.items() if value is not None})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (message(job_id=None), "lacks field 'job_id'"),
        (message(session_id=True), "session_id"),
        (message(kind="sing"), "unknown job kind"),
    ],
)
def test_unreadable_job_is_refused_with_the_reason(raw: str, problem: str) -> None:
    with pytest.raises(WireFormatError, match=problem) as refused:
        decode_job(raw)
    assert not isinstance(refused.value, MalformedRequest)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (message(request={**SUMMARY.to_dict(), "turns": "none"}), "'turns' must be a list"),
        (message(request=None, payload=SUMMARY.to_dict()), "lacks field 'request'"),
        (message(kind="narrate"), "missing field 'context'"),
        (message(enqueued_at="now"), "enqueued_at"),
    ],
)
def test_job_with_a_malformed_request_is_refused_by_name(raw: str, problem: str) -> None:
    with pytest.raises(MalformedRequest, match=problem) as refused:
        decode_job(raw)
    assert (refused.value.job_id, refused.value.session_id) == ("j", 1)


def test_unknown_event_type_is_refused():
    with pytest.raises(WireFormatError, match="unknown event type"):
        decode_event('{"job_id": "j", "session_id": 1, "type": "cheer"}')
