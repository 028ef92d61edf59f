"""What tests observe and wait on: violations, recorded requests, messages, replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from .models import (
    DoubleChannel,
    DoubleUser,
    InteractionRecord,
    RateLimitRule,
    RequestRecord,
    StoredMessage,
    UploadedFile,
)
from .state import DoubleState

log = logging.getLogger(__name__)

T = TypeVar("T")


class Bookkeeping(DoubleState):
    """Violations, waits, and queries over what the bot did."""

    def record_violation(self, text: str) -> None:
        """Record something real Discord would reject; the fixture fails the test on it."""
        log.warning("Discord API double: %s", text)
        self.violations.append(text)
        self.notify()

    def pop_violations(self) -> list[str]:
        """Return and forget the violations recorded so far."""
        taken, self.violations[:] = list(self.violations), []
        return taken

    @contextlib.contextmanager
    def expect_violations(self, *fragments: str) -> Iterator[list[str]]:
        """Expect violations (each fragment in one of them) inside the block, and absorb them."""
        start = len(self.violations)
        caught: list[str] = []
        try:
            yield caught
        finally:
            caught.extend(self.violations[start:])
            del self.violations[start:]
        missing = [f for f in fragments if not any(f in v for v in caught)]
        if not caught or missing:
            raise AssertionError(f"expected violations {list(fragments)}, recorded {caught}")

    def notify(self) -> None:
        """Wake every waiter to re-check its condition."""
        self._changed.set()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        *,
        # A per-call deadline lets the failure say what was awaited; asyncio.timeout cannot.
        timeout: float = 5.0,  # noqa: ASYNC109
        what: str = "",
    ) -> T:
        """Wait until the predicate returns something truthy, and return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = f": {what}" if what else ""
                raise AssertionError(f"condition not met within {timeout}s{detail}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                # Polls too, as a safety net for state changed outside the double.
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    def messages_in(
        self,
        channel: int | str | DoubleChannel,
        *,
        author: DoubleUser | None = None,
        include_ephemeral: bool = False,
    ) -> list[StoredMessage]:
        """List the channel's live messages, oldest first."""
        channel_id = self._channel(channel).id
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id
            and not m.deleted
            and (include_ephemeral or not m.ephemeral)
            and (author is None or m.author_id == author.id)
        ]

    async def wait_for_message(
        self,
        channel: int | str | DoubleChannel,
        predicate: Callable[[StoredMessage], bool] | None = None,
        *,
        author: DoubleUser | None = None,
        include_ephemeral: bool = False,
        after: StoredMessage | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> StoredMessage:
        """Wait for a message in a channel (by default from the bot) matching the predicate."""
        who = author or self.bot_user

        def find() -> StoredMessage | None:
            for message in self.messages_in(
                channel, author=who, include_ephemeral=include_ephemeral
            ):
                if after is not None and message.id <= after.id:
                    continue
                if predicate is None or predicate(message):
                    return message
            return None

        return await self.wait_for(find, timeout=timeout, what=f"a message in {channel}")

    async def wait_for_response(
        self,
        interaction: InteractionRecord,
        *,
        followups: int = 0,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InteractionRecord:
        """Wait until the bot acknowledged the interaction and sent N follow-ups."""

        def done() -> InteractionRecord | None:
            answered = interaction.callback is not None
            if answered and len(interaction.followups) >= followups:
                return interaction
            return None

        return await self.wait_for(done, timeout=timeout, what=f"a response to {interaction.id}")

    def interaction_responses(self, interaction: InteractionRecord) -> list[StoredMessage]:
        """List the messages answering an interaction: the original response, then follow-ups."""
        first = [interaction.original] if interaction.original is not None else []
        return [m for m in first + interaction.followups if not m.deleted]

    def requests_to(self, route: str) -> list[RequestRecord]:
        """List the requests for a route written 'METHOD /template' as in the spec."""
        method, template = route.split(" ", 1)
        return [r for r in self.requests if r.method == method and r.template == template]

    def rate_limit(
        self, route: str, *, times: int = 1, retry_after: float = 0.25, is_global: bool = False
    ) -> None:
        """Answer the next `times` requests for 'METHOD /template' with 429."""
        method, template = route.split(" ", 1)
        if not any(op.method == method and op.template == template for op in self.spec.operations):
            raise ValueError(f"{route!r} is not an operation in Discord's API spec")
        self._rate_limits.append(RateLimitRule(method, template, times, retry_after, is_global))

    def file(self, attachment_id: int) -> UploadedFile:
        """Return an uploaded file by attachment id."""
        return self._files[attachment_id]
