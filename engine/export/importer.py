"""Read a JSON story archive back into the database as a new story.

``import_story`` is the whole interface: it validates the file, then creates the story with
new ids in one transaction. Validation trusts nothing: size and nesting depth before the
JSON is parsed, then every text (storable, within the limits of live play), every number
(within the database's integer columns) and every list's length. The import keeps every
passage, alternative, lore entry, summary, remark and timestamp; generation job ids are
dropped, because they are unique and belong to jobs of the original database.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import InvalidSetting, StoryError
from engine.export.archive import FORMAT_NAME, FORMAT_VERSION, StoryArchive
from engine.protocol.bounds import field_bounds
from engine.rules.genres import get_preset, validate_sampling
from engine.rules.guild_config import GuildConfig
from engine.safety.policy import DEFAULT_MAX_CHARS
from engine.safety.storable import find_unstorable
from engine.story.clock import Clock, utc_now
from engine.story.lifecycle import MAX_AUTHORS_NOTE_CHARS, MAX_PREMISE_CHARS
from engine.story.lore import MAX_LORE_KEYWORD_CHARS, MAX_LORE_KEYWORDS, MAX_LORE_TEXT_CHARS
from engine.story.rotation import next_after
from engine.story.turns import MAX_TABLE_TALK_CHARS
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

# An imported story must be one the engine could have stored itself: its texts are held
# to the limits of live play, so that no story (and no narrator prompt built from it)
# is bigger than live play allows.
MAX_TURN_CHARS = field_bounds(GuildConfig, "max_turn_chars")[1]  # the most a server allows
MAX_PASSAGE_CHARS = DEFAULT_MAX_CHARS  # the content policy's limit, narration included
# Summaries are bounded by the tokens the model may write, not by characters: twice a
# passage's limit leaves them room.
MAX_SUMMARY_CHARS = 2 * DEFAULT_MAX_CHARS
# Live play sets no count on these; the bounds are far above any real story and keep an
# import from tying up the database: 50,000 turns is a turn a minute for five weeks.
MAX_ENTRIES = {
    "participants": 1_000,
    "turns": 50_000,
    "lore": 1_000,
    "summaries": 50_000,
    "table_talk": 100_000,
}
MAX_ALTERNATIVES = 200  # earlier and spare versions of one passage
# The file as a whole: 50,000 turns of a few hundred characters each fit many times over.
MAX_IMPORT_BYTES = 64 * 1024 * 1024
# A story file is 5 levels deep (turns[i].alternatives[j]); server settings a few more.
MAX_JSON_DEPTH = 32
# The database's integer columns: ids (Discord snowflakes) are BIGINT, counters INTEGER.
BIGINT_RANGE = range(-(2**63), 2**63)
MAX_INTEGER = 2**31 - 1


class StoryImportError(StoryError):
    """A story file cannot be imported; the message names what is wrong."""


def _location(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str):
            part = _clipped(part)
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def _clipped(text: str, limit: int = 40) -> str:
    """Return TEXT cut to LIMIT characters: a hostile value must not flood the error line."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _explain(exc: ValidationError) -> str:
    errors = exc.errors()
    shown = [f"{_location(e['loc'])}: {e['msg']}" for e in errors[:MAX_PROBLEMS_SHOWN]]
    more = len(errors) - len(shown)
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def parse_archive(data: bytes | str) -> StoryArchive:
    """Validate a story file and return its archive, or raise StoryImportError saying why."""
    return _parse(data)[0]


def _parse(data: bytes | str) -> tuple[StoryArchive, GuildConfig]:
    """Validate every field of a story file; return it with the server settings it brings."""
    if len(data) > MAX_IMPORT_BYTES:
        raise StoryImportError(
            f"The file is larger than {MAX_IMPORT_BYTES:,} bytes, the most an import reads."
        )
    raw = _load_json(data)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise StoryImportError(
            f'The file is not a Taleweaver story (its "format" field is not "{FORMAT_NAME}").'
        )
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise StoryImportError(
            f"The story file has format version {_clipped(repr(version))}; "
            f"this Taleweaver reads version {FORMAT_VERSION}."
        )
    _check_values(raw)
    try:
        # Validated from the JSON text so that timestamps and enums parse strictly.
        archive = StoryArchive.model_validate_json(json.dumps(raw))
    except ValidationError as exc:
        raise StoryImportError(f"The story file is invalid: {_explain(exc)}.") from exc
    _check_limits(archive)
    _check_consistency(archive)
    return archive, _settings_of(archive)


# A JSON string, escapes included: brackets inside one do not nest anything.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(code for code in range(256) if code not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def _nesting_depth(text: str) -> int:
    """Return how deep TEXT nests arrays and objects, without parsing it.

    The JSON parser recurses once per level and fails with RecursionError on a deep
    enough document; this counts brackets outside strings with no recursion, in C
    loops (about a second for the largest file an import reads).
    """
    structure = _JSON_STRING.sub("", text).encode("ascii", "ignore")
    steps = structure.translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def _load_json(data: bytes | str) -> Any:
    try:
        # As json.loads does for bytes: UTF-8, -16 or -32, surrogates let through so
        # that they are reported where they are, like escaped ones (_check_values).
        text = (
            data
            if isinstance(data, str)
            else data.decode(json.detect_encoding(data), "surrogatepass")
        )
    except UnicodeDecodeError as exc:
        raise StoryImportError(f"The file is not valid JSON: {exc}.") from exc
    if _nesting_depth(text) > MAX_JSON_DEPTH:
        raise StoryImportError(
            f"The file nests arrays and objects more than {MAX_JSON_DEPTH} levels deep; "
            "a story file never does, so it is not one or it is damaged."
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoryImportError(f"The file is not valid JSON: {exc}.") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise StoryImportError(
            "The file is not valid JSON: it holds a number too long to read."
        ) from exc
    except RecursionError as exc:  # not reached past the depth check; kept as a backstop
        raise StoryImportError("The file is nested too deeply to read.") from exc


def _check_values(raw: Any) -> None:
    """Refuse the first text no database can store, or number none can hold, anywhere in RAW."""
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(raw, ())]
    while pending:
        value, loc = pending.pop()
        if isinstance(value, str):
            _refuse_unstorable(value, _location(loc))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if value not in BIGINT_RANGE:
                raise StoryImportError(
                    f"The story file's {_location(loc)} is {_clipped(str(value), 24)}, "
                    "out of range: ids and numbers must fit in 64 bits (-2**63 to 2**63-1)."
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise StoryImportError(f"The story file's {_location(loc)} is not a finite number.")
        elif isinstance(value, dict):
            for key in value:
                _refuse_unstorable(key, f"{_location(loc)}: a key")
            # Reversed, so that the first problem in the file is the one reported.
            pending.extend((item, (*loc, key)) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend((value[i], (*loc, i)) for i in range(len(value) - 1, -1, -1))


def _refuse_unstorable(text: str, where: str) -> None:
    found = find_unstorable(text)
    if found is not None:
        raise StoryImportError(
            f"The story file's {where} contains a character that cannot be stored "
            f"({found.description}: {found}); fix or remove it in the file and import again."
        )


def _check_limits(archive: StoryArchive) -> None:
    """Hold every text, list, counter and time to what live play could have stored."""
    problems: list[str] = []

    def text(where: str, value: str, limit: int) -> None:
        if len(value) > limit:
            problems.append(f"{where}: {len(value):,} characters (at most {limit:,})")

    def count(where: str, items: Sequence[object], limit: int) -> None:
        if len(items) > limit:
            problems.append(f"{where}: {len(items):,} entries (at most {limit:,})")

    def counter(where: str, value: int) -> None:
        if value > MAX_INTEGER:
            problems.append(f"{where}: {value:,} is too large (at most {MAX_INTEGER:,})")

    def moment(where: str, value: datetime | None) -> None:
        try:
            _utc(value)
        except OverflowError:
            problems.append(f"{where}: {value} is out of range in UTC")

    for key, limit in MAX_ENTRIES.items():
        count(key, getattr(archive, key), limit)
    session = archive.session
    text("session.premise", session.premise, MAX_PREMISE_CHARS)
    text("session.authors_note", session.authors_note, MAX_AUTHORS_NOTE_CHARS)
    for name in ("created_at", "ended_at", "turn_deadline"):
        moment(f"session.{name}", getattr(session, name))
    for i, player in enumerate(archive.participants):
        counter(f"participants[{i}].join_order", player.join_order)
        counter(f"participants[{i}].consecutive_timeouts", player.consecutive_timeouts)
    for i, turn in enumerate(archive.turns):
        limit = MAX_TURN_CHARS if turn.kind == TurnKind.PLAYER else MAX_PASSAGE_CHARS
        text(f"turns[{i}].text", turn.text, limit)
        count(f"turns[{i}].alternatives", turn.alternatives, MAX_ALTERNATIVES)
        for j, alternative in enumerate(turn.alternatives):
            text(f"turns[{i}].alternatives[{j}].text", alternative.text, MAX_PASSAGE_CHARS)
        moment(f"turns[{i}].created_at", turn.created_at)
        moment(f"turns[{i}].edited_at", turn.edited_at)
    for i, entry in enumerate(archive.lore):
        text(f"lore[{i}].text", entry.text, MAX_LORE_TEXT_CHARS)
        count(f"lore[{i}].keywords", entry.keywords, MAX_LORE_KEYWORDS)
        for j, keyword in enumerate(entry.keywords):
            text(f"lore[{i}].keywords[{j}]", keyword, MAX_LORE_KEYWORD_CHARS)
    for i, summary in enumerate(archive.summaries):
        text(f"summaries[{i}].text", summary.text, MAX_SUMMARY_CHARS)
        counter(f"summaries[{i}].covers_through_turn", summary.covers_through_turn)
        moment(f"summaries[{i}].created_at", summary.created_at)
    for i, remark in enumerate(archive.table_talk):
        text(f"table_talk[{i}].text", remark.text, MAX_TABLE_TALK_CHARS)
        counter(f"table_talk[{i}].after_turn", remark.after_turn)
        moment(f"table_talk[{i}].created_at", remark.created_at)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        extra = f" (and {more:,} more)" if more > 0 else ""
        raise StoryImportError(f"The story file is over the limits of live play: {shown}{extra}.")


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
    for what, value in (("server", guild_id), ("channel", channel_id)):
        if value is not None and value not in BIGINT_RANGE:
            raise StoryImportError(
                f"The {what} id {value} is out of range: Discord ids fit in 64 bits."
            )
    archive, settings = _parse(data)
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
            config = await _adopt_settings(db, guild, settings)
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


async def _adopt_settings(db: AsyncSession, guild_id: int, config: GuildConfig) -> GuildConfig:
    row = await repo.get_guild_settings(db=db, guild_id=guild_id)
    if row is not None:
        # A server's own rules win over the ones a file brings along.
        return GuildConfig.from_row(row)
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
