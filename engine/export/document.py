"""A story arranged for reading: the title page and passages in order, whatever the format."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from engine.errors import InvalidSetting
from engine.export.formats import ExportOptions
from engine.rules.genres import get_preset
from engine.story.views import StoryTranscript, TableTalkView
from storage.models import SessionStatus, TurnKind

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def human_date(moment: datetime) -> str:
    """Return a date as '1 January 2026' (UTC), independent of the process locale."""
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


@dataclass(frozen=True)
class Passage:
    """One turn of the story, credited to its author."""

    number: int
    author: str
    is_narrator: bool
    text: str
    created_at: datetime
    edited_at: datetime | None
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Aside:
    """An out-of-character remark made at the table."""

    author: str
    text: str
    created_at: datetime


Entry = Passage | Aside


@dataclass(frozen=True)
class StoryDocument:
    """Everything a reader sees, in reading order."""

    session_id: int
    title: str
    genre: str
    premise: str
    players: tuple[str, ...]
    finished: bool
    begun_at: datetime
    ended_at: datetime | None
    last_change: datetime
    entries: tuple[Entry, ...]

    @property
    def passage_count(self) -> int:
        """Return how many passages the story has."""
        return sum(1 for e in self.entries if isinstance(e, Passage))

    def dates_line(self) -> str:
        """Return when the story was begun and finished, or that it is still being written."""
        begun = f"Begun {human_date(self.begun_at)}"
        if self.finished:
            return f"{begun}, finished {human_date(self.ended_at or self.last_change)}"
        return f"{begun}, still being written (last passage {human_date(self.last_change)})"


def _genre_name(key: str) -> str:
    try:
        return get_preset(key).display_name
    except InvalidSetting:
        # A genre this installation no longer knows still deserves a readable label.
        return key.replace("_", " ").title()


def _arrange(transcript: StoryTranscript, options: ExportOptions) -> tuple[Passage | Aside, ...]:
    talk: dict[int, list[TableTalkView]] = defaultdict(list)
    if options.include_table_talk:
        for remark in transcript.table_talk:
            talk[remark.after_turn].append(remark)

    def asides(after: int) -> list[Aside]:
        return [Aside(r.author_name, r.text, r.created_at) for r in talk.pop(after, [])]

    # Remarks made before the first turn open the story.
    entries: list[Passage | Aside] = [*asides(0)]
    for turn in transcript.turns:
        entries.append(
            Passage(
                number=turn.number,
                author=turn.author_name,
                is_narrator=turn.kind == TurnKind.NARRATOR,
                text=turn.text,
                created_at=turn.created_at,
                edited_at=turn.edited_at,
                alternatives=turn.alternatives if options.include_alternatives else (),
            )
        )
        entries.extend(asides(turn.number))
    # Remarks placed after turns that were later undone close the story, in the order said.
    for after in sorted(talk):
        entries.extend(asides(after))
    return tuple(entries)


def build_document(transcript: StoryTranscript, options: ExportOptions) -> StoryDocument:
    """Arrange a transcript for reading, with table talk and alternatives as asked."""
    session = transcript.session
    moments = [session.created_at]
    for turn in transcript.turns:
        moments.append(turn.edited_at or turn.created_at)
    if session.ended_at is not None:
        moments.append(session.ended_at)
    return StoryDocument(
        session_id=session.id,
        title=session.title,
        genre=_genre_name(session.genre),
        premise=session.premise,
        players=tuple(p.display_name for p in session.participants),
        finished=session.status == SessionStatus.ENDED,
        begun_at=session.created_at,
        ended_at=session.ended_at,
        last_change=max(moments),
        entries=_arrange(transcript, options),
    )
