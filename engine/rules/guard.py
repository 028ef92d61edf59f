"""Apply a server's content rules to story text and keep an audit record of every refusal."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import OperatorError, TurnRejected
from engine.rules.guild_config import GuildConfig
from engine.safety import ContentPolicy, FloodLimits, ProfanityClassifier, TextKind, Verdict
from engine.safety.storable import REPLACEMENT, without_unstorable
from engine.telemetry.metrics import FILTER_DECISIONS
from storage.models import ContentRating, ModerationEvent, ViolationAction

log = logging.getLogger(__name__)

# Audit details keep only a short excerpt: enough for a moderator to judge, no full copies.
EXCERPT_CHARS = 120


@dataclass(frozen=True)
class Where:
    """Who wrote a piece of text, and in which story."""

    guild_id: int
    channel_id: int | None = None
    session_id: int | None = None
    user_id: int | None = None


class ContentRefused(TurnRejected):
    """A filter refused a piece of text; ``str()`` is the reason shown to its author."""

    def __init__(self, verdict: Verdict, kind: TextKind, where: Where, text: str) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.kind = kind
        self.where = where
        self.excerpt = text[:EXCERPT_CHARS]


class RateLimited(TurnRejected):
    """Someone acts faster than the server allows; ``str()`` says when to try again."""

    def __init__(self, message: str, *, rule: str, where: Where) -> None:
        super().__init__(message)
        self.rule = rule
        self.where = where


def effective_rating(
    config: GuildConfig, channel_rating: ContentRating | None, *, age_restricted: bool
) -> ContentRating:
    """Return the rating that applies in a channel: `mature` only where Discord age-restricts."""
    rating = channel_rating or config.content_rating
    if rating == ContentRating.MATURE and not age_restricted:
        return ContentRating.TEEN
    return rating


class ContentGuard:
    """Check text against a server's rules; refusals raise ContentRefused and are audited."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        classifier: ProfanityClassifier | None = None,
    ) -> None:
        self._sessions = sessions
        self._classifier = classifier if classifier is not None else ProfanityClassifier()
        self._policy = lru_cache(maxsize=256)(self._build_policy)

    @property
    def classifier(self) -> ProfanityClassifier:
        """Return the classifier every policy of this guard asks."""
        return self._classifier

    async def load_classifier(self) -> None:
        """Load the classifier in a worker thread; checks then never wait for it."""
        await asyncio.to_thread(self._classifier.load)

    def _build_policy(
        self, rating: ContentRating, blocked: tuple[str, ...], flood: FloodLimits
    ) -> ContentPolicy:
        return ContentPolicy(rating, blocked, classifier=self._classifier, flood=flood)

    def policy(self, config: GuildConfig, rating: ContentRating) -> ContentPolicy:
        """Return the (cached) policy for a server's word list and flood limits at a rating."""
        return self._policy(rating, tuple(config.blocked_words), config.flood_limits)

    def check(
        self,
        config: GuildConfig,
        rating: ContentRating,
        text: str,
        kind: TextKind,
        where: Where,
    ) -> None:
        """Raise ContentRefused when TEXT breaks the rules."""
        verdict = self.policy(config, rating).check(text, kind)
        if not verdict.allowed:
            raise ContentRefused(verdict, kind, where, text)

    async def record_refusal(self, refused: ContentRefused) -> None:
        """Store the audit record of a refusal (in its own transaction).

        The refusal itself matters more than its record: when the record cannot be
        stored, the operator reads why in the log and the player still hears the reason.
        """
        detail = (
            f"{refused.kind.value}: matched {refused.verdict.matched or '-'}; {refused.excerpt}"
        )
        rule = refused.verdict.rule or "unknown"
        try:
            await self.record(refused.where, rule, ViolationAction.REFUSED, detail)
        except (SQLAlchemyError, OperatorError):
            log.exception("could not store the audit record of a %s refusal", rule)

    async def record_rate_limit(self, limited: RateLimited) -> None:
        """Store the audit record of a rate-limited action (a failure is logged, as above)."""
        try:
            await self.record(
                limited.where, limited.rule, ViolationAction.RATE_LIMITED, str(limited)
            )
        except (SQLAlchemyError, OperatorError):
            log.exception("could not store the audit record of a %s rate limit", limited.rule)

    async def record(
        self, where: Where, rule: str, action: ViolationAction, detail: str = ""
    ) -> None:
        """Store one audit record; characters no database can store are shown as U+FFFD."""
        FILTER_DECISIONS.labels(rule, action.value).inc()
        log.info(
            "filter %s %s in guild %s channel %s by %s",
            rule,
            action.value,
            where.guild_id,
            where.channel_id,
            where.user_id,
        )
        async with self._sessions() as db, db.begin():
            db.add(
                ModerationEvent(
                    guild_id=where.guild_id,
                    channel_id=where.channel_id,
                    session_id=where.session_id,
                    user_id=where.user_id,
                    rule=rule[:100],
                    action=action.value,
                    # The excerpt is the refused text itself: it may hold the very NUL
                    # byte or broken character it was refused for.
                    detail=without_unstorable(detail, replacement=REPLACEMENT),
                )
            )
