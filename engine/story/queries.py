"""Read-only questions about stories: one database session each, no locks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.errors import (
    SessionNotFound,
)
from engine.rules.guild_config import GuildConfig
from engine.story.store import StoryStore
from engine.story.views import (
    CatchUpPoint,
    LoreView,
    NarrationRequest,
    Recap,
    SessionView,
    StoryTranscript,
    SummaryView,
    TableTalkView,
    TurnView,
)
from storage import repositories as repo
from storage.models import (
    ContentRating,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoryRules:
    """A story with its server's configuration and the content rating in force there."""

    session: SessionView
    config: GuildConfig
    rating: ContentRating


class StoryQueries:
    """Answer questions about stories without changing them."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def get(self, session_id: int) -> SessionView:
        """Return a session by id."""
        async with self._store.sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            return SessionView.of(story)

    async def in_channel(self, channel_id: int) -> SessionView | None:
        """Return the unfinished session of a channel, if any."""
        since = self._store.channels.mark()
        async with self._store.sessions() as db:
            story = await repo.get_open_session_in_channel(db=db, channel_id=channel_id)
            self._store.channels.note(channel_id, holds_story=story is not None, since=since)
            return SessionView.of(story) if story else None

    async def may_hold_story(self, channel_id: int) -> bool:
        """Tell whether a channel may hold an unfinished story, mostly without a read.

        False means it surely does not: chatter there needs no database work.
        """
        return await self._store.channels.may_hold_story(channel_id)

    async def list_sessions(self, guild_id: int | None = None) -> list[SessionView]:
        """Return sessions (of one server, or all), newest first."""
        async with self._store.sessions() as db:
            return [SessionView.of(s) for s in await repo.list_sessions(db=db, guild_id=guild_id)]

    async def recap(self, channel_id: int, *, turns: int = 6) -> Recap:
        """Return the status, the rolling summary and the latest turns of a channel's story."""
        async with self._store.sessions() as db:
            story = await repo.get_open_session_in_channel(db=db, channel_id=channel_id)
            if story is None:
                raise SessionNotFound("There is no story in this channel.")
            summary = await repo.latest_summary(db=db, session_id=story.id)
            recent = await repo.list_turns(db=db, session_id=story.id, limit=turns)
            return Recap(
                session=SessionView.of(story),
                summary=SummaryView.of(summary) if summary else None,
                recent_turns=tuple(TurnView.of(t) for t in recent),
            )

    async def transcript(self, session_id: int) -> StoryTranscript:
        """Return everything about a story, for export."""
        async with self._store.sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            turns = await repo.list_turns(db=db, session_id=session_id)
            lore = await repo.list_lore(db=db, session_id=session_id)
            summaries = await repo.list_summaries(db=db, session_id=session_id)
            talk = await repo.list_table_talk(db=db, session_id=session_id)
            return StoryTranscript(
                session=SessionView.of(story),
                turns=tuple(TurnView.of(t) for t in turns),
                lore=tuple(LoreView.of(e) for e in lore),
                summaries=tuple(SummaryView.of(s) for s in summaries),
                table_talk=tuple(TableTalkView.of(t) for t in talk),
            )

    async def turns(self, session_id: int, *, after: int = 0) -> list[TurnView]:
        """Return a session's turns after number AFTER."""
        async with self._store.sessions() as db:
            rows = await repo.list_turns(db=db, session_id=session_id, after=after)
            return [TurnView.of(t) for t in rows]

    async def latest_summary(self, session_id: int) -> SummaryView | None:
        """Return a story's current rolling summary."""
        async with self._store.sessions() as db:
            row = await repo.latest_summary(db=db, session_id=session_id)
            return SummaryView.of(row) if row else None

    async def pending_job(self, session_id: int) -> str | None:
        """Return the narrator job the story waits for, if any (one cheap read)."""
        async with self._store.sessions() as db:
            return await repo.narrator_job_of(db=db, session_id=session_id)

    async def pending_narrations(self) -> list[NarrationRequest]:
        """Return the narration every story waiting for its narrator is waiting for."""
        async with self._store.sessions() as db:
            rows = await repo.pending_narrations(db=db)
        return [NarrationRequest(session_id, job_id, retry) for session_id, job_id, retry in rows]

    async def guilds_with_open_stories(self) -> list[int]:
        """Return the servers that have unfinished stories."""
        async with self._store.sessions() as db:
            return list(await repo.guilds_with_open_sessions(db=db))

    async def catch_up_points(self) -> list[CatchUpPoint]:
        """Return, for every active story, where to read its channel for missed messages."""
        async with self._store.sessions() as db:
            rows = await repo.active_sessions_with_last_message(db=db)
        return [
            CatchUpPoint(
                session_id=session_id,
                guild_id=guild_id,
                channel_id=channel_id,
                after_message_id=last_message,
                changed_at=changed_at,
            )
            for session_id, guild_id, channel_id, changed_at, last_message in rows
        ]

    async def content_rules(self, session_id: int) -> StoryRules:
        """Return a story with its server's configuration and the rating in force there."""
        async with self._store.sessions() as db:
            story = await repo.get_session(db=db, session_id=session_id)
            if story is None:
                raise SessionNotFound(f"There is no story with id {session_id}.")
            config, rating = await StoryStore.rules_of(db, story)
            return StoryRules(session=SessionView.of(story), config=config, rating=rating)
