"""What producer and worker say to each other: typed requests, story context, sampling."""

from engine.protocol.bounds import field_bounds
from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.protocol.errors import JobRejected
from engine.protocol.requests import (
    JobKind,
    JobRequest,
    NarrateRequest,
    SummariseRequest,
    new_job_id,
    request_from_dict,
)
from engine.protocol.sampling import SamplingSettings

__all__ = [
    "ContextTurn",
    "JobKind",
    "JobRejected",
    "JobRequest",
    "LoreEntryView",
    "NarrateRequest",
    "SamplingSettings",
    "StoryContext",
    "SummariseRequest",
    "field_bounds",
    "new_job_id",
    "request_from_dict",
]
