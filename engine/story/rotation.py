"""Turn order: pure functions over a story's participants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from storage.models import ParticipantStatus


class Seat(Protocol):
    """What the rotation needs to know of a participant."""

    id: int
    join_order: int
    status: ParticipantStatus


S = TypeVar("S", bound=Seat)


def active_seats(participants: Sequence[S]) -> list[S]:
    """Return active participants in rotation (join) order."""
    return sorted(
        (p for p in participants if p.status == ParticipantStatus.ACTIVE),
        key=lambda p: p.join_order,
    )


def next_after(participants: Sequence[S], join_order: int) -> S | None:
    """Return the active participant after JOIN_ORDER, wrapping around; None if nobody is active."""
    seats = active_seats(participants)
    for seat in seats:
        if seat.join_order > join_order:
            return seat
    return seats[0] if seats else None


def wraps_round(current_join_order: int, following_join_order: int) -> bool:
    """Tell whether moving from one seat to the next starts a new round."""
    return following_join_order <= current_join_order
