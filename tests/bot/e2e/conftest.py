"""The whole bot against the Discord API double: real client, engine, queue and a tiny model.

A scenario starts TaleweaverBot on the double's token; players act through the double
(slash commands, channel messages, button clicks) and the test reads what the bot did
from the double's records and the story database. The double fails the test on any
request Discord would reject.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import torch

from bot.discord.app import BotOptions, RuntimeFactory, TaleweaverBot, make_bot
from engine.actors import Actor
from engine.queue.jobs import GenerationJob
from engine.settings import Settings
from engine.story.views import SessionView, TurnView
from engine.worker.model.generator import BatchGenerator
from engine.worker.model.loading import LoadedModel, load_model
from engine.worker.processor import NarratorJobProcessor

from discord_double import DiscordDouble, DoubleUser, InteractionRecord, StoredMessage
from discord_double.fixture import discord_double
from support.tiny_model import build_tiny_model

if TYPE_CHECKING:
    from conftest import FakeClock

__all__ = ["discord_double"]

T = TypeVar("T")

# Streaming edits in tests: short enough to be quick, long enough to measure.
EDIT_INTERVAL = 0.05
# A narrator passage of this many tokens streams in a few edits and takes well under a second.
PASSAGE_TOKENS = 32
# Pacing per progress report, so a passage lasts past the worker's 0.3 s progress interval
# and is seen growing (a new message, then edits) before it is finished.
TOKEN_PAUSE_SECONDS = 0.03
# The machine running the suite is small and shared: waits are generous, never slept out.
NARRATOR_WAIT = 60.0
REPLY_WAIT = 15.0
MESSAGE_ROUTES = frozenset(
    {
        "POST /channels/{channel_id}/messages",
        "PATCH /channels/{channel_id}/messages/{message_id}",
        "POST /webhooks/{webhook_id}/{webhook_token}",
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        "POST /interactions/{interaction_id}/{interaction_token}/callback",
    }
)


@pytest.fixture(scope="session")
def narrator_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """Return a tiny model with a context window large enough for real narrator prompts."""
    folder = build_tiny_model(tmp_path_factory.mktemp("e2e-tiny"), context=4096)
    return load_model(
        str(folder),
        quantization="none",
        device="cpu",
        cache_dir=tmp_path_factory.mktemp("e2e-cache"),
    )


class PacedNarrator:
    """The real narrator job processor, reseeded per batch and paced per progress report.

    A fixed seed per batch would give a retried passage the very text it replaces; a
    counter keeps runs repeatable while every batch differs.
    """

    def __init__(self, model: LoadedModel, *, pause: float = TOKEN_PAUSE_SECONDS) -> None:
        self._inner = NarratorJobProcessor(BatchGenerator(model, partial_every=2))
        self._seeds = itertools.count(1)
        self._pause = pause

    def __call__(
        self, jobs: list[GenerationJob], on_progress: Callable[[str, str], None]
    ) -> Sequence[tuple[str, str | Exception]]:
        """Generate one batch in the worker's thread."""
        torch.manual_seed(next(self._seeds))

        def paced(job_id: str, text: str) -> None:
            time.sleep(self._pause)
            on_progress(job_id, text)

        return self._inner(jobs, paced)


@dataclass(frozen=True)
class SentMessage:
    """One message body the bot sent or edited, with the mentions it allowed."""

    route: str
    content: str
    allowed_mentions: dict[str, Any] | None


@dataclass
class StoryTable:
    """The double, one story database, and the real bot started against them on demand."""

    double: DiscordDouble
    database_url: str
    model: LoadedModel
    clock: FakeClock
    cache_dir: Path
    queue_url: str = field(default_factory=lambda: f"memory://e2e-{uuid.uuid4().hex}")
    bot: TaleweaverBot | None = None

    # Starting and stopping the bot ----------------------------------------------------------
    def settings(self, **overrides: Any) -> Settings:
        """Return settings for this table's database and queue, with generous rate limits."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "queue_url": self.queue_url,
            "quantization": "none",
            "device": "cpu",
            "cache_dir": self.cache_dir,
            "commands_per_minute": 1000,
            "turns_per_minute": 100,
            "narrations_per_minute": 100,
        }
        return Settings(**{**values, **overrides})

    def options(self, **overrides: Any) -> BotOptions:
        """Return the bot options scenarios use: message turns, fast edits, global commands."""
        values: dict[str, Any] = {"edit_interval_seconds": EDIT_INTERVAL, "refusal_seconds": 0.5}
        return BotOptions(**{**values, **overrides})

    @asynccontextmanager
    async def running(
        self,
        *,
        options: BotOptions | None = None,
        runtime_factory: RuntimeFactory | None = None,
        shards: int = 1,
    ) -> AsyncIterator[TaleweaverBot]:
        """Run a fresh TaleweaverBot until the block ends, then close it as a shutdown would.

        With SHARDS above one it is the auto-sharded bot; discord.py identifies each shard
        after the first 5 s apart, as Discord asks.
        """

        async def processor() -> Callable[..., object]:
            return self.narrator()

        bot = make_bot(
            self.settings(),
            options=options or self.options(),
            shards=shards,
            runtime_factory=runtime_factory,
            processor_factory=processor,
            clock=self.clock,
            # Without these discord.py waits seconds for guilds and member chunks.
            guild_ready_timeout=0.05,
            chunk_guilds_at_startup=False,
        )
        async with self.double.run_client(bot, timeout=5.0 + 6.0 * (shards - 1)):
            self.bot = bot
            try:
                yield bot
                await bot.narration.drain()
            finally:
                self.bot = None

    def narrator(self) -> PacedNarrator:
        """Return a model worker's batch processor over the tiny model."""
        return PacedNarrator(self.model)

    @property
    def running_bot(self) -> TaleweaverBot:
        """Return the bot now running."""
        assert self.bot is not None, "start the bot with `async with table.running()`"
        return self.bot

    # Who and where ------------------------------------------------------------------------------
    @property
    def channel_id(self) -> int:
        """Return the id of the channel stories are played in."""
        return self.double.channels["story"].id

    def user(self, name: str) -> DoubleUser:
        """Return a member of the double's guild by name."""
        return self.double.users[name]

    def actor(self, name: str) -> Actor:
        """Return the engine's view of a member (the moderator with their powers)."""
        user = self.user(name)
        return Actor(user.id, user.display_name, is_moderator=name == "moderator")

    # Acting as players --------------------------------------------------------------------------
    async def command(self, user: str, path: str, **options: Any) -> InteractionRecord:
        """Run a slash command such as "story start" as USER; return once it is answered."""
        name, *sub = path.split()
        record = await self.double.invoke(user, "story", name, sub, options)
        await self.double.wait_for_response(record, timeout=REPLY_WAIT)
        return record

    async def reply_to(self, record: InteractionRecord) -> StoredMessage:
        """Wait for the message that answers an interaction (after a defer: its follow-up)."""

        def answered() -> StoredMessage | None:
            for message in self.double.interaction_responses(record):
                if message.content or message.embeds or message.files:
                    return message
            return None

        return await self.double.wait_for(answered, timeout=REPLY_WAIT, what="an answer")

    async def say(self, user: str, text: str) -> StoredMessage:
        """Post a plain message in the story channel as USER."""
        return await self.double.send_message(user, "story", text)

    async def start_story(self, host: str, *others: str) -> SessionView:
        """Start a story with slash commands, let OTHERS join, and begin it."""
        await self.command(
            host,
            "story start",
            title="The Lantern",
            premise="A lighthouse keeper finds a door in the sea.",
        )
        for other in others:
            await self.command(other, "story join")
        await self.command(host, "story begin")
        return await self.session()

    async def configure(self, **changes: Any) -> None:
        """Change the server's story configuration as its moderator would."""
        await self.running_bot.runtime.configs.update(
            self.double.guild.id, self.actor("moderator"), **changes
        )

    async def short_passages(self) -> None:
        """Keep narrator passages short so scenarios stay quick."""
        await self.configure(sampling={"max_new_tokens": PASSAGE_TOKENS})

    # Reading what happened ----------------------------------------------------------------------
    async def session(self) -> SessionView:
        """Return the story in the channel."""
        view = await self.running_bot.runtime.story.queries.in_channel(self.channel_id)
        assert view is not None, "no story in the channel"
        return view

    async def turns(self) -> list[TurnView]:
        """Return the stored turns of the story in the channel."""
        view = await self.session()
        return await self.running_bot.runtime.story.queries.turns(view.id)

    async def eventually(self, read: Callable[[], Awaitable[T]], expected: T) -> None:
        """Wait until READ returns EXPECTED: for effects the bot does not announce."""
        deadline = time.monotonic() + REPLY_WAIT
        while (value := await read()) != expected:
            assert time.monotonic() < deadline, f"still {value!r}, expected {expected!r}"
            await asyncio.sleep(0.05)

    def bot_messages(self) -> list[StoredMessage]:
        """Return the bot's live, public messages in the story channel, oldest first."""
        return self.double.messages_in("story", author=self.double.bot_user)

    async def passage(
        self, *, after: StoredMessage | None = None, number: int | None = None
    ) -> StoredMessage:
        """Wait for a finished narrator passage (it carries its buttons) in the story channel."""
        prefix = "tw:retry:"

        def finished(message: StoredMessage) -> bool:
            ids = [c for c in message.custom_ids() if c.startswith(prefix)]
            return bool(ids) and (number is None or ids[0].endswith(f":{number}"))

        return await self.double.wait_for_message(
            "story", finished, after=after, timeout=NARRATOR_WAIT
        )

    async def ping(self, user: str, *, after: StoredMessage | None = None) -> StoredMessage:
        """Wait for the bot's message telling USER it is their turn."""
        mention = self.user(user).mention

        def pings(message: StoredMessage) -> bool:
            return mention in message.content and "your turn" in message.content

        return await self.double.wait_for_message(
            "story", pings, after=after, timeout=NARRATOR_WAIT
        )

    def reactions_on(self, message: StoredMessage) -> list[str]:
        """Return the emoji the bot put on a message."""
        bot_id = self.double.bot_user.id
        return [
            r.emoji
            for r in self.double.reactions
            if r.message_id == message.id and r.user_id == bot_id
        ]

    def sent_messages(self) -> Iterator[SentMessage]:
        """Yield every message body the bot sent or edited, in order."""
        for request in self.double.requests:
            route = f"{request.method} {request.template}"
            if route not in MESSAGE_ROUTES or not isinstance(request.body, dict):
                continue
            body = request.body
            if route.startswith("POST /interactions/"):
                if body.get("type") not in (4, 7):
                    continue  # deferrals and modals carry no message
                body = body.get("data") or {}
            if not any(key in body for key in ("content", "embeds", "components", "attachments")):
                continue
            yield SentMessage(route, str(body.get("content") or ""), body.get("allowed_mentions"))

    def audit_mentions(self) -> list[tuple[str, list[int]]]:
        """Check no message may ping anyone but listed users; return those that list some.

        Every body must carry allowed_mentions that parse nothing (no @everyone, roles or
        mentions found in the text), and list at most one user, named in its content.
        """
        pinging = []
        for sent in self.sent_messages():
            allowed = sent.allowed_mentions
            assert allowed is not None, f"{sent.route} without allowed_mentions: {sent.content!r}"
            assert allowed.get("parse") == [], f"{sent.route} parses mentions: {allowed}"
            assert not allowed.get("roles") and not allowed.get("replied_user"), allowed
            users = [int(u) for u in allowed.get("users") or []]
            if users:
                assert len(users) == 1, f"one message pings several users: {allowed}"
                assert f"<@{users[0]}>" in sent.content, sent.content
                pinging.append((sent.content, users))
        return pinging

    def notified(self) -> list[tuple[StoredMessage, list[int]]]:
        """Return the bot's messages in the story channel that notified someone."""
        return [
            (message, message.pinged_user_ids)
            for message in self.double.messages_in(
                "story", author=self.double.bot_user, include_ephemeral=True
            )
            if message.pinged_user_ids or message.pinged_everyone
        ]


@pytest.fixture
def story_database(sqlite_template: Path, tmp_path: Path) -> str:
    """Return the URL of a fresh, migrated SQLite file for one scenario."""
    path = tmp_path / "stories.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def table(
    discord_double: DiscordDouble,
    story_database: str,
    narrator_model: LoadedModel,
    clock: FakeClock,
    tmp_path: Path,
) -> StoryTable:
    """Return the stage for one scenario; start the bot with `async with table.running()`."""
    return StoryTable(discord_double, story_database, narrator_model, clock, tmp_path / "cache")
