"""The JSON story archive: everything about one story, readable back by ``taleweaver import``.

One pydantic schema serves both directions, so what export writes is exactly what import
accepts. Version 1 is the only version so far; a change that older readers would
misread must raise ``FORMAT_VERSION``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from engine.actors import MAX_DISPLAY_NAME_CHARS
from engine.rules.guild_config import GuildConfig
from engine.story.lifecycle import MAX_TITLE_CHARS
from engine.story.lore import MAX_LORE_NAME_CHARS
from engine.story.views import StoryTranscript
from storage.models import ParticipantStatus, SessionStatus, TurnKind

FORMAT_NAME = "taleweaver-story"
FORMAT_VERSION = 1


class _Strict(BaseModel):
    # Strict types and no unknown keys: a hand-edited file with a typo is refused, not guessed.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ArchivedSession(_Strict):
    """The story's own fields; ``id``, ``guild_id`` and ``channel_id`` are where it came from."""

    id: int
    guild_id: int
    channel_id: int
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    genre: str = Field(min_length=1, max_length=40)
    premise: str
    authors_note: str
    age_restricted: bool
    status: SessionStatus
    host_id: int
    current_player_id: int | None
    turn_count: int = Field(ge=0)
    turn_deadline: AwareDatetime | None
    created_at: AwareDatetime
    ended_at: AwareDatetime | None


class ArchivedParticipant(_Strict):
    """A player of the story, by Discord user id."""

    user_id: int
    display_name: str = Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS)
    join_order: int = Field(ge=1)
    status: ParticipantStatus
    consecutive_timeouts: int = Field(ge=0)


class ArchivedAlternative(_Strict):
    """An earlier version of a narrator passage."""

    text: str


class ArchivedTurn(_Strict):
    """One passage, with its author and history."""

    number: int = Field(ge=1)
    kind: TurnKind
    author_id: int | None
    author_name: str = Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS)
    text: str
    discord_message_id: int | None
    job_id: str | None
    alternatives: tuple[ArchivedAlternative, ...]
    created_at: AwareDatetime
    edited_at: AwareDatetime | None


class ArchivedLore(_Strict):
    """A lore entry."""

    name: str = Field(min_length=1, max_length=MAX_LORE_NAME_CHARS)
    keywords: tuple[str, ...]
    text: str
    created_by: int


class ArchivedSummary(_Strict):
    """One version of the rolling summary."""

    text: str
    covers_through_turn: int = Field(ge=0)
    created_at: AwareDatetime


class ArchivedTableTalk(_Strict):
    """An out-of-character remark, said after turn ``after_turn``."""

    author_id: int
    author_name: str = Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS)
    text: str
    after_turn: int = Field(ge=0)
    created_at: AwareDatetime


class StoryArchive(_Strict):
    """A whole story as one JSON document."""

    format: str
    format_version: int
    exported_at: AwareDatetime
    session: ArchivedSession
    participants: tuple[ArchivedParticipant, ...]
    turns: tuple[ArchivedTurn, ...]
    lore: tuple[ArchivedLore, ...]
    summaries: tuple[ArchivedSummary, ...]
    table_talk: tuple[ArchivedTableTalk, ...]
    # The server's settings as its configuration model dumps them; kept loose because that
    # model grows on its own schedule, independent of this format's version.
    guild_settings: dict[str, Any]


def build_archive(
    transcript: StoryTranscript, config: GuildConfig, *, exported_at: datetime
) -> StoryArchive:
    """Collect a transcript and its server's settings into an archive."""
    session = transcript.session
    return StoryArchive(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        exported_at=exported_at.astimezone(UTC),
        session=ArchivedSession(
            id=session.id,
            guild_id=session.guild_id,
            channel_id=session.channel_id,
            title=session.title,
            genre=session.genre,
            premise=session.premise,
            authors_note=session.authors_note,
            age_restricted=session.age_restricted,
            status=session.status,
            host_id=session.host_id,
            current_player_id=(
                session.current_player.user_id if session.current_player is not None else None
            ),
            turn_count=session.turn_count,
            turn_deadline=session.turn_deadline,
            created_at=session.created_at,
            ended_at=session.ended_at,
        ),
        participants=tuple(
            ArchivedParticipant(
                user_id=p.user_id,
                display_name=p.display_name,
                join_order=p.join_order,
                status=p.status,
                consecutive_timeouts=p.consecutive_timeouts,
            )
            for p in session.participants
        ),
        turns=tuple(
            ArchivedTurn(
                number=t.number,
                kind=t.kind,
                author_id=t.author_id,
                author_name=t.author_name,
                text=t.text,
                discord_message_id=t.discord_message_id,
                job_id=t.job_id,
                alternatives=tuple(ArchivedAlternative(text=a) for a in t.alternatives),
                created_at=t.created_at,
                edited_at=t.edited_at,
            )
            for t in transcript.turns
        ),
        lore=tuple(
            ArchivedLore(name=e.name, keywords=e.keywords, text=e.text, created_by=e.created_by)
            for e in transcript.lore
        ),
        summaries=tuple(
            ArchivedSummary(
                text=s.text, covers_through_turn=s.covers_through_turn, created_at=s.created_at
            )
            for s in transcript.summaries
        ),
        table_talk=tuple(
            ArchivedTableTalk(
                author_id=r.author_id,
                author_name=r.author_name,
                text=r.text,
                after_turn=r.after_turn,
                created_at=r.created_at,
            )
            for r in transcript.table_talk
        ),
        guild_settings=config.model_dump(mode="json"),
    )


def render_json(archive: StoryArchive) -> bytes:
    """Serialise an archive as indented UTF-8 JSON."""
    return archive.model_dump_json(indent=2).encode("utf-8") + b"\n"
