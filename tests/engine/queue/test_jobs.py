"""Wire format of jobs and events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.queue import GenerationJob, JobCompleted, JobFailed, JobProgress, new_job_id
from engine.queue.jobs import (
    WireFormatError,
    decode_event,
    decode_job,
    encode_event,
    encode_job,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    session_id=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    kind=st.sampled_from(["narrate", "summarise"]),
    payload=st.dictionaries(st.text(), json_values, max_size=5),
)
def test_job_survives_the_wire(session_id, kind, payload):
    job = GenerationJob(new_job_id(), session_id, kind, payload, 1_700_000_000.25)
    assert decode_job(encode_job(job)) == job


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


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"job_id": "j", "session_id": 1, "kind": "narrate", "payload": {}}', "enqueued_at"),
        (
            '{"job_id": "j", "session_id": true, "kind": "narrate", "payload": {},'
            ' "enqueued_at": 1}',
            "session_id",
        ),
        (
            '{"job_id": "j", "session_id": 1, "kind": "sing", "payload": {}, "enqueued_at": 1}',
            "unknown job kind",
        ),
    ],
)
def test_malformed_job_is_refused_with_the_reason(raw, problem):
    with pytest.raises(WireFormatError, match=problem):
        decode_job(raw)


def test_unknown_event_type_is_refused():
    with pytest.raises(WireFormatError, match="unknown event type"):
        decode_event('{"job_id": "j", "session_id": 1, "type": "cheer"}')


def test_job_ids_are_unique():
    assert len({new_job_id() for _ in range(1000)}) == 1000
