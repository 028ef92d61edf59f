"""Queries over the story tables. Services own the transactions; these only read and add."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import (
    ChannelSettings,
    GuildSettings,
    LoreEntry,
    ModerationEvent,
    Participant,
    ParticipantStatus,
    PassageVote,
    SessionStatus,
    SkipVote,
    StorySession,
    StorySummary,
    TableTalk,
    Turn,
    TurnAlternative,
)


# Guild settings -------------------------------------------------------------------------------
async def get_guild_settings(*, db: AsyncSession, guild_id: int) -> GuildSettings | None:
    """Return a server's stored settings, if any."""
    return await db.get(GuildSettings, guild_id)


# Sessions -------------------------------------------------------------------------------------
async def get_channel_settings(*, db: AsyncSession, channel_id: int) -> ChannelSettings | None:
    """Return a channel's overrides, if any."""
    return await db.get(ChannelSettings, channel_id)


def _session_query(*, for_update: bool) -> Select[StorySession]:
    query = select(StorySession).options(selectinload(StorySession.participants))
    # FOR UPDATE serialises writers of one session on PostgreSQL; SQLite ignores it and
    # relies on BEGIN IMMEDIATE (see storage.database).
    return query.with_for_update(of=StorySession) if for_update else query


async def get_session(
    *, db: AsyncSession, session_id: int, for_update: bool = False
) -> StorySession | None:
    """Return a session with its participants."""
    query = _session_query(for_update=for_update).where(StorySession.id == session_id)
    return (await db.execute(query)).scalar_one_or_none()


async def narrator_job_of(*, db: AsyncSession, session_id: int) -> str | None:
    """Return the narrator job a session waits for (one column, no lock, no participants)."""
    query = select(StorySession.narrator_job_id).where(StorySession.id == session_id)
    return (await db.execute(query)).scalar_one_or_none()


async def pending_narrations(*, db: AsyncSession) -> Sequence[tuple[int, str, int | None]]:
    """Return (session id, job id, retried turn) of every story waiting for its narrator."""
    query = (
        select(StorySession.id, StorySession.narrator_job_id, StorySession.narrator_retry_turn)
        .where(StorySession.narrator_job_id.is_not(None))
        .order_by(StorySession.id)
    )
    rows = (await db.execute(query)).all()
    return [(row[0], row[1], row[2]) for row in rows if row[1] is not None]


async def get_open_session_in_channel(
    *, db: AsyncSession, channel_id: int, for_update: bool = False
) -> StorySession | None:
    """Return the unfinished session of a channel, if any."""
    query = _session_query(for_update=for_update).where(
        StorySession.channel_id == channel_id, StorySession.status != SessionStatus.ENDED
    )
    return (await db.execute(query)).scalar_one_or_none()


async def open_session_channels(*, db: AsyncSession) -> Sequence[int]:
    """Return the channels that hold an unfinished session."""
    query = select(StorySession.channel_id).where(StorySession.status != SessionStatus.ENDED)
    return (await db.execute(query)).scalars().all()


async def list_sessions(
    *, db: AsyncSession, guild_id: int | None = None, include_ended: bool = True
) -> Sequence[StorySession]:
    """Return sessions, newest first."""
    query = _session_query(for_update=False).order_by(StorySession.id.desc())
    if guild_id is not None:
        query = query.where(StorySession.guild_id == guild_id)
    if not include_ended:
        query = query.where(StorySession.status != SessionStatus.ENDED)
    return (await db.execute(query)).scalars().all()


async def running_clocks(
    *, db: AsyncSession
) -> Sequence[tuple[int, datetime, bool, int | None, bool]]:
    """Return every running turn clock in one statement.

    Each row: the active session's id, its turn deadline (while the players vote on a
    passage: when the vote closes), whether its current player still awaits this turn's
    reminder, its server's stored turn timeout (None: the default), and whether the deadline
    closes a vote.
    """
    awaits_reminder = and_(
        StorySession.narrator_job_id.is_(None),
        StorySession.vote_turn.is_(None),
        or_(
            StorySession.reminded_step.is_(None),
            StorySession.reminded_step != StorySession.rotation_step,
        ),
    )
    query = (
        select(
            StorySession.id,
            StorySession.turn_deadline,
            awaits_reminder,
            GuildSettings.turn_timeout_seconds,
            StorySession.vote_turn.is_not(None),
        )
        .outerjoin(GuildSettings, GuildSettings.guild_id == StorySession.guild_id)
        .where(
            StorySession.status == SessionStatus.ACTIVE,
            StorySession.turn_deadline.is_not(None),
        )
    )
    return [
        (session_id, deadline, bool(awaits), timeout, bool(voting))
        for session_id, deadline, awaits, timeout, voting in (await db.execute(query)).all()
        if deadline is not None  # filtered above; the column itself may hold none
    ]


# Turns ----------------------------------------------------------------------------------------
async def last_turn(*, db: AsyncSession, session_id: int) -> Turn | None:
    """Return the newest turn of a session with its alternatives."""
    query = (
        select(Turn)
        .options(selectinload(Turn.alternatives))
        .where(Turn.session_id == session_id)
        .order_by(Turn.number.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def get_turn(*, db: AsyncSession, session_id: int, number: int) -> Turn | None:
    """Return one turn by its number."""
    query = (
        select(Turn)
        .options(selectinload(Turn.alternatives))
        .where(Turn.session_id == session_id, Turn.number == number)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def turn_by_job(*, db: AsyncSession, job_id: str) -> Turn | None:
    """Return the narrator turn written by a job, now or as an earlier alternative."""
    turn = (await db.execute(select(Turn).where(Turn.job_id == job_id))).scalar_one_or_none()
    if turn is not None:
        return turn
    query = (select(Turn).join(TurnAlternative, TurnAlternative.turn_id == Turn.id)).where(
        TurnAlternative.job_id == job_id
    )
    return (await db.execute(query)).scalars().first()


async def list_turns(
    *, db: AsyncSession, session_id: int, after: int = 0, limit: int | None = None
) -> Sequence[Turn]:
    """Return turns after number AFTER in order; with LIMIT, the newest LIMIT of them."""
    query = (
        select(Turn)
        .options(selectinload(Turn.alternatives))
        .where(Turn.session_id == session_id, Turn.number > after)
    )
    if limit is None:
        return (await db.execute(query.order_by(Turn.number))).scalars().all()
    newest = (await db.execute(query.order_by(Turn.number.desc()).limit(limit))).scalars().all()
    return list(reversed(newest))


# Skip votes -----------------------------------------------------------------------------------
async def skip_voters(*, db: AsyncSession, session_id: int, rotation_step: int) -> set[int]:
    """Return who has voted to skip at this point of the rotation."""
    query = select(SkipVote.voter_id).where(
        SkipVote.session_id == session_id, SkipVote.rotation_step == rotation_step
    )
    return set((await db.execute(query)).scalars().all())


async def clear_skip_votes(*, db: AsyncSession, session_id: int) -> None:
    """Forget all skip votes of a session."""
    await db.execute(delete(SkipVote).where(SkipVote.session_id == session_id))


async def passage_ballots(
    *, db: AsyncSession, session_id: int, turn_number: int
) -> Sequence[PassageVote]:
    """Return the votes cast on a narrator passage's candidates."""
    query = select(PassageVote).where(
        PassageVote.session_id == session_id, PassageVote.turn_number == turn_number
    )
    return (await db.execute(query)).scalars().all()


async def clear_passage_votes(*, db: AsyncSession, session_id: int) -> None:
    """Forget all votes on a session's narrator passages."""
    await db.execute(delete(PassageVote).where(PassageVote.session_id == session_id))


# Lore -----------------------------------------------------------------------------------------
async def list_lore(*, db: AsyncSession, session_id: int) -> Sequence[LoreEntry]:
    """Return a session's lore entries by name."""
    query = select(LoreEntry).where(LoreEntry.session_id == session_id).order_by(LoreEntry.name)
    return (await db.execute(query)).scalars().all()


async def get_lore(*, db: AsyncSession, session_id: int, name: str) -> LoreEntry | None:
    """Return a lore entry by name, ignoring case."""
    query = select(LoreEntry).where(
        LoreEntry.session_id == session_id, func.lower(LoreEntry.name) == name.lower()
    )
    return (await db.execute(query)).scalar_one_or_none()


# Summaries ------------------------------------------------------------------------------------
async def latest_summary(*, db: AsyncSession, session_id: int) -> StorySummary | None:
    """Return the current rolling summary of a session."""
    query = (
        select(StorySummary)
        .where(StorySummary.session_id == session_id)
        .order_by(StorySummary.covers_through_turn.desc(), StorySummary.id.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def list_summaries(*, db: AsyncSession, session_id: int) -> Sequence[StorySummary]:
    """Return every summary version of a session, oldest first."""
    query = (
        select(StorySummary).where(StorySummary.session_id == session_id).order_by(StorySummary.id)
    )
    return (await db.execute(query)).scalars().all()


async def list_table_talk(*, db: AsyncSession, session_id: int) -> Sequence[TableTalk]:
    """Return a session's table talk, oldest first."""
    query = select(TableTalk).where(TableTalk.session_id == session_id).order_by(TableTalk.id)
    return (await db.execute(query)).scalars().all()


async def summary_by_job(*, db: AsyncSession, job_id: str) -> StorySummary | None:
    """Return the summary written by a job, if stored."""
    query = select(StorySummary).where(StorySummary.job_id == job_id)
    return (await db.execute(query)).scalar_one_or_none()


# Moderation events ----------------------------------------------------------------------------
async def recent_moderation_events(
    *, db: AsyncSession, guild_id: int, limit: int = 20
) -> Sequence[ModerationEvent]:
    """Return a server's newest moderation events."""
    query = (
        select(ModerationEvent)
        .where(ModerationEvent.guild_id == guild_id)
        .order_by(ModerationEvent.id.desc())
        .limit(limit)
    )
    return (await db.execute(query)).scalars().all()


# Departures and missed messages ---------------------------------------------------------------
async def open_session_ids_in_guild(*, db: AsyncSession, guild_id: int) -> Sequence[int]:
    """Return the ids of a server's unfinished sessions, oldest first."""
    query = (
        select(StorySession.id)
        .where(StorySession.guild_id == guild_id, StorySession.status != SessionStatus.ENDED)
        .order_by(StorySession.id)
    )
    return (await db.execute(query)).scalars().all()


async def guilds_with_open_sessions(*, db: AsyncSession) -> Sequence[int]:
    """Return the ids of the servers with unfinished sessions."""
    query = (
        select(StorySession.guild_id)
        .where(StorySession.status != SessionStatus.ENDED)
        .distinct()
        .order_by(StorySession.guild_id)
    )
    return (await db.execute(query)).scalars().all()


async def open_session_ids_seating(
    *, db: AsyncSession, guild_id: int, user_id: int
) -> Sequence[int]:
    """Return the ids of a server's unfinished sessions in which a user has an active seat."""
    query = (
        select(StorySession.id)
        .join(Participant, Participant.session_id == StorySession.id)
        .where(
            StorySession.guild_id == guild_id,
            StorySession.status != SessionStatus.ENDED,
            Participant.user_id == user_id,
            Participant.status == ParticipantStatus.ACTIVE,
        )
        .order_by(StorySession.id)
    )
    return (await db.execute(query)).scalars().all()


async def open_session_ids_played_in(*, db: AsyncSession, channel_id: int) -> Sequence[int]:
    """Return the ids of unfinished sessions in a channel or in one of its threads."""
    query = (
        select(StorySession.id)
        .where(
            or_(
                StorySession.channel_id == channel_id,
                StorySession.parent_channel_id == channel_id,
            ),
            StorySession.status != SessionStatus.ENDED,
        )
        .order_by(StorySession.id)
    )
    return (await db.execute(query)).scalars().all()


async def active_sessions_with_last_message(
    *, db: AsyncSession
) -> Sequence[tuple[int, int, int, datetime, int | None]]:
    """Return (id, guild, channel, last change, newest stored message id) of active sessions.

    The newest stored message is the latest chat message kept as a turn or table talk.
    """
    last_turn_message = (
        select(func.max(Turn.discord_message_id))
        .where(Turn.session_id == StorySession.id)
        .scalar_subquery()
    )
    last_talk_message = (
        select(func.max(TableTalk.discord_message_id))
        .where(TableTalk.session_id == StorySession.id)
        .scalar_subquery()
    )
    query = (
        select(
            StorySession.id,
            StorySession.guild_id,
            StorySession.channel_id,
            StorySession.updated_at,
            last_turn_message,
            last_talk_message,
        )
        .where(StorySession.status == SessionStatus.ACTIVE)
        .order_by(StorySession.id)
    )
    rows = (await db.execute(query)).all()
    return [
        (row[0], row[1], row[2], row[3], max((i for i in row[4:6] if i is not None), default=None))
        for row in rows
    ]


async def message_is_stored(*, db: AsyncSession, session_id: int, message_id: int) -> bool:
    """Tell whether a chat message is kept as a turn or table talk of a session."""
    as_turn = select(Turn.id).where(
        Turn.session_id == session_id, Turn.discord_message_id == message_id
    )
    as_talk = select(TableTalk.id).where(
        TableTalk.session_id == session_id, TableTalk.discord_message_id == message_id
    )
    found = await db.execute(as_turn.union_all(as_talk).limit(1))
    return found.first() is not None
