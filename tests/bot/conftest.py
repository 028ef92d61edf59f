"""Fakes of the few discord.py objects the bot touches, and a story database on SQLite."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import ParticipantView, SessionView, TurnView
from storage.database import create_engine, create_session_factory
from storage.models import ParticipantStatus, SessionStatus, TurnKind

_ids = itertools.count(900_000)


def next_id() -> int:
    return next(_ids)


@dataclass
class FakeAuthor:
    id: int
    display_name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class FakeMessage:
    channel: FakeChannel
    content: str = ""
    id: int = field(default_factory=next_id)
    author: FakeAuthor = field(default_factory=lambda: FakeAuthor(1, "Alice"))
    guild: Any = field(default_factory=object)
    webhook_id: int | None = None
    type: discord.MessageType = discord.MessageType.default
    view: Any = None
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def edit(self, **kwargs: Any) -> FakeMessage:
        if self.deleted:
            raise discord.NotFound(SimpleNamespace(status=404, reason="gone"), "Unknown Message")
        self.edits.append(kwargs)
        if "content" in kwargs:
            self.content = kwargs["content"]
        if "view" in kwargs:
            self.view = kwargs["view"]
        return self

    async def delete(self) -> None:
        self.deleted = True

    async def add_reaction(self, emoji: str) -> None:
        self.reactions.append(emoji)

    async def reply(self, content: str, **kwargs: Any) -> FakeMessage:
        self.replies.append((content, kwargs))
        return FakeMessage(self.channel, content)


class FakeChannel:
    """A text channel that remembers what was sent to it."""

    def __init__(self, channel_id: int = 100) -> None:
        self.id = channel_id
        self.sent: list[FakeMessage] = []
        self.send_kwargs: list[dict[str, Any]] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        message = FakeMessage(self, content or "", view=kwargs.get("view"))
        self.sent.append(message)
        self.send_kwargs.append(kwargs)
        return message

    def get_partial_message(self, message_id: int) -> FakeMessage:
        for message in self.sent:
            if message.id == message_id:
                return message
        return FakeMessage(self, "", id=message_id)

    @property
    def visible(self) -> list[FakeMessage]:
        return [m for m in self.sent if not m.deleted]


class FakeResponse:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.deferred: dict[str, Any] | None = None
        self.edited: list[dict[str, Any]] = []
        self._done = False

    def is_done(self) -> bool:
        return self._done

    async def send_message(self, content: str | None = None, **kwargs: Any) -> Any:
        assert not self._done, "answered twice"
        self._done = True
        self.sent.append({"content": content, **kwargs})
        return SimpleNamespace(message_id=next_id())

    async def defer(self, **kwargs: Any) -> None:
        assert not self._done, "deferred after answering"
        self._done = True
        self.deferred = kwargs

    async def edit_message(self, **kwargs: Any) -> None:
        self._done = True
        self.edited.append(kwargs)


class FakeFollowup:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.edited: list[dict[str, Any]] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> Any:
        self.sent.append({"content": content, **kwargs})
        return SimpleNamespace(id=next_id())

    async def edit_message(self, message_id: int, **kwargs: Any) -> Any:
        self.edited.append({"message_id": message_id, **kwargs})
        return SimpleNamespace(id=message_id)


INVITE_PERMISSIONS = 309237763136


class FakeInteraction:
    """The parts of discord.Interaction the bot uses."""

    def __init__(
        self,
        client: Any,
        user: Any,
        *,
        channel: FakeChannel | None = None,
        guild_id: int = 1,
        filesize_limit: int = 10 * 1024 * 1024,
        message: Any = None,
        app_permissions: discord.Permissions | None = None,
        kind: discord.InteractionType = discord.InteractionType.application_command,
    ) -> None:
        self.client = client
        self.type = kind
        self.extras: dict[str, Any] = {}
        # What the README's invite link grants, as Discord reports it for the bot.
        self.app_permissions = app_permissions or discord.Permissions(INVITE_PERMISSIONS)
        self.user = user
        self.channel = channel or FakeChannel()
        self.channel_id = self.channel.id
        self.guild_id = guild_id
        self.filesize_limit = filesize_limit
        self.message = message
        self.response = FakeResponse()
        self.followup = FakeFollowup()
        self.original_edits: list[dict[str, Any]] = []
        self.original_deleted = False
        self.data: dict[str, Any] = {}
        self.command = None

    async def edit_original_response(self, **kwargs: Any) -> Any:
        self.original_edits.append(kwargs)
        return SimpleNamespace(id=next_id())

    async def delete_original_response(self) -> None:
        self.original_deleted = True

    @property
    def everything_sent(self) -> list[dict[str, Any]]:
        return self.response.sent + self.followup.sent


def participant(
    pid: int, user_id: int, name: str, status: ParticipantStatus = ParticipantStatus.ACTIVE
) -> ParticipantView:
    return ParticipantView(
        id=pid,
        user_id=user_id,
        display_name=name,
        join_order=pid,
        status=status,
        consecutive_timeouts=0,
    )


def session_view(
    *,
    players: tuple[ParticipantView, ...] = (),
    current: int | None = None,
    status: SessionStatus = SessionStatus.ACTIVE,
    narrator_job_id: str | None = None,
    session_id: int = 7,
    channel_id: int = 100,
    title: str = "The Lantern",
    deadline: datetime | None = None,
) -> SessionView:
    players = players or (participant(1, 1, "Alice"), participant(2, 2, "Bob"))
    current_player = next((p for p in players if p.user_id == current), None)
    return SessionView(
        id=session_id,
        guild_id=1,
        channel_id=channel_id,
        title=title,
        genre="fantasy",
        premise="A lighthouse keeper finds a door in the sea.",
        authors_note="",
        age_restricted=False,
        status=status,
        host_id=players[0].user_id,
        participants=players,
        current_player=current_player if status == SessionStatus.ACTIVE else None,
        turn_deadline=deadline or datetime(2026, 1, 2, 12, 0, tzinfo=UTC),
        turn_count=3,
        narrator_job_id=narrator_job_id,
        narrator_retry_turn=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        ended_at=None,
    )


def narrator_turn(
    number: int = 4,
    text: str = "The door opens.",
    *,
    job_id: str = "job-1",
    alternatives: tuple[str, ...] = (),
    message_id: int | None = None,
) -> TurnView:
    return TurnView(
        number=number,
        kind=TurnKind.NARRATOR,
        author_id=None,
        author_name="Narrator",
        text=text,
        discord_message_id=message_id,
        job_id=job_id,
        alternatives=alternatives,
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=number),
        edited_at=None,
    )


@pytest.fixture
def fake() -> SimpleNamespace:
    """Give tests the fake classes and builders."""
    return SimpleNamespace(
        Author=FakeAuthor,
        Message=FakeMessage,
        Channel=FakeChannel,
        Interaction=FakeInteraction,
        participant=participant,
        session_view=session_view,
        narrator_turn=narrator_turn,
    )


@pytest.fixture
async def story_db(
    sqlite_template: Path, tmp_path: Path, clock: Any
) -> AsyncIterator[SimpleNamespace]:
    """Yield real session and configuration services over a fresh SQLite database."""
    path = tmp_path / "bot.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    factory = create_session_factory(engine)
    try:
        yield SimpleNamespace(
            story=StoryService.create(factory, clock=clock), configs=GuildConfigService(factory)
        )
    finally:
        await engine.dispose()
