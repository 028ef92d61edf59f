"""Read-only snapshots the engine hands to front-ends (no ORM objects leave the engine)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.models import (
    LoreEntry,
    Participant,
    ParticipantStatus,
    SessionStatus,
    StorySession,
    StorySummary,
    TableTalk,
    Turn,
    TurnKind,
)


@dataclass(frozen=True)
class ParticipantView:
    """A player in a story."""

    id: int
    user_id: int
    display_name: str
    join_order: int
    status: ParticipantStatus
    consecutive_timeouts: int

    @classmethod
    def of(cls, row: Participant) -> ParticipantView:
        """Snapshot a participant row."""
        return cls(
            id=row.id,
            user_id=row.user_id,
            display_name=row.display_name,
            join_order=row.join_order,
            status=row.status,
            consecutive_timeouts=row.consecutive_timeouts,
        )


@dataclass(frozen=True)
class SessionView:
    """A story session with its rotation."""

    id: int
    guild_id: int
    channel_id: int
    title: str
    genre: str
    premise: str
    authors_note: str
    age_restricted: bool
    status: SessionStatus
    host_id: int
    participants: tuple[ParticipantView, ...]
    current_player: ParticipantView | None
    turn_deadline: datetime | None
    turn_count: int
    narrator_job_id: str | None
    narrator_retry_turn: int | None
    created_at: datetime
    ended_at: datetime | None
    # When the players' vote on the narrator's latest passage closes (None: no vote open).
    vote_closes_at: datetime | None = None

    @property
    def narrator_pending(self) -> bool:
        """Tell whether the narrator owes a passage before the next player writes."""
        return self.narrator_job_id is not None

    @property
    def voting(self) -> bool:
        """Tell whether the players are choosing the narrator's latest passage."""
        return self.vote_closes_at is not None

    @property
    def rotation(self) -> tuple[ParticipantView, ...]:
        """Return the active players in turn order."""
        return tuple(p for p in self.participants if p.status == ParticipantStatus.ACTIVE)

    @classmethod
    def of(cls, row: StorySession) -> SessionView:
        """Snapshot a session row and its participants."""
        participants = tuple(
            ParticipantView.of(p) for p in sorted(row.participants, key=lambda p: p.join_order)
        )
        current = next((p for p in participants if p.id == row.current_participant_id), None)
        return cls(
            id=row.id,
            guild_id=row.guild_id,
            channel_id=row.channel_id,
            title=row.title,
            genre=row.genre,
            premise=row.premise,
            authors_note=row.authors_note,
            age_restricted=row.age_restricted,
            status=row.status,
            host_id=row.host_id,
            participants=participants,
            current_player=current if row.status == SessionStatus.ACTIVE else None,
            turn_deadline=row.turn_deadline,
            turn_count=row.turn_count,
            narrator_job_id=row.narrator_job_id,
            narrator_retry_turn=row.narrator_retry_turn,
            created_at=row.created_at,
            ended_at=row.ended_at,
            vote_closes_at=row.vote_closes_at if row.vote_turn is not None else None,
        )


@dataclass(frozen=True)
class TurnView:
    """One passage of a story."""

    number: int
    kind: TurnKind
    author_id: int | None
    author_name: str
    text: str
    discord_message_id: int | None
    job_id: str | None
    alternatives: tuple[str, ...]
    created_at: datetime
    edited_at: datetime | None

    @property
    def is_narrator(self) -> bool:
        """Tell whether the narrator wrote this passage."""
        return self.kind == TurnKind.NARRATOR

    @classmethod
    def of(cls, row: Turn) -> TurnView:
        """Snapshot a turn row (its alternatives must be loaded)."""
        return cls(
            number=row.number,
            kind=row.kind,
            author_id=row.author_id,
            author_name=row.author_name,
            text=row.text,
            discord_message_id=row.discord_message_id,
            job_id=row.job_id,
            alternatives=tuple(a.text for a in row.alternatives),
            created_at=row.created_at,
            edited_at=row.edited_at,
        )


@dataclass(frozen=True)
class LoreView:
    """A lore entry."""

    name: str
    keywords: tuple[str, ...]
    text: str
    created_by: int

    @classmethod
    def of(cls, row: LoreEntry) -> LoreView:
        """Snapshot a lore row."""
        return cls(
            name=row.name, keywords=tuple(row.keywords), text=row.text, created_by=row.created_by
        )


@dataclass(frozen=True)
class SummaryView:
    """One version of the rolling summary."""

    text: str
    covers_through_turn: int
    created_at: datetime

    @classmethod
    def of(cls, row: StorySummary) -> SummaryView:
        """Snapshot a summary row."""
        return cls(
            text=row.text, covers_through_turn=row.covers_through_turn, created_at=row.created_at
        )


@dataclass(frozen=True)
class TableTalkView:
    """An out-of-character remark, placed after turn AFTER_TURN."""

    author_id: int
    author_name: str
    text: str
    after_turn: int
    created_at: datetime

    @classmethod
    def of(cls, row: TableTalk) -> TableTalkView:
        """Snapshot a table-talk row."""
        return cls(
            author_id=row.author_id,
            author_name=row.author_name,
            text=row.text,
            after_turn=row.after_turn,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class NarrationRequest:
    """The engine asks for a narrator passage: the front-end enqueues a job with this id."""

    session_id: int
    job_id: str
    retry_of_turn: int | None = None


@dataclass(frozen=True)
class TurnOutcome:
    """What happened after a turn was stored."""

    session: SessionView
    turn: TurnView
    narration: NarrationRequest | None


@dataclass(frozen=True)
class SkipOutcome:
    """Result of a skip request or vote."""

    session: SessionView
    skipped: ParticipantView | None
    votes: int
    votes_needed: int
    cancelled_narration: bool = False


@dataclass(frozen=True)
class TimeoutOutcome:
    """A player ran out of time and was skipped."""

    session: SessionView
    skipped: ParticipantView
    marked_away: bool


@dataclass(frozen=True)
class DepartureOutcome:
    """A player left the server: away in this story, and skipped if it was their turn."""

    session: SessionView
    departed: ParticipantView
    had_turn: bool


@dataclass(frozen=True)
class CatchUpPoint:
    """Where to read a story's channel from after the bot missed messages.

    Messages older than the story's last stored message (AFTER_MESSAGE_ID), or than its
    last change (CHANGED_AT: whatever was written before was seen, or is stale now), are
    not read again.
    """

    session_id: int
    guild_id: int
    channel_id: int
    after_message_id: int | None
    changed_at: datetime


@dataclass(frozen=True)
class UndoOutcome:
    """A turn was taken back and the rotation restored."""

    session: SessionView
    removed: TurnView


@dataclass(frozen=True)
class NarrationOutcome:
    """A narrator passage was stored (or had been already)."""

    session: SessionView
    turn: TurnView
    duplicate: bool
    # The players vote among candidates of this passage before the story goes on.
    vote: PassageVoteView | None = None


@dataclass(frozen=True)
class PassageVoteView:
    """An open vote among a narrator passage's candidates."""

    turn_number: int
    # The reranker's pick first, then the runners-up in its order.
    candidates: tuple[str, ...]
    closes_at: datetime


@dataclass(frozen=True)
class VoteTally:
    """The votes cast so far, one count per candidate, and the voter's own choice."""

    counts: tuple[int, ...]
    choice: int
    closes_at: datetime


@dataclass(frozen=True)
class VoteClosed:
    """A vote on a narrator passage closed: the winner is the passage, the next turn begins."""

    session: SessionView
    turn: TurnView
    counts: tuple[int, ...]
    winner: int


@dataclass(frozen=True)
class Recap:
    """What a player needs to catch up."""

    session: SessionView
    summary: SummaryView | None
    recent_turns: tuple[TurnView, ...]


@dataclass(frozen=True)
class StoryTranscript:
    """Everything about one story, for export."""

    session: SessionView
    turns: tuple[TurnView, ...]
    lore: tuple[LoreView, ...]
    summaries: tuple[SummaryView, ...]
    table_talk: tuple[TableTalkView, ...] = ()
