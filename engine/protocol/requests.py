"""What a producer asks a worker for: typed requests and their strict JSON form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

from pydantic import ValidationError

from engine.protocol.context import ContextTurn, StoryContext
from engine.protocol.errors import JobRejected
from engine.protocol.sampling import SamplingSettings
from engine.protocol.wire import WireObject

JobKind: TypeAlias = Literal["narrate", "summarise"]


def new_job_id() -> str:
    """Return a fresh, unique job id."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class NarrateRequest:
    """Ask for the narrator's next passage of one story."""

    kind: ClassVar[Literal["narrate"]] = "narrate"

    context: StoryContext
    sampling: SamplingSettings
    # Kept out of generation itself; the producer still checks the passage it gets back.
    banned_phrases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict that ``from_dict`` turns back into an equal request."""
        return {
            "context": self.context.to_dict(),
            "sampling": self.sampling.model_dump(),
            "banned_phrases": list(self.banned_phrases),
        }

    @classmethod
    def from_dict(cls, data: object) -> NarrateRequest:
        """Build a request from ``to_dict`` output, raising JobRejected naming a bad field."""
        wire = WireObject(data, ("context", "sampling", "banned_phrases"))
        return cls(
            context=StoryContext.from_dict(wire.value("context"), path=wire.path("context")),
            sampling=_sampling(wire),
            banned_phrases=wire.texts("banned_phrases"),
        )


@dataclass(frozen=True)
class SummariseRequest:
    """Ask for a rolling summary: the previous one with older turns folded in."""

    kind: ClassVar[Literal["summarise"]] = "summarise"

    previous_summary: str
    turns: tuple[ContextTurn, ...]
    sampling: SamplingSettings

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict that ``from_dict`` turns back into an equal request."""
        return {
            "previous_summary": self.previous_summary,
            "turns": [turn.to_dict() for turn in self.turns],
            "sampling": self.sampling.model_dump(),
        }

    @classmethod
    def from_dict(cls, data: object) -> SummariseRequest:
        """Build a request from ``to_dict`` output, raising JobRejected naming a bad field."""
        wire = WireObject(data, ("previous_summary", "turns", "sampling"))
        return cls(
            previous_summary=wire.text("previous_summary"),
            turns=tuple(
                ContextTurn.from_dict(item, path=where) for where, item in wire.items("turns")
            ),
            sampling=_sampling(wire),
        )


JobRequest: TypeAlias = NarrateRequest | SummariseRequest

REQUEST_TYPES: dict[JobKind, type[NarrateRequest] | type[SummariseRequest]] = {
    NarrateRequest.kind: NarrateRequest,
    SummariseRequest.kind: SummariseRequest,
}


def request_from_dict(kind: JobKind, data: object) -> JobRequest:
    """Build the request of a job of this kind, raising JobRejected naming a bad field."""
    return REQUEST_TYPES[kind].from_dict(data)


def _sampling(wire: WireObject) -> SamplingSettings:
    # Every setting is sent, so a renamed one is a missing field here, not a silent default.
    path = wire.path("sampling")
    data = WireObject(wire.value("sampling"), tuple(SamplingSettings.model_fields), path=path)
    try:
        return SamplingSettings.model_validate(
            {name: data.value(name) for name in SamplingSettings.model_fields}, strict=True
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join((path, *map(str, error['loc'])))!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise JobRejected(problems) from None
