"""Generation jobs, the events sent back to the producer, and their JSON wire format."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast, get_args

from engine.protocol.errors import JobRejected
from engine.protocol.requests import JobKind, JobRequest, request_from_dict

JOB_KINDS: frozenset[str] = frozenset(get_args(JobKind))


@dataclass(frozen=True)
class GenerationJob:
    """Ask a worker to generate text for one story session."""

    job_id: str
    session_id: int
    request: JobRequest
    enqueued_at: float = field(default_factory=time.time)
    # The story's server: workers share their slots fairly between servers (None: unknown).
    guild_id: int | None = None

    @property
    def kind(self) -> JobKind:
        """Return what the job asks for, as its request's type says."""
        return self.request.kind


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


class MalformedRequest(WireFormatError):
    """A job message names its job, but its request cannot be read: fail it, never retry it."""

    def __init__(self, job_id: str, session_id: int, kind: JobKind, reason: str) -> None:
        super().__init__(f"job {job_id} has a malformed request: {reason}")
        self.job_id = job_id
        self.session_id = session_id
        self.kind = kind
        self.reason = reason


def encode_job(job: GenerationJob) -> str:
    """Encode a job as JSON for the queue."""
    data: dict[str, Any] = {
        "job_id": job.job_id,
        "session_id": job.session_id,
        "kind": job.kind,
        "request": job.request.to_dict(),
        "enqueued_at": job.enqueued_at,
    }
    if job.guild_id is not None:
        data["guild_id"] = job.guild_id
    return json.dumps(data, separators=(",", ":"))


def decode_job(raw: str) -> GenerationJob:
    """Decode a job from its JSON form, raising WireFormatError when it is malformed.

    A message that names its job (id, session, kind) but whose request or timestamp
    cannot be read raises MalformedRequest, so the job can be failed by name.
    """
    data = _load_object(raw)
    try:
        job_id = _field(data, "job_id", str)
        session_id = _field(data, "session_id", int)
        kind = _kind(data)
    except KeyError as missing:
        raise WireFormatError(f"job message lacks field {missing}") from None
    try:
        request = request_from_dict(kind, data["request"])
        enqueued_at = float(_field(data, "enqueued_at", (int, float)))
        # Optional: jobs queued by an older bot carry no server.
        guild_id = _field(data, "guild_id", int) if data.get("guild_id") is not None else None
    except KeyError as missing:
        raise MalformedRequest(
            job_id, session_id, kind, f"job message lacks field {missing}"
        ) from None
    except (JobRejected, WireFormatError) as error:
        raise MalformedRequest(job_id, session_id, kind, str(error)) from error
    return GenerationJob(job_id, session_id, request, enqueued_at, guild_id)


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
                job_id,
                session_id,
                _kind(data),
                _field(data, "text", str),
                _field(data, "meta", dict),
            )
        if event_type == "failed":
            return JobFailed(
                job_id,
                session_id,
                _kind(data),
                _field(data, "reason", str),
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
