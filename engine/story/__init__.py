"""The story domain: stories, turns, deadlines, the narrator's ledger and lore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.rules.guard import ContentGuard
from engine.rules.throttles import Throttles
from engine.story.clock import Clock, utc_now
from engine.story.deadlines import TurnDeadlines
from engine.story.lifecycle import StoryLifecycle
from engine.story.lore import LoreBook
from engine.story.narrator_ledger import NarratorLedger
from engine.story.passage_votes import PassageVotes
from engine.story.queries import StoryQueries, StoryRules
from engine.story.store import StoryStore
from engine.story.turns import StoryTurns

__all__ = [
    "Clock",
    "LoreBook",
    "NarratorLedger",
    "PassageVotes",
    "StoryLifecycle",
    "StoryQueries",
    "StoryRules",
    "StoryService",
    "StoryStore",
    "StoryTurns",
    "TurnDeadlines",
    "utc_now",
]


@dataclass(frozen=True)
class StoryService:
    """The story wing's parts, sharing one store (one database, clock, guard and throttles)."""

    store: StoryStore
    queries: StoryQueries
    lifecycle: StoryLifecycle
    turns: StoryTurns
    deadlines: TurnDeadlines
    ledger: NarratorLedger
    lore: LoreBook
    votes: PassageVotes

    @classmethod
    def create(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Clock = utc_now,
        guard: ContentGuard | None = None,
        throttles: Throttles | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> StoryService:
        """Build every part over one store."""
        store = StoryStore(
            sessions, clock=clock, guard=guard, throttles=throttles, on_change=on_change
        )
        return cls(
            store=store,
            queries=StoryQueries(store),
            lifecycle=StoryLifecycle(store),
            turns=StoryTurns(store),
            deadlines=TurnDeadlines(store),
            ledger=NarratorLedger(store),
            lore=LoreBook(store),
            votes=PassageVotes(store),
        )

    @property
    def guard(self) -> ContentGuard:
        """Return the content guard every part checks text with."""
        return self.store.guard
