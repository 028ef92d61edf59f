"""Generation jobs, the events sent back to the producer, and their JSON wire format."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast, get_args

JobKind = Literal["narrate", "summarise"]
JOB_KINDS: frozenset[str] = frozenset(get_args(JobKind))


@dataclass(frozen=True)
class GenerationJob:
    """Ask a worker to generate text for one story session."""

    job_id: str
    session_id: int
    kind: JobKind
    payload: dict[str, Any] = field(default_factory=dict)
    enqueued_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class JobProgress:
    """Partial text of a job still being generated (best-effort, may be dropped)."""

    job_id: str
    session_id: int
    text: str


@dataclass(frozen=True)
class JobCompleted:
    """Final text of a job; delivered at least once until the producer acknowledges it."""

    job_id: str
    session_id: int
    kind: JobKind
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed:
    """Final failure of a job; ``dead_lettered`` means it was set aside after repeated tries."""

    job_id: str
    session_id: int
    kind: JobKind
    reason: str
    dead_lettered: bool


FinalEvent: TypeAlias = JobCompleted | JobFailed
JobEvent: TypeAlias = JobProgress | JobCompleted | JobFailed


class WireFormatError(ValueError):
    """A queue message could not be decoded."""


def new_job_id() -> str:
    """Return a fresh, unique job id."""
    return uuid.uuid4().hex


def encode_job(job: GenerationJob) -> str:
    """Encode a job as JSON for the queue."""
    return json.dumps(
        {
            "job_id": job.job_id,
            "session_id": job.session_id,
            "kind": job.kind,
            "payload": job.payload,
            "enqueued_at": job.enqueued_at,
        },
        separators=(",", ":"),
    )


def decode_job(raw: str) -> GenerationJob:
    """Decode a job from its JSON form, raising WireFormatError when it is malformed."""
    data = _load_object(raw)
    try:
        return GenerationJob(
            job_id=_field(data, "job_id", str),
            session_id=_field(data, "session_id", int),
            kind=_kind(data),
            payload=_field(data, "payload", dict),
            enqueued_at=float(_field(data, "enqueued_at", (int, float))),
        )
    except KeyError as missing:
        raise WireFormatError(f"job message lacks field {missing}") from None


def encode_event(event: JobEvent) -> str:
    """Encode an event as JSON for the queue."""
    data: dict[str, Any] = {"job_id": event.job_id, "session_id": event.session_id}
    if isinstance(event, JobProgress):
        data.update(type="progress", text=event.text)
    elif isinstance(event, JobCompleted):
        data.update(type="completed", kind=event.kind, text=event.text, meta=event.meta)
    else:
        data.update(
            type="failed",
            kind=event.kind,
            reason=event.reason,
            dead_lettered=event.dead_lettered,
        )
    return json.dumps(data, separators=(",", ":"))


def decode_event(raw: str) -> JobEvent:
    """Decode an event from its JSON form, raising WireFormatError when it is malformed."""
    data = _load_object(raw)
    try:
        job_id = _field(data, "job_id", str)
        session_id = _field(data, "session_id", int)
        event_type = data["type"]
        if event_type == "progress":
            return JobProgress(job_id, session_id, _field(data, "text", str))
        if event_type == "completed":
            return JobCompleted(
                job_id, session_id, _kind(data), _field(data, "text", str),
                _field(data, "meta", dict),
            )
        if event_type == "failed":
            return JobFailed(
                job_id, session_id, _kind(data), _field(data, "reason", str),
                _field(data, "dead_lettered", bool),
            )
    except KeyError as missing:
        raise WireFormatError(f"event message lacks field {missing}") from None
    raise WireFormatError(f"unknown event type {event_type!r}")


def _load_object(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as error:
        raise WireFormatError(f"queue message is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise WireFormatError("queue message is not a JSON object")
    return data


def _field(data: dict[str, Any], name: str, expected: type | tuple[type, ...]) -> Any:
    value = data[name]
    # bool is an int subclass; a session id or a timestamp must not be a bool.
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise WireFormatError(f"field {name!r} has the wrong type: {value!r}")
    return value


def _kind(data: dict[str, Any]) -> JobKind:
    kind = _field(data, "kind", str)
    if kind not in JOB_KINDS:
        raise WireFormatError(f"unknown job kind {kind!r}")
    return cast(JobKind, kind)
