"""A narration and timeout listener that records what a front-end would show."""

from __future__ import annotations

import asyncio

from engine.story.views import NarrationOutcome, SessionView, TimeoutOutcome


class RecordingListener:
    """Collect narrator progress, stored passages, failures and timeouts."""

    def __init__(self) -> None:
        self.progress: list[tuple[int, str, str]] = []
        self.stored: list[NarrationOutcome] = []
        self.failures: list[tuple[SessionView, str]] = []
        self.timeouts: list[TimeoutOutcome] = []
        self.filtered: list[tuple[int, str, bool]] = []
        self.changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def narration_progress(self, session_id: int, job_id: str, text: str) -> None:
        self.progress.append((session_id, job_id, text))
        await self._notify()

    async def narration_stored(self, outcome: NarrationOutcome) -> None:
        self.stored.append(outcome)
        await self._notify()

    async def narration_failed(self, session: SessionView, reason: str) -> None:
        self.failures.append((session, reason))
        await self._notify()

    async def narration_filtered(self, session: SessionView, job_id: str, replaced: bool) -> None:
        self.filtered.append((session.id, job_id, replaced))
        await self._notify()

    async def timed_out(self, outcome: TimeoutOutcome) -> None:
        self.timeouts.append(outcome)
        await self._notify()

    async def wait_for(self, predicate, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(seconds), self.changed:
            await self.changed.wait_for(predicate)
