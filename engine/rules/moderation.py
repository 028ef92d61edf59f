"""Moderators' safety tools: blocked words, content ratings per channel, and the audit log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.actors import Actor
from engine.database import reporting_sessions
from engine.errors import InvalidSetting, PermissionDenied
from engine.rules.guard import ContentGuard
from engine.rules.guild_config import GuildConfig, GuildConfigService, is_moderator
from engine.safety.storable import find_unstorable, unstorable_reason
from storage import repositories as repo
from storage.models import ChannelSettings, ContentRating, ModerationEvent

log = logging.getLogger(__name__)

MAX_AUDIT_ENTRIES = 50


@dataclass(frozen=True)
class AuditEntry:
    """One filter decision, as moderators see it."""

    created_at: datetime
    user_id: int | None
    channel_id: int | None
    session_id: int | None
    rule: str
    action: str
    detail: str

    @classmethod
    def of(cls, row: ModerationEvent) -> AuditEntry:
        """Snapshot an audit row."""
        return cls(
            created_at=row.created_at,
            user_id=row.user_id,
            channel_id=row.channel_id,
            session_id=row.session_id,
            rule=row.rule,
            action=row.action,
            detail=row.detail,
        )


class ModerationService:
    """Change a server's safety rules and read its audit log (moderators only)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        guard: ContentGuard,
        configs: GuildConfigService | None = None,
    ) -> None:
        self._sessions = reporting_sessions(sessions)
        # Shared with the runtime so that its listeners hear of every change of rules.
        self._configs = configs if configs is not None else GuildConfigService(sessions)
        self.guard = guard

    async def _require_moderator(self, guild_id: int, actor: Actor) -> GuildConfig:
        config = await self._configs.get(guild_id)
        if not is_moderator(actor, config):
            raise PermissionDenied("Only moderators can see or change the safety settings.")
        return config

    async def blocked_words(self, guild_id: int, actor: Actor) -> tuple[str, ...]:
        """Return the server's own blocked words and phrases."""
        return (await self._require_moderator(guild_id, actor)).blocked_words

    async def add_blocked_words(
        self, guild_id: int, actor: Actor, words: Sequence[str]
    ) -> tuple[str, ...]:
        """Add words or phrases to the server's list and return the whole list."""
        config = await self._require_moderator(guild_id, actor)
        if not words:
            raise InvalidSetting("Give at least one word or phrase to block.")
        # GuildConfig cleans and checks each entry (validate_blocked_word) and drops repeats.
        updated = await self._configs.update(
            guild_id, actor, blocked_words=[*config.blocked_words, *words]
        )
        return updated.blocked_words

    async def remove_blocked_words(
        self, guild_id: int, actor: Actor, words: Sequence[str]
    ) -> tuple[str, ...]:
        """Remove words or phrases from the server's list and return the whole list."""
        config = await self._require_moderator(guild_id, actor)
        for word in words:
            # Never on the list (validate_blocked_word refuses them), and not to be echoed.
            if (found := find_unstorable(word)) is not None:
                raise InvalidSetting(unstorable_reason("A blocked word", found))
        gone = {w.strip().casefold() for w in words}
        missing = sorted(gone - {w.casefold() for w in config.blocked_words})
        if missing:
            raise InvalidSetting(f"Not on the blocked list: {', '.join(missing)}.")
        kept = [w for w in config.blocked_words if w.casefold() not in gone]
        updated = await self._configs.update(guild_id, actor, blocked_words=kept)
        return updated.blocked_words

    async def set_channel_rating(
        self,
        guild_id: int,
        channel_id: int,
        actor: Actor,
        rating: ContentRating | None,
        *,
        age_restricted: bool,
    ) -> ContentRating | None:
        """Override the content rating of one channel (None: follow the server's)."""
        await self._require_moderator(guild_id, actor)
        if rating == ContentRating.MATURE and not age_restricted:
            raise InvalidSetting(
                "The mature rating is allowed only in channels Discord marks age-restricted; "
                "mark the channel age-restricted first."
            )
        async with self._sessions() as db, db.begin():
            row = await repo.get_channel_settings(db=db, channel_id=channel_id)
            if row is None:
                row = ChannelSettings(channel_id=channel_id, guild_id=guild_id)
                db.add(row)
            elif row.guild_id != guild_id:
                raise PermissionDenied("That channel belongs to another server.")
            row.content_rating = rating
        self._configs.changed(guild_id)
        log.info("channel %s rating set to %s by %s", channel_id, rating, actor.user_id)
        return rating

    async def channel_rating(self, channel_id: int) -> ContentRating | None:
        """Return a channel's rating override, if any."""
        async with self._sessions() as db:
            row = await repo.get_channel_settings(db=db, channel_id=channel_id)
            return row.content_rating if row is not None else None

    async def audit(self, guild_id: int, actor: Actor, *, limit: int = 20) -> list[AuditEntry]:
        """Return the server's newest filter decisions (moderators only)."""
        await self._require_moderator(guild_id, actor)
        limit = max(1, min(limit, MAX_AUDIT_ENTRIES))
        async with self._sessions() as db:
            rows = await repo.recent_moderation_events(db=db, guild_id=guild_id, limit=limit)
            return [AuditEntry.of(r) for r in rows]
