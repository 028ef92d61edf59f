"""The Discord client: intents, start-up, error handling, and `run_bot` for the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.actors import actor_from_user
from bot.discord.components import DYNAMIC_ITEMS, narrator_view, vote_view
from bot.discord.departures import Departures
from bot.discord.formatting import NO_MENTIONS
from bot.discord.http_metrics import discord_http_trace
from bot.discord.narrator_messages import (
    DEFAULT_EDIT_INTERVAL,
    UNKNOWN_CHANNEL,
    DiscordNarrationListener,
)
from bot.discord.replies import SOMETHING_WENT_WRONG, send_error
from bot.discord.threads import reopen_thread
from bot.discord.throttle import MonotonicClock
from engine.errors import StoryError
from engine.export import ExportService
from engine.narrator.coordinator import NarrationListener
from engine.rules.guard import RateLimited, Where
from engine.runtime import ProcessorFactory, StoryRuntime
from engine.settings import Settings
from engine.story.clock import Clock, utc_now
from engine.story.deadlines import TimeoutListener

log = logging.getLogger(__name__)

T = TypeVar("T")

RuntimeFactory = Callable[[NarrationListener, TimeoutListener], Awaitable[StoryRuntime]]

# The turns cog reads plain messages, which needs the privileged message content intent.
ALWAYS_LOADED_COGS = (
    "bot.discord.cogs.story",
    "bot.discord.cogs.storyconfig",
    "bot.discord.cogs.departures",
)
MESSAGE_COGS = ("bot.discord.cogs.turns",)
# On shutdown, give passages being finished this long to reach Discord.
CLOSE_DRAIN_SECONDS = 5.0


class BotStartError(RuntimeError):
    """The bot could not connect; the message says what to change."""


TOKEN_REFUSED = (
    "Discord refused the token: copy it again from the Developer Portal "
    "(Bot > Reset Token) into TALEWEAVER_DISCORD_TOKEN."
)


@dataclass(frozen=True)
class BotOptions:
    """How the bot behaves on Discord (the story rules themselves live in the engine)."""

    # Read turns from plain messages. Needs the privileged Message Content intent enabled in
    # the Developer Portal; without it players write with `/story write`.
    message_content: bool = True
    # Hear at once when a member leaves the server (GUILD_MEMBER_REMOVE). Needs the
    # privileged Server Members intent; without it a player who left is found when the bot
    # is about to ping them (Discord answers "unknown member").
    members_intent: bool = False
    # Least time between two edits of one streaming narrator message.
    edit_interval_seconds: float = DEFAULT_EDIT_INTERVAL
    # Register the slash commands with Discord at start-up.
    sync_commands: bool = True
    # Register them on this server only (instant; for development) instead of globally.
    command_guild_id: int | None = None
    # How long a refusal answering a plain message stays before it deletes itself.
    refusal_seconds: float = 15.0
    # Gateway connections (shards) in this process; None: as many as Discord recommends.
    shards: int | None = None


def build_intents(*, message_content: bool, members: bool = False) -> discord.Intents:
    """Return the minimal intents: servers, their messages; message content, members if asked."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = message_content
    intents.members = members
    return intents


class StoryCommandTree(app_commands.CommandTree["TaleweaverBot"]):
    """A command tree whose errors become ephemeral replies that say what to do."""

    async def interaction_check(self, interaction: discord.Interaction[TaleweaverBot], /) -> bool:
        """Refuse members who use commands faster than the server's rate limit."""
        if interaction.type != discord.InteractionType.application_command:
            return True  # autocomplete suggestions are not actions
        where = Where(
            guild_id=interaction.guild_id or 0,
            channel_id=interaction.channel_id,
            user_id=interaction.user.id,
        )
        try:
            await interaction.client.runtime.throttles.command(where)
        except RateLimited as limited:
            await interaction.client.runtime.story.guard.record_rate_limit(limited)
            await send_error(interaction, str(limited))
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction[TaleweaverBot], error: app_commands.AppCommandError
    ) -> None:
        """Explain refusals to the user; log anything unexpected."""
        await send_error(interaction, explain_command_error(interaction, error))
        # A host who finds their story paused learns why even when the command failed.
        await deliver_host_notice(interaction)


async def deliver_host_notice(interaction: discord.Interaction[TaleweaverBot]) -> None:
    """Tell a story's host, privately and once, why the bot paused their story.

    The story keeps the reason until its host next uses a command in its channel (or
    resumes it); the server's audit log keeps it for the moderators.
    """
    if interaction.channel_id is None or interaction.guild_id is None:
        return
    try:
        notice = await interaction.client.runtime.story.lifecycle.take_host_notice(
            interaction.channel_id, actor_from_user(interaction.user)
        )
    except Exception:
        log.exception("could not read the host's notice in channel %s", interaction.channel_id)
        return
    if notice is None:
        return
    content = f"⚠️ {notice}"
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                content, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException as exc:
        log.warning("could not tell the host in channel %s: %s", interaction.channel_id, exc)


def explain_command_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> str:
    """Return the user-facing message for a failed command (and log unexpected failures)."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(original, StoryError):
        return str(original)
    if isinstance(error, app_commands.NoPrivateMessage):
        return "Stories live in server channels: use this command there."
    if isinstance(error, app_commands.MissingPermissions):
        return "You need the Manage Server permission (or the moderator role) for this."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
        return f"I am missing permissions in this channel: {missing}. Ask a moderator."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here."
    if isinstance(error, app_commands.TransformerError):
        return f"That value was not understood: {error.value!r}."
    command = interaction.command.qualified_name if interaction.command else "?"
    log.error("command /%s failed", command, exc_info=original)
    return SOMETHING_WENT_WRONG


def _log_progress(message: str) -> None:
    # Loading (and on first start converting) the model takes a while; say what is happening.
    log.info("%s", message)


class TaleweaverBot(commands.Bot):
    """The Taleweaver Discord bot: opens the story runtime and plays stories in channels."""

    def __init__(
        self,
        settings: Settings,
        *,
        options: BotOptions | None = None,
        runtime_factory: RuntimeFactory | None = None,
        processor_factory: ProcessorFactory | None = None,
        clock: Clock = utc_now,
        monotonic: MonotonicClock = time.monotonic,
        **client_options: Any,
    ) -> None:
        self.settings = settings
        self.options = options or BotOptions()
        self._runtime_factory = runtime_factory
        self._processor_factory = processor_factory
        self._clock = clock
        self._runtime: StoryRuntime | None = None
        self._exports: ExportService | None = None
        self._closing: asyncio.Future[None] | None = None
        # Event handlers doing story work that closing waits for (see finish_before_close).
        self._handlers_at_work: set[asyncio.Task[Any]] = set()
        client_options.setdefault("http_trace", discord_http_trace())
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            tree_cls=StoryCommandTree,
            intents=build_intents(
                message_content=self.options.message_content,
                members=self.options.members_intent,
            ),
            allowed_mentions=discord.AllowedMentions.none(),
            **client_options,
        )
        self.departures = Departures(
            self, self.resolve_channel, via_messages=self.options.message_content
        )
        self.narration = DiscordNarrationListener(
            self.resolve_channel,
            view_factory=narrator_view,
            vote_view_factory=vote_view,
            via_messages=self.options.message_content,
            edit_interval=self.options.edit_interval_seconds,
            clock=monotonic,
            departures=self.departures,
        )

    @property
    def via_messages(self) -> bool:
        """Tell whether players may write turns as plain messages."""
        return self.options.message_content

    @property
    def runtime(self) -> StoryRuntime:
        """Return the opened story runtime."""
        if self._runtime is None:
            raise RuntimeError("the story runtime is not open yet")
        return self._runtime

    @property
    def exports(self) -> ExportService:
        """Return the export service."""
        if self._exports is None:
            raise RuntimeError("the story runtime is not open yet")
        return self._exports

    async def _open_runtime(self) -> StoryRuntime:
        if self._runtime_factory is not None:
            return await self._runtime_factory(self.narration, self.narration.timed_out)
        return await StoryRuntime.open(
            self.settings,
            listener=self.narration,
            on_timeout=self.narration.timed_out,
            clock=self._clock,
            load_progress=_log_progress,
            processor_factory=self._processor_factory,
        )

    async def setup_hook(self) -> None:
        """Open the runtime, register persistent buttons, load cogs and sync commands."""
        self._runtime = await self._open_runtime()
        self._runtime.timers.on_reminder = self.narration.turn_reminder
        self._runtime.timers.on_vote_closed = self.narration.vote_closed
        self.narration.bind(self._runtime.story)
        self.departures.bind(self._runtime.story)
        self._exports = self._runtime.exports
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        cogs = ALWAYS_LOADED_COGS + (MESSAGE_COGS if self.options.message_content else ())
        for name in cogs:
            await self.load_extension(name)
        if not self.options.message_content:
            log.info("message content intent off: players write turns with /story write")
        if self.options.sync_commands:
            await self.sync_commands()

    async def sync_commands(self) -> None:
        """Register the slash commands (on the development server only, when one is set)."""
        guild_id = self.options.command_guild_id
        if guild_id is None:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))
            return
        guild = discord.Object(id=guild_id)
        self.tree.copy_global_to(guild=guild)
        synced = await self.tree.sync(guild=guild)
        log.info("synced %d commands to server %s", len(synced), guild_id)

    async def close(self) -> None:
        """Finish passages in flight, disconnect, then stop the narrator, timers and database.

        Calling it again (a signal, then the end of ``async with``) waits for the first call.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close_once())
        await asyncio.shield(self._closing)

    async def _close_once(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.narration.drain(), timeout=CLOSE_DRAIN_SECONDS)
        try:
            # A half-streamed passage would keep its cursor forever: the next process posts
            # the whole passage anew.
            await self.narration.withdraw_unfinished()
        except Exception:
            log.exception("could not withdraw unfinished narrator messages")
        try:
            await super().close()
        finally:
            await self.narration.close()
            if self._handlers_at_work:
                # Their database connections must be back before the database closes.
                await asyncio.wait(set(self._handlers_at_work), timeout=CLOSE_DRAIN_SECONDS)
            if self._runtime is not None:
                runtime, self._runtime = self._runtime, None
                await runtime.close()

    async def finish_before_close(self, work: Awaitable[T]) -> T:
        """Run an event handler's story WORK so that closing the bot waits for it.

        Handlers of READY and of server changes read and change stories in tasks of their
        own; a bot stopped right after connecting must not close the database under them.
        """
        task = asyncio.current_task()
        if task is not None:
            self._handlers_at_work.add(task)
        try:
            return await work
        finally:
            if task is not None:
                self._handlers_at_work.discard(task)

    async def on_message(self, message: discord.Message, /) -> None:
        """Ignore text commands: every command is a slash command (the turns cog listens too)."""

    async def on_app_command_completion(
        self, interaction: discord.Interaction[TaleweaverBot], command: object
    ) -> None:
        """After a command, tell a story's host why the bot paused it, if it did."""
        await deliver_host_notice(interaction)

    async def on_ready(self) -> None:
        """Log who we are once connected."""
        user = self.user
        log.info(
            "connected as %s (%s) to %d servers", user, user.id if user else "?", len(self.guilds)
        )

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """Log errors from event handlers instead of printing them."""
        log.exception("unhandled error in %s", event_method)

    async def resolve_channel(self, channel_id: int) -> discord.abc.Messageable | None:
        """Return a channel or thread by id, fetching it when it is not cached (after a restart).

        A story's thread that Discord archived (a week without messages) is reopened where
        the bot may; a channel Discord no longer knows ends its stories.
        """
        channel: Any = self.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.fetch_channel(channel_id)
            except discord.NotFound as exc:
                log.warning("channel %s cannot be reached: %s", channel_id, exc)
                if exc.code == UNKNOWN_CHANNEL:
                    await self.close_deleted_channel(channel_id)
                return None
            except discord.HTTPException as exc:
                log.warning("channel %s cannot be reached: %s", channel_id, exc)
                return None
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("channel %s cannot hold messages", channel_id)
            return None
        if isinstance(channel, discord.Thread):
            await reopen_thread(channel)
        return channel

    async def close_deleted_channel(self, channel_id: int) -> None:
        """End the stories of a deleted channel or thread; they stay exportable."""
        try:
            ended = await self.runtime.story.lifecycle.close_deleted_channel(channel_id)
        except Exception:
            log.exception("could not end the stories of deleted channel %s", channel_id)
            return
        for view in ended:
            await self.narration.discard_session(view.id)


class ShardedTaleweaverBot(TaleweaverBot, commands.AutoShardedBot):
    """The bot over several gateway connections (shards) in one process.

    Discord asks a bot in many servers (it requires it from 2,500) to spread them over
    shards; each server's events come through one of them. Everything else is the same bot.
    """


def make_bot(
    settings: Settings, *, options: BotOptions, shards: int, **client_options: Any
) -> TaleweaverBot:
    """Return the bot for SHARDS gateway connections: plain for one, auto-sharded for more."""
    if shards > 1:
        log.info("connecting to Discord over %d shards", shards)
        return ShardedTaleweaverBot(
            settings, options=options, shard_count=shards, **client_options
        )
    return TaleweaverBot(settings, options=options, **client_options)


async def recommended_shards(token: str) -> int:
    """Ask Discord how many shards it recommends for this bot (GET /gateway/bot)."""
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await http.static_login(token)
        shards, _url, _limits = await http.get_bot_gateway()
    except discord.GatewayNotFound as exc:
        # Connecting will meet the same trouble and say so; one shard is the plain client.
        log.warning("Discord did not say how many shards to use (%s); using one", exc)
        return 1
    finally:
        await http.close()
    return max(1, int(shards))


class GracefulShutdown:
    """Make the first SIGTERM or SIGINT close the bot the way ``close()`` does.

    Passages being written get a few seconds to reach Discord; what is still unfinished
    is withdrawn (its job stays pending in the database and the next start queues it
    again), the in-process worker hands its batch back, then the connections close.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, bot: TaleweaverBot) -> None:
        self._bot = bot
        self._loop = asyncio.get_running_loop()
        self._closing: asyncio.Task[None] | None = None
        self._signalled = asyncio.Event()

    def install(self) -> None:
        """Handle the signals on the running loop (Unix, main thread)."""
        for signum in self.SIGNALS:
            self._loop.add_signal_handler(signum, self._stop, signum)

    def uninstall(self) -> None:
        """Give the signals back their default handling."""
        for signum in self.SIGNALS:
            self._loop.remove_signal_handler(signum)

    def _stop(self, signum: int) -> None:
        log.info("%s: finishing passages in flight, then stopping", signal.Signals(signum).name)
        # A second signal is not ignored: it ends the process at once, as by default.
        self.uninstall()
        self._closing = self._loop.create_task(self._bot.close(), name="graceful-shutdown")
        self._signalled.set()

    async def wait(self) -> None:
        """Wait until a signal arrived and the bot is closed."""
        await self._signalled.wait()
        assert self._closing is not None
        await self._closing


async def run_bot(settings: Settings, *, token: str, options: BotOptions | None = None) -> None:
    """Connect to Discord with TOKEN and play stories until SIGTERM or SIGINT."""
    options = options or BotOptions()
    try:
        shards = options.shards or await recommended_shards(token)
    except discord.LoginFailure as exc:
        raise BotStartError(TOKEN_REFUSED) from exc
    bot = make_bot(settings, options=options, shards=shards)
    try:
        async with bot:
            shutdown = GracefulShutdown(bot)
            shutdown.install()
            try:
                await bot.start(token)
            finally:
                shutdown.uninstall()
    except discord.LoginFailure as exc:
        raise BotStartError(TOKEN_REFUSED) from exc
    except discord.PrivilegedIntentsRequired as exc:
        raise BotStartError(privileged_intents_refused(bot.options)) from exc


def privileged_intents_refused(options: BotOptions) -> str:
    """Say which privileged intents the bot asked for and how to enable or drop them."""
    if not options.members_intent:
        return (
            "The Message Content intent is not enabled for this bot: enable it in the "
            "Developer Portal (Bot > Privileged Gateway Intents), or turn message turns off "
            "so players write with /story write."
        )
    asked = "Message Content and Server Members" if options.message_content else "Server Members"
    return (
        f"The bot asks for the {asked} intents, and Discord refused: enable them in the "
        "Developer Portal (Bot > Privileged Gateway Intents), or set "
        "TALEWEAVER_DISCORD_MEMBERS_INTENT=false (departures are then found when a player's "
        "turn comes)" + (" or turn message turns off." if options.message_content else ".")
    )
