"""A local Discord API double: REST routes checked against the spec, plus the gateway.

The double is one object to tests, but its parts are mixins over shared state (state.py)
so that each concern reads on its own: bookkeeping.py (what tests observe),
message_model.py, user_actions.py, router.py, and handlers_*.py per resource family.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from .gateway import GatewayHub
from .guild_changes import GuildChanges
from .handlers_application import APPLICATION_FLAGS, ApplicationRoutes
from .handlers_channels import ChannelRoutes
from .handlers_interactions import InteractionRoutes
from .message_model import HAS_THREAD
from .models import (
    InteractionRecord,
    RateLimitRule,
    Reaction,
    RequestRecord,
    Snowflakes,
    StoredMessage,
    UploadedFile,
)
from .rate_limits import RateLimiter
from .rest import ApiError, Call, Handler, Reply
from .router import API_PREFIX, RestRouter
from .spec import ApiSpec, load_spec, locate_spec
from .user_actions import UserActions
from .world import GuildWorld

# Importers have always found these here; the names now live beside the code using them.
__all__ = [
    "API_PREFIX",
    "APPLICATION_FLAGS",
    "DEFAULT_UPLOAD_LIMIT",
    "HAS_THREAD",
    "MIB",
    "ApiError",
    "Call",
    "DiscordDouble",
    "Handler",
    "Reply",
]

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MIB


class DiscordDouble(
    GuildChanges, UserActions, ApplicationRoutes, InteractionRoutes, ChannelRoutes, RestRouter
):
    """A Discord API double on 127.0.0.1 for the real discord.py client."""

    def __init__(
        self,
        spec: ApiSpec | None = None,
        *,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        interaction_ack_timeout: float = 3.0,
        interaction_token_lifetime: float = 15 * 60.0,
        message_content_limit: int = 2000,
        validate_responses: bool = False,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        if spec is None:
            path = locate_spec()
            if path is None:
                raise FileNotFoundError("Discord's OpenAPI spec was not found")
            spec = load_spec(path)
        self.spec = spec
        self.upload_limit = upload_limit
        self.interaction_ack_timeout = interaction_ack_timeout
        self.interaction_token_lifetime = interaction_token_lifetime
        # What GET /gateway/bot recommends; the gateway serves shards as Discord does.
        self.recommended_shards = 1
        self.message_content_limit = message_content_limit
        self.validate_responses = validate_responses
        self.ids = Snowflakes()
        self.world = GuildWorld(self.ids)
        self.token = f"{self.world.application_id}.double.{secrets.token_urlsafe(16)}"
        self.violations: list[str] = []
        self.requests: list[RequestRecord] = []
        self.messages: dict[int, StoredMessage] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.synced_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.reactions: list[Reaction] = []
        self.typing: list[tuple[int, float]] = []
        self.thread_members: dict[int, set[int]] = {}
        self.gateway = GatewayHub(self, heartbeat_interval_ms=heartbeat_interval_ms)
        self._files: dict[int, UploadedFile] = {}
        self._rate_limits: list[RateLimitRule] = []
        self.rate_limiter = RateLimiter()
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._changed = asyncio.Event()
        self._clients: list[tuple[discord.Client, asyncio.Task[None]]] = []
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self.port = 0
        self._handlers: dict[tuple[str, str], Handler] = self._routes()

    def _routes(self) -> dict[tuple[str, str], Handler]:
        return {
            **self._application_routes(),
            **self._interaction_routes(),
            **self._channel_routes(),
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on a free port and point discord.py at it."""
        app = web.Application(client_max_size=max(4 * self.upload_limit, 64 * MIB))
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_route("*", "/{tail:.*}", self._handle_rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = f"{self.base_url}{API_PREFIX}"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    async def close(self) -> None:
        """Stop leftover clients and the server; give discord.py its real URLs back."""
        for client, task in list(self._clients):
            await self._stop_client(client, task)
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    async def __aenter__(self) -> DiscordDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def run_client(
        self,
        client: discord.Client,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the wait names what it waited for
    ) -> AsyncIterator[discord.Client]:
        """Log a client in, connect it, wait for READY, and close it on exit."""
        task: asyncio.Task[None] | None = None
        try:
            await client.login(self.token)
            task = asyncio.create_task(client.connect(reconnect=True), name="double-client")
            self._clients.append((client, task))
            ready = asyncio.create_task(client.wait_until_ready())
            await asyncio.wait({ready, task}, timeout=timeout, return_when="FIRST_COMPLETED")
            if not ready.done():
                ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ready
                if task.done():
                    task.result()
                raise AssertionError(f"the client did not become ready within {timeout}s")
            yield client
        finally:
            if task is None:
                await client.close()
            else:
                await self._stop_client(client, task)

    async def _stop_client(self, client: discord.Client, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._clients.remove((client, task))
        await client.close()
        try:
            await asyncio.wait_for(task, timeout=5.0)
        except (discord.ConnectionClosed, discord.LoginFailure) as exc:
            log.debug("client stopped with %r", exc)
