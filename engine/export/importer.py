"""Read a JSON story archive back into the database as a new story.

``import_story`` is the whole interface: it validates the file, then creates the story with
new ids in one transaction. The import keeps every passage, alternative, lore entry,
summary, remark and timestamp; generation job ids are dropped, because they are unique and
belong to jobs of the original database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import InvalidSetting, StoryError
from engine.export.archive import FORMAT_NAME, FORMAT_VERSION, StoryArchive
from engine.rules.genres import get_preset, validate_sampling
from engine.rules.guild_config import GuildConfig
from engine.story.clock import Clock, utc_now
from engine.story.rotation import next_after
from engine.story.views import SessionView
from storage import repositories as repo
from storage.models import (
    GuildSettings,
    LoreEntry,
    Participant,
    ParticipantStatus,
    SessionStatus,
    StorySession,
    StorySummary,
    TableTalk,
    Turn,
    TurnAlternative,
    TurnKind,
)

log = logging.getLogger(__name__)

# Enough problems to fix a file in one go, few enough to stay one readable line.
MAX_PROBLEMS_SHOWN = 5


class StoryImportError(StoryError):
    """A story file cannot be imported; the message names what is wrong."""


def _location(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def _explain(exc: ValidationError) -> str:
    errors = exc.errors()
    shown = [f"{_location(e['loc'])}: {e['msg']}" for e in errors[:MAX_PROBLEMS_SHOWN]]
    more = len(errors) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def parse_archive(data: bytes | str) -> StoryArchive:
    """Validate a story file and return its archive, or raise StoryImportError saying why."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoryImportError(f"The file is not valid JSON: {exc}.") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise StoryImportError(
            f'The file is not a Taleweaver story (its "format" field is not "{FORMAT_NAME}").'
        )
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise StoryImportError(
            f"The story file has format version {version!r}; this Taleweaver reads version "
            f"{FORMAT_VERSION}."
        )
    try:
        # Validated from the JSON text so that timestamps and enums parse strictly.
        archive = StoryArchive.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        raise StoryImportError(f"The story file is invalid: {_explain(exc)}.") from exc
    _check_consistency(archive)
    return archive


def _check_consistency(archive: StoryArchive) -> None:
    problems: list[str] = []
    users = [p.user_id for p in archive.participants]
    if len(set(users)) != len(users):
        problems.append("participants: a user appears twice")
    orders = [p.join_order for p in archive.participants]
    if len(set(orders)) != len(orders):
        problems.append("participants: two players share a join_order")
    numbers = [t.number for t in archive.turns]
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append("turns: numbers must run 1, 2, 3, … without gaps, in order")
    for index, turn in enumerate(archive.turns):
        if turn.kind == TurnKind.PLAYER and turn.author_id not in users:
            problems.append(f"turns[{index}].author_id: {turn.author_id} is not a participant")
    current = archive.session.current_player_id
    if current is not None and current not in users:
        problems.append(f"session.current_player_id: {current} is not a participant")
    names = [entry.name.casefold() for entry in archive.lore]
    if len(set(names)) != len(names):
        problems.append("lore: two entries share a name")
    try:
        get_preset(archive.session.genre)
    except InvalidSetting as exc:
        problems.append(f"session.genre: {exc}")
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        raise StoryImportError(f"The story file is inconsistent: {shown}.")


def _settings_of(archive: StoryArchive) -> GuildConfig:
    known = {k: v for k, v in archive.guild_settings.items() if k in GuildConfig.model_fields}
    ignored = sorted(set(archive.guild_settings) - set(known))
    if ignored:
        log.info("story import: server settings not known here were ignored: %s", ignored)
    try:
        config = GuildConfig.model_validate(known)
        validate_sampling(config.sampling)
    except ValidationError as exc:
        raise StoryImportError(
            f"The story file's guild_settings are invalid: {_explain(exc)}."
        ) from exc
    except InvalidSetting as exc:
        raise StoryImportError(f"The story file's guild_settings are invalid: {exc}") from exc
    return config


def _rotation_snapshots(
    archive: StoryArchive, seat_of: dict[int, Participant], current: Participant | None
) -> list[dict[str, Any]]:
    """Rebuild what undo needs: whose turn it was before each turn, and whom narration answered."""
    turns = archive.turns
    # During narration the turn already belongs to the next player to write, so walk back
    # from the end to know, for every turn, who writes next.
    next_writer: list[Participant | None] = [None] * len(turns)
    holder = current
    for index in range(len(turns) - 1, -1, -1):
        next_writer[index] = holder
        if turns[index].kind == TurnKind.PLAYER:
            holder = seat_of.get(turns[index].author_id or 0)
    snapshots: list[dict[str, Any]] = []
    answered: Participant | None = None
    for index, turn in enumerate(turns):
        snapshot: dict[str, Any] = {"narrator_job_id": None, "narrator_retry_turn": None}
        if turn.kind == TurnKind.PLAYER:
            answered = seat_of.get(turn.author_id or 0)
            snapshot["current_participant_id"] = answered.id if answered else None
        else:
            writer = next_writer[index]
            snapshot["current_participant_id"] = writer.id if writer is not None else None
            if answered is not None:
                snapshot["answered_participant_id"] = answered.id
        snapshots.append(snapshot)
    return snapshots


def _current_seat(archive: StoryArchive, seat_of: dict[int, Participant]) -> Participant | None:
    session = archive.session
    if session.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
        return None
    seats = list(seat_of.values())
    if session.current_player_id is not None:
        seat = seat_of[session.current_player_id]
        if seat.status == ParticipantStatus.ACTIVE:
            return seat
        return next_after(seats, seat.join_order)
    # A paused story does not record whose turn it was: continue after the latest writer.
    last_writer = next(
        (t.author_id for t in reversed(archive.turns) if t.kind == TurnKind.PLAYER), None
    )
    after = seat_of[last_writer].join_order if last_writer in seat_of else 0
    return next_after(seats, after)


def _refuse_busy_channel(channel_id: int, running: int | None) -> StoryImportError:
    which = f" (story {running})" if running is not None else ""
    return StoryImportError(
        f"Channel {channel_id} already has an unfinished story{which}; pass another --channel "
        "or end the running story first."
    )


async def import_story(
    session_factory: async_sessionmaker[AsyncSession],
    data: bytes | str,
    *,
    guild_id: int | None = None,
    channel_id: int | None = None,
    clock: Clock = utc_now,
) -> SessionView:
    """Create a new story from a JSON archive, in the file's server and channel or the given ones.

    An unfinished story keeps its state (and the current player gets a fresh clock) when its
    channel has no unfinished story; a server without stored settings adopts the file's.
    """
    archive = parse_archive(data)
    source = archive.session
    guild = source.guild_id if guild_id is None else guild_id
    channel = source.channel_id if channel_id is None else channel_id
    unfinished = source.status != SessionStatus.ENDED
    try:
        async with session_factory() as db, db.begin():
            if unfinished:
                running = await repo.get_open_session_in_channel(db=db, channel_id=channel)
                if running is not None:
                    raise _refuse_busy_channel(channel, running.id)
            config = await _adopt_settings(db, guild, archive)
            story = await _create(db, archive, guild, channel, config, clock())
            view = SessionView.of(story)
    except IntegrityError as exc:
        if not unfinished:
            raise
        # The unique index on unfinished stories per channel decided a race.
        raise _refuse_busy_channel(channel, None) from exc
    log.info(
        "imported story %r (was %s) as session %s with %d turns",
        view.title,
        source.id,
        view.id,
        len(archive.turns),
    )
    return view


async def _adopt_settings(db: AsyncSession, guild_id: int, archive: StoryArchive) -> GuildConfig:
    row = await repo.get_guild_settings(db=db, guild_id=guild_id)
    if row is not None:
        # A server's own rules win over the ones a file brings along.
        return GuildConfig.from_row(row)
    config = _settings_of(archive)
    row = GuildSettings(guild_id=guild_id)
    for name, value in config.model_dump().items():
        setattr(row, name, value)
    db.add(row)
    return config


async def _create(
    db: AsyncSession,
    archive: StoryArchive,
    guild_id: int,
    channel_id: int,
    config: GuildConfig,
    now: datetime,
) -> StorySession:
    source = archive.session
    story = StorySession(
        guild_id=guild_id,
        channel_id=channel_id,
        title=source.title,
        genre=get_preset(source.genre).key,
        premise=source.premise,
        authors_note=source.authors_note,
        age_restricted=source.age_restricted,
        status=source.status,
        host_id=source.host_id,
        rotation_step=0,
        turn_count=len(archive.turns),
        created_at=source.created_at.astimezone(UTC),
        ended_at=_utc(source.ended_at),
    )
    for p in archive.participants:
        story.participants.append(
            Participant(
                user_id=p.user_id,
                display_name=p.display_name,
                join_order=p.join_order,
                status=p.status,
                consecutive_timeouts=p.consecutive_timeouts,
            )
        )
    db.add(story)
    await db.flush()  # participant ids are needed by turns and the rotation
    seat_of = {p.user_id: p for p in story.participants}
    current = _current_seat(archive, seat_of)
    story.current_participant_id = current.id if current is not None else None
    if story.status == SessionStatus.ACTIVE and current is not None:
        story.turn_deadline = now + timedelta(seconds=config.turn_timeout_seconds)
    elif story.status == SessionStatus.ACTIVE:
        story.status = SessionStatus.PAUSED  # nobody left to write: as the engine would
    snapshots = _rotation_snapshots(archive, seat_of, current)
    for turn, snapshot in zip(archive.turns, snapshots, strict=True):
        row = Turn(
            session_id=story.id,
            number=turn.number,
            kind=turn.kind,
            participant_id=seat_of[turn.author_id].id if turn.author_id in seat_of else None,
            author_id=turn.author_id,
            author_name=turn.author_name,
            text=turn.text,
            discord_message_id=turn.discord_message_id,
            job_id=None,
            rotation_before=snapshot,
            created_at=turn.created_at.astimezone(UTC),
            edited_at=_utc(turn.edited_at),
        )
        row.alternatives = [TurnAlternative(text=a.text, job_id=None) for a in turn.alternatives]
        db.add(row)
    for entry in archive.lore:
        db.add(
            LoreEntry(
                session_id=story.id,
                name=entry.name,
                keywords=list(entry.keywords),
                text=entry.text,
                created_by=entry.created_by,
            )
        )
    for summary in archive.summaries:
        db.add(
            StorySummary(
                session_id=story.id,
                text=summary.text,
                covers_through_turn=summary.covers_through_turn,
                job_id=None,
                created_at=summary.created_at.astimezone(UTC),
            )
        )
    for remark in archive.table_talk:
        db.add(
            TableTalk(
                session_id=story.id,
                author_id=remark.author_id,
                author_name=remark.author_name,
                text=remark.text,
                after_turn=remark.after_turn,
                created_at=remark.created_at.astimezone(UTC),
            )
        )
    await db.flush()
    await db.refresh(story)
    return story


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None
