"""SQLAlchemy models: the whole persistent state of every story."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store aware datetimes as UTC; refuse naive ones."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings (no native PostgreSQL ENUM): adding a value needs no migration dance.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda members: [m.value for m in members],
    )


class SessionStatus(enum.StrEnum):
    """Life-cycle state of a story session."""

    LOBBY = "lobby"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class ParticipantStatus(enum.StrEnum):
    """Whether a participant takes part in the rotation."""

    ACTIVE = "active"
    AWAY = "away"
    LEFT = "left"


class TurnKind(enum.StrEnum):
    """Who wrote a turn."""

    PLAYER = "player"
    NARRATOR = "narrator"


class NarratorCadence(enum.StrEnum):
    """When the narrator speaks."""

    EVERY_TURN = "every_turn"
    EVERY_ROUND = "every_round"
    ON_DEMAND = "on_demand"


class NarratorChoice(enum.StrEnum):
    """Who picks the narrator's passage among its best candidates."""

    # The reranker's best candidate is the passage.
    BEST = "best"
    # The players vote among the best candidates for a set time.
    VOTE = "vote"


class ContentRating(enum.StrEnum):
    """How explicit stories on a server (or in a channel) may be."""

    EVERYONE = "everyone"
    TEEN = "teen"
    MATURE = "mature"


class ViolationAction(enum.StrEnum):
    """What a filter did about a piece of text."""

    REFUSED = "refused"
    REGENERATED = "regenerated"
    REPLACED = "replaced"
    FLAGGED = "flagged"
    RATE_LIMITED = "rate_limited"
    # The story was paused because its text could not be posted.
    PAUSED = "paused"
    # The story was ended because its channel or thread was deleted.
    ENDED = "ended"


class GuildSettings(Base):
    """Per-server configuration set by moderators."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    narrator_cadence: Mapped[NarratorCadence] = mapped_column(
        _enum(NarratorCadence, "narrator_cadence"), default=NarratorCadence.EVERY_TURN
    )
    turn_timeout_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    max_consecutive_timeouts: Mapped[int] = mapped_column(Integer, default=2)
    min_turn_chars: Mapped[int] = mapped_column(Integer, default=1)
    max_turn_chars: Mapped[int] = mapped_column(Integer, default=1500)
    moderator_role_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    starter_role_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    default_genre: Mapped[str] = mapped_column(String(40), default="fantasy")
    custom_genre_instructions: Mapped[str] = mapped_column(Text, default="")
    prefer_threads: Mapped[bool] = mapped_column(Boolean, default=False)
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_rating: Mapped[ContentRating] = mapped_column(
        _enum(ContentRating, "content_rating"), default=ContentRating.EVERYONE
    )
    blocked_words: Mapped[list[str]] = mapped_column(JSON, default=list)
    narrator_regenerations: Mapped[int] = mapped_column(Integer, default=2)
    narrator_choice: Mapped[NarratorChoice] = mapped_column(
        _enum(NarratorChoice, "narrator_choice"), default=NarratorChoice.BEST
    )
    vote_seconds: Mapped[int] = mapped_column(Integer, default=45)
    max_repeated_characters: Mapped[int] = mapped_column(Integer, default=12)
    max_repeated_words: Mapped[int] = mapped_column(Integer, default=5)
    max_emoji: Mapped[int] = mapped_column(Integer, default=6)
    max_combining_marks: Mapped[int] = mapped_column(Integer, default=4)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )


class ChannelSettings(Base):
    """Per-channel overrides of a server's configuration."""

    __tablename__ = "channel_settings"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    content_rating: Mapped[ContentRating | None] = mapped_column(
        _enum(ContentRating, "content_rating"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )


class StorySession(Base):
    """One story played in one channel (or thread)."""

    __tablename__ = "story_sessions"
    __table_args__ = (
        # One unfinished story per channel, enforced by the database itself.
        Index(
            "uq_story_sessions_open_channel",
            "channel_id",
            unique=True,
            sqlite_where=text("status != 'ended'"),
            postgresql_where=text("status != 'ended'"),
        ),
        Index("ix_story_sessions_guild_id", "guild_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    parent_channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    genre: Mapped[str] = mapped_column(String(40))
    premise: Mapped[str] = mapped_column(Text, default="")
    authors_note: Mapped[str] = mapped_column(Text, default="")
    # Discord's age-restricted flag of the channel: only there may a `mature` rating apply.
    age_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus, "session_status"), default=SessionStatus.LOBBY
    )
    host_id: Mapped[int] = mapped_column(BigInteger)
    # Rotation state. current_participant_id is the player whose turn it is while active.
    # No foreign key: participants already reference sessions, and a cycle buys nothing here.
    current_participant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    turn_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Bumped on every change of whose turn it is; skip votes and timers are tied to it.
    rotation_step: Mapped[int] = mapped_column(Integer, default=0)
    # The rotation step whose player was last reminded, so each turn gets one reminder.
    reminded_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    narrator_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    narrator_retry_turn: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why the story was paused for something outside the players' hands (the bot could not
    # post in its channel), kept until the host has been told or resumes it.
    host_notice: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The narrator turn whose candidates the players are voting on, and when the vote
    # closes; the next player's clock starts when it has.
    vote_turn: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vote_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now()
    )
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    participants: Mapped[list[Participant]] = relationship(
        back_populates="session",
        foreign_keys="Participant.session_id",
        order_by="Participant.join_order",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    # Optimistic locking: a concurrent change of the same session fails instead of winning silently.
    __mapper_args__ = {"version_id_col": version}

    @property
    def narrator_pending(self) -> bool:
        """Tell whether the narrator owes a passage before the next player writes."""
        return self.narrator_job_id is not None


class Participant(Base):
    """A player's place in a story's rotation."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("session_id", "user_id", name="uq_participants_session_user"),
        UniqueConstraint("session_id", "join_order", name="uq_participants_session_order"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("story_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    display_name: Mapped[str] = mapped_column(String(100))
    join_order: Mapped[int] = mapped_column(Integer)
    status: Mapped[ParticipantStatus] = mapped_column(
        _enum(ParticipantStatus, "participant_status"), default=ParticipantStatus.ACTIVE
    )
    consecutive_timeouts: Mapped[int] = mapped_column(Integer, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())

    session: Mapped[StorySession] = relationship(
        back_populates="participants", foreign_keys=[session_id]
    )


class Turn(Base):
    """One passage of the story, by a player or by the narrator."""

    __tablename__ = "turns"
    __table_args__ = (
        # Two concurrent writers can never both become turn N.
        UniqueConstraint("session_id", "number", name="uq_turns_session_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("story_sessions.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[TurnKind] = mapped_column(_enum(TurnKind, "turn_kind"))
    participant_id: Mapped[int | None] = mapped_column(
        ForeignKey("participants.id", ondelete="SET NULL"), nullable=True
    )
    author_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    author_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Narrator turns are idempotent on the generation job that wrote them.
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # The rotation as it was before this turn, so undo can restore it atomically.
    rotation_before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    alternatives: Mapped[list[TurnAlternative]] = relationship(
        back_populates="turn",
        order_by="TurnAlternative.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class TurnAlternative(Base):
    """Another version of a narrator turn, earlier or spare.

    An earlier version is kept when the turn is retried; a spare is a runner-up
    candidate of the same job, not shown yet, which a retry uses without generating.
    """

    __tablename__ = "turn_alternatives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spare: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())

    turn: Mapped[Turn] = relationship(back_populates="alternatives")


class TableTalk(Base):
    """An out-of-character remark made during a story (kept for export, never narrated)."""

    __tablename__ = "table_talk"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("story_sessions.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(BigInteger)
    author_name: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    # The turn count when it was said, so exports can place it between passages.
    after_turn: Mapped[int] = mapped_column(Integer, default=0)
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class PassageVote(Base):
    """A player's vote for one candidate of a narrator passage (see StorySession.vote_turn)."""

    __tablename__ = "passage_votes"
    __table_args__ = (
        UniqueConstraint("session_id", "turn_number", "voter_id", name="uq_passage_votes_ballot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("story_sessions.id", ondelete="CASCADE"))
    turn_number: Mapped[int] = mapped_column(Integer)
    voter_id: Mapped[int] = mapped_column(BigInteger)
    # 0: the passage as stored (the reranker's pick); n: its n-th spare version.
    choice: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class SkipVote(Base):
    """A player's vote to skip the current turn."""

    __tablename__ = "skip_votes"
    __table_args__ = (
        UniqueConstraint("session_id", "rotation_step", "voter_id", name="uq_skip_votes_ballot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("story_sessions.id", ondelete="CASCADE"))
    rotation_step: Mapped[int] = mapped_column(Integer)
    voter_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class LoreEntry(Base):
    """A named piece of world knowledge the narrator is reminded of when it is mentioned."""

    __tablename__ = "lore_entries"
    __table_args__ = (UniqueConstraint("session_id", "name", name="uq_lore_entries_session_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("story_sessions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class StorySummary(Base):
    """A version of a session's rolling summary; the newest one is current."""

    __tablename__ = "story_summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("story_sessions.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    covers_through_turn: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class ModerationEvent(Base):
    """An audit record of a moderation or filter decision."""

    __tablename__ = "moderation_events"
    __table_args__ = (Index("ix_moderation_events_guild_created", "guild_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guild_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("story_sessions.id", ondelete="SET NULL"), nullable=True
    )
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rule: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
