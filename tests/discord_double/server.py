"""A local Discord API double: REST routes checked against the spec, plus the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, web

from .gateway import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILDS,
    Dispatch,
    GatewayHub,
)
from .interactions import (
    CommandDataBuilder,
    InvocationError,
    attachment_payload,
    component_data,
    find_command,
    modal_submit_data,
)
from .messages import (
    attachment_descriptions,
    emoji_object,
    is_empty_message,
    message_rule_problems,
    normalise_embed,
    notified,
    number_components,
    strip_content,
)
from .models import (
    EPHEMERAL,
    LOADING,
    CallbackRecord,
    DoubleChannel,
    DoubleUser,
    InteractionRecord,
    RateLimitRule,
    Reaction,
    RequestRecord,
    Snowflakes,
    StoredMessage,
    UploadedFile,
    iso,
)
from .spec import ApiSpec, Operation, load_spec, locate_spec, validate_command_definitions
from .world import GuildWorld

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MIB
APPLICATION_FLAGS = (1 << 15) | (1 << 19) | (1 << 23)
HAS_THREAD = 1 << 5
_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
# Interaction type -> callback types Discord accepts for it.
_CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
T = TypeVar("T")


class ApiError(Exception):
    """An error response in Discord's shape, optionally recorded as a violation."""

    def __init__(
        self, status: int, code: int, message: str, *, violation: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.violation = violation


@dataclass
class Call:
    """One REST request, parsed."""

    method: str
    path: str
    operation: Operation
    params: dict[str, str]
    query: dict[str, str]
    body: Any = None
    files: list[UploadedFile] = field(default_factory=list)

    def flag(self, name: str) -> bool:
        """Read a boolean query parameter the way Discord does."""
        return self.query.get(name, "").lower() in {"true", "1"}


Reply = tuple[int, Any]
Handler = Callable[[Call], Awaitable[Reply]]


class DiscordDouble:
    """A Discord API double on 127.0.0.1 for the real discord.py client."""

    def __init__(
        self,
        spec: ApiSpec | None = None,
        *,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        interaction_ack_timeout: float = 3.0,
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
        self._command_ids: dict[tuple[int | None, str, int], int] = {}
        self._changed = asyncio.Event()
        self._clients: list[tuple[discord.Client, asyncio.Task[None]]] = []
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self.port = 0
        self._handlers: dict[tuple[str, str], Handler] = self._routes()

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        """Return the http origin the double listens on."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        """Return the gateway websocket URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

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

    # ------------------------------------------------------------ world shortcuts

    @property
    def guild(self) -> GuildWorld:
        """Return the guild (id, roles, channels, members)."""
        return self.world

    @property
    def channels(self) -> dict[str, DoubleChannel]:
        """Return the named text channels: general, story, mature-stories (age-restricted)."""
        return self.world.channels

    @property
    def users(self) -> dict[str, DoubleUser]:
        """Return the named members: alice, bob, cara, dan, moderator, owner."""
        return self.world.users

    @property
    def players(self) -> list[DoubleUser]:
        """Return the members without special permissions."""
        return [self.users[name] for name in ("alice", "bob", "cara", "dan")]

    @property
    def moderator(self) -> DoubleUser:
        """Return the member whose role grants Manage Server."""
        return self.users["moderator"]

    @property
    def bot_user(self) -> DoubleUser:
        """Return the bot's own account."""
        return self.world.bot

    @property
    def threads(self) -> list[DoubleChannel]:
        """Return every thread, in creation order."""
        return [c for c in self.world.channels_by_id.values() if c.is_thread]

    # -------------------------------------------------------------- bookkeeping

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

    # -------------------------------------------------------------- user actions

    async def send_message(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        content: str = "",
        *,
        files: Sequence[tuple[str, bytes]] = (),
        reply_to: StoredMessage | None = None,
    ) -> StoredMessage:
        """Post a message as a member and dispatch MESSAGE_CREATE."""
        author = self._user(user)
        target = self._channel(channel)
        uploads = [self._host(name, data) for name, data in files]
        body: dict[str, Any] = {"content": content}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(reply_to.id)}
        message = self._new_message(target, author, body, uploads)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: StoredMessage | int, content: str) -> StoredMessage:
        """Edit a member's message and dispatch MESSAGE_UPDATE."""
        stored = self._message(message)
        stored.payload["content"] = content
        self._refresh_mentions(stored, None)
        stored.payload["edited_timestamp"] = iso()
        stored.edit_times.append(time.monotonic())
        await self._dispatch_message("MESSAGE_UPDATE", stored)
        return stored

    async def delete_message(self, message: StoredMessage | int) -> None:
        """Delete a message and dispatch MESSAGE_DELETE."""
        await self._delete(self._message(message))

    async def add_reaction(
        self, user: DoubleUser | str, message: StoredMessage | int, emoji: str
    ) -> Reaction:
        """React to a message as a member and dispatch MESSAGE_REACTION_ADD."""
        return await self._react(self._user(user), self._message(message), emoji)

    async def create_thread(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        name: str,
        *,
        message: StoredMessage | None = None,
        private: bool = False,
    ) -> DoubleChannel:
        """Open a thread as a member and dispatch THREAD_CREATE."""
        owner = self._user(user)
        kind = 12 if private else 11
        return await self._open_thread(self._channel(channel), owner, name, kind, message, 1440)

    async def update_channel(
        self, channel: int | str | DoubleChannel, **changes: Any
    ) -> DoubleChannel:
        """Change channel fields (name, topic, nsfw, archived, locked) and dispatch the update."""
        target = self._channel(channel)
        for key, value in changes.items():
            if not hasattr(target, key):
                raise AttributeError(f"channels have no field {key!r}")
            setattr(target, key, value)
        event = "THREAD_UPDATE" if target.is_thread else "CHANNEL_UPDATE"
        await self.gateway.dispatch(
            Dispatch(event, self.world.channel_payload(target), intent=GUILDS)
        )
        return target

    async def invoke(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        command: str,
        path: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
    ) -> InteractionRecord:
        """Run a slash command as a member, built from the definitions the bot synced."""
        definition = find_command(self.synced_commands, self.world.guild_id, command)
        builder = CommandDataBuilder(self.world, self._host_attachment)
        data = builder.build(definition, path, options or {})
        return await self._interact(2, self._user(user), self._channel(channel), data)

    async def autocomplete(
        self,
        user: DoubleUser | str,
        channel: int | str | DoubleChannel,
        command: str,
        path: Sequence[str],
        options: Mapping[str, Any],
        focused: str,
    ) -> InteractionRecord:
        """Type into an autocompleted option; the record's autocomplete_choices hold the answer."""
        definition = find_command(self.synced_commands, self.world.guild_id, command)
        builder = CommandDataBuilder(self.world, self._host_attachment)
        data = builder.build(definition, path, options, focused=focused)
        return await self._interact(4, self._user(user), self._channel(channel), data)

    async def click(
        self,
        user: DoubleUser | str,
        message: StoredMessage | int,
        custom_id: str,
        *,
        values: Sequence[str] | None = None,
    ) -> InteractionRecord:
        """Press a button (or choose select values) on a message."""
        stored = self._message(message)
        data = component_data(stored.components, custom_id, values)
        channel = self.world.channels_by_id[stored.channel_id]
        return await self._interact(3, self._user(user), channel, data, message=stored)

    async def submit_modal(
        self,
        user: DoubleUser | str,
        interaction: InteractionRecord,
        values: Mapping[str, Any],
    ) -> InteractionRecord:
        """Fill in and submit the modal the bot opened for an interaction."""
        data = modal_submit_data(interaction.modal, values)
        channel = self.world.channels_by_id[interaction.channel_id]
        source = self.messages.get(int(interaction.payload.get("message", {}).get("id", 0)))
        return await self._interact(
            5, self._user(user), channel, data, message=source, triggered_by=interaction
        )

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close the gateway sockets from the server side; the client resumes."""
        await self.gateway.drop_connections(code)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; the client reconnects and resumes."""
        await self.gateway.send_op(7)

    async def invalidate_session(self) -> None:
        """Send op 9 (not resumable); the client identifies afresh."""
        await self.gateway.send_op(9, False)

    # ------------------------------------------------------------ gateway payloads

    def ready_payload(self, session_id: str) -> dict[str, Any]:
        """Return READY's data for a new session."""
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None, bot=True)
        return {
            "v": 10,
            "user": user,
            "user_settings": {},
            "guilds": [{"id": str(self.world.guild_id), "unavailable": True}],
            "guild_join_requests": [],
            "relationships": [],
            "private_channels": [],
            "presences": [],
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.world.application_id), "flags": APPLICATION_FLAGS},
            "geo_ordered_rtc_regions": ["local"],
            "auth": {},
            "_trace": ['["discord-api-double"]'],
        }

    def application_payload(self) -> dict[str, Any]:
        """Return the bot's application object."""
        return {
            "id": str(self.world.application_id),
            "name": "Taleweaver",
            "icon": None,
            "description": "Round-robin storytelling",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.world.owner.payload(),
            "team": None,
            "flags": APPLICATION_FLAGS,
            "bot": self.bot_user.payload(),
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "rpc_origins": [],
            "approximate_guild_count": 1,
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "flags_new": str(APPLICATION_FLAGS),
            "eligible_oauth2_scopes": ["applications.commands", "bot"],
            "is_monetized": False,
            "explicit_content_filter": 0,
            "integration_types_config": {"0": {}},
        }

    # ------------------------------------------------------------------ routing

    def _routes(self) -> dict[tuple[str, str], Handler]:
        app_commands = "/applications/{application_id}/commands"
        guild_commands = "/applications/{application_id}/guilds/{guild_id}/commands"
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        message = "/channels/{channel_id}/messages/{message_id}"
        reaction = message + "/reactions/{emoji_name}"
        return {
            ("GET", "/users/@me"): self._get_me,
            ("GET", "/users/{user_id}"): self._get_user,
            ("POST", "/users/@me/channels"): self._open_dm,
            ("GET", "/oauth2/applications/@me"): self._get_application,
            ("GET", "/applications/@me"): self._get_application,
            ("GET", "/gateway"): self._get_gateway,
            ("GET", "/gateway/bot"): self._get_gateway_bot,
            ("GET", app_commands): self._get_commands,
            ("PUT", app_commands): self._put_commands,
            ("POST", app_commands): self._post_command,
            ("GET", guild_commands): self._get_commands,
            ("PUT", guild_commands): self._put_commands,
            ("POST", guild_commands): self._post_command,
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"): self._callback,
            ("POST", hook): self._post_followup,
            ("GET", hook + "/messages/@original"): self._get_webhook_message,
            ("PATCH", hook + "/messages/@original"): self._edit_webhook_message,
            ("DELETE", hook + "/messages/@original"): self._delete_webhook_message,
            ("GET", hook + "/messages/{message_id}"): self._get_webhook_message,
            ("PATCH", hook + "/messages/{message_id}"): self._edit_webhook_message,
            ("DELETE", hook + "/messages/{message_id}"): self._delete_webhook_message,
            ("GET", "/channels/{channel_id}"): self._get_channel,
            ("PATCH", "/channels/{channel_id}"): self._patch_channel,
            ("GET", "/channels/{channel_id}/messages"): self._list_messages,
            ("POST", "/channels/{channel_id}/messages"): self._create_message,
            ("GET", message): self._get_message,
            ("PATCH", message): self._edit_message,
            ("DELETE", message): self._delete_message,
            ("PUT", reaction + "/@me"): self._put_reaction,
            ("DELETE", reaction + "/@me"): self._delete_reactions,
            ("DELETE", reaction + "/{user_id}"): self._delete_reactions,
            ("DELETE", reaction): self._delete_reactions,
            ("DELETE", message + "/reactions"): self._delete_reactions,
            ("PUT", "/channels/{channel_id}/messages/pins/{message_id}"): self._pin,
            ("DELETE", "/channels/{channel_id}/messages/pins/{message_id}"): self._pin,
            ("PUT", "/channels/{channel_id}/pins/{message_id}"): self._pin,
            ("DELETE", "/channels/{channel_id}/pins/{message_id}"): self._pin,
            ("POST", "/channels/{channel_id}/threads"): self._create_thread,
            ("POST", message + "/threads"): self._create_thread,
            ("PUT", "/channels/{channel_id}/thread-members/@me"): self._thread_member,
            ("DELETE", "/channels/{channel_id}/thread-members/@me"): self._thread_member,
            ("PUT", "/channels/{channel_id}/thread-members/{user_id}"): self._thread_member,
            ("DELETE", "/channels/{channel_id}/thread-members/{user_id}"): self._thread_member,
            ("POST", "/channels/{channel_id}/typing"): self._typing,
            ("GET", "/guilds/{guild_id}"): self._get_guild,
            ("GET", "/guilds/{guild_id}/channels"): self._get_guild_channels,
            ("GET", "/guilds/{guild_id}/roles"): self._get_roles,
            ("GET", "/guilds/{guild_id}/members/{user_id}"): self._get_member,
            ("GET", "/guilds/{guild_id}/threads/active"): self._get_active_threads,
        }

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        raw_path = request.rel_url.raw_path
        if not raw_path.startswith(API_PREFIX + "/"):
            self.record_violation(f"{method} {raw_path}: unhandled route (not under {API_PREFIX})")
            return _error(404, 0, "404: Not Found")
        path = "/".join(unquote(part) for part in raw_path[len(API_PREFIX) :].split("/"))
        query = dict(request.query)
        try:
            body, files = await self._read_body(request)
        except ApiError as exc:
            return self._fail(method, path, None, query, exc)
        found = self.spec.find_operation(method, path)
        if found is None:
            where = "the path exists" if self.spec.path_exists(path) else "no such path"
            unknown = ApiError(
                404,
                0,
                "404: Not Found",
                violation=f"unhandled route: not in Discord's API spec ({where} for other methods)",
            )
            return self._fail(method, path, None, query, unknown, body)
        operation, params = found
        problems = self._check_request(request, operation, params, query, body, files)
        if problems:
            for problem in problems:
                self.record_violation(f"{method} {path}: {problem}")
            unauthorised = any("Authorization" in p for p in problems)
            response = (
                _error(401, 0, "401: Unauthorized") if unauthorised else _invalid_form(problems)
            )
            return self._finish(method, path, operation, query, body, response)
        limited = self._take_rate_limit(method, operation.template)
        if limited is not None:
            return self._finish(method, path, operation, query, body, limited)
        handler = self._handlers.get((method, operation.template))
        if handler is None:
            unimplemented = ApiError(
                404,
                0,
                "404: Not Found",
                violation=f"unhandled route: {operation.template} is in the spec "
                "but the double does not implement it",
            )
            return self._fail(method, path, operation, query, unimplemented, body)
        call = Call(method, path, operation, params, query, body, files)
        try:
            status, data = await handler(call)
        except ApiError as exc:
            return self._fail(method, path, operation, query, exc, body)
        if self.validate_responses and data is not None:
            self._check_response(call, status, data)
        response = _json(status, data) if data is not None else web.Response(status=204)
        _add_rate_limit_headers(response, operation.template)
        return self._finish(method, path, operation, query, body, response)

    def _check_request(
        self,
        request: web.Request,
        operation: Operation,
        params: dict[str, str],
        query: dict[str, str],
        body: Any,
        files: list[UploadedFile],
    ) -> list[str]:
        problems = []
        auth = request.headers.get("Authorization")
        expected = f"Bot {self.token}"
        if operation.bot_token_required and auth != expected:
            problems.append("missing or wrong 'Authorization: Bot <token>' header")
        elif auth is not None and auth != expected:
            problems.append("wrong Authorization header")
        problems.extend(self.spec.validate_path_parameters(operation, params))
        problems.extend(self.spec.validate_query(operation, query))
        content_type = request.content_type
        if body is not None or files:
            problems.extend(self.spec.validate_body(operation, content_type, body or {}))
        elif operation.definition.get("requestBody", {}).get("required"):
            problems.append("a request body is required")
        return problems

    def _check_response(self, call: Call, status: int, data: Any) -> None:
        pointer = f"{call.operation.pointer}/responses/{status}/content/application~1json/schema"
        node: Any = self.spec.document
        for part in pointer.strip("/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                return
            node = node[key]
        for problem in self.spec.schema_errors(pointer, data, root="(response)"):
            self.record_violation(
                f"{call.method} {call.path}: the double answered badly: {problem}"
            )

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if not request.body_exists:
            return None, []
        if request.content_type == "multipart/form-data":
            return await self._read_multipart(request)
        raw = await request.read()
        if not raw:
            return None, []
        if request.content_type != "application/json":
            raise ApiError(
                400,
                50109,
                "The request body contains invalid JSON.",
                violation=f"unexpected content type {request.content_type!r}",
            )
        try:
            return json.loads(raw), []
        except json.JSONDecodeError as exc:
            raise ApiError(
                400,
                50109,
                "The request body contains invalid JSON.",
                violation=f"body is not JSON: {exc}",
            ) from exc

    async def _read_multipart(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        reader = await request.multipart()
        payload: Any = None
        parts: list[tuple[int, str, bytes, str | None]] = []
        too_big: list[str] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, 50035, "Invalid Form Body", violation="nested multipart body")
            name = part.name
            data = bytearray()
            while chunk := await part.read_chunk():
                data.extend(chunk)
            if name == "payload_json":
                try:
                    payload = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise ApiError(
                        400,
                        50109,
                        "The request body contains invalid JSON.",
                        violation=f"payload_json is not JSON: {exc}",
                    ) from exc
                continue
            match = _FILE_FIELD.match(name or "")
            if match is None:
                raise ApiError(
                    400,
                    50035,
                    "Invalid Form Body",
                    violation=f"unexpected multipart field {name!r}",
                )
            filename = part.filename or f"file{match.group(1)}"
            if len(data) > self.upload_limit:
                too_big.append(f"{filename} ({len(data)} bytes)")
            content_type = part.headers.get("Content-Type")
            parts.append((int(match.group(1)), filename, bytes(data), content_type))
        if too_big:
            raise ApiError(
                413,
                40005,
                "Request entity too large",
                violation=f"upload over the {self.upload_limit}-byte limit: {', '.join(too_big)}",
            )
        descriptions = attachment_descriptions(payload)
        files = [
            self._store_file(filename, data, content_type, descriptions.get(index))
            for index, filename, data, content_type in parts
        ]
        return payload, files

    def _take_rate_limit(self, method: str, template: str) -> web.Response | None:
        for rule in self._rate_limits:
            if rule.method == method and rule.template == template and rule.remaining > 0:
                rule.remaining -= 1
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": rule.retry_after,
                    "global": rule.is_global,
                }
                if rule.is_global:
                    body["code"] = 0
                response = _json(429, body)
                response.headers.update(
                    {
                        "Retry-After": str(max(1, round(rule.retry_after))),
                        "X-RateLimit-Limit": "5",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
                        "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
                        "X-RateLimit-Bucket": _bucket(template),
                        "X-RateLimit-Scope": "global" if rule.is_global else "user",
                        # discord.py treats a 429 without Via as a Cloudflare ban.
                        "Via": "1.1 google",
                    }
                )
                return response
        return None

    def _fail(
        self,
        method: str,
        path: str,
        operation: Operation | None,
        query: dict[str, str],
        exc: ApiError,
        body: Any = None,
    ) -> web.Response:
        if exc.violation:
            self.record_violation(f"{method} {path}: {exc.violation}")
        response = _error(exc.status, exc.code, exc.message)
        return self._finish(method, path, operation, query, body, response)

    def _finish(
        self,
        method: str,
        path: str,
        operation: Operation | None,
        query: dict[str, str],
        body: Any,
        response: web.Response,
    ) -> web.Response:
        template = operation.template if operation else None
        self.requests.append(
            RequestRecord(method, path, template, query, body, response.status, time.monotonic())
        )
        self.notify()
        return response

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        upload = self._files.get(int(request.match_info["attachment_id"]))
        if upload is None:
            return _error(404, 0, "404: Not Found")
        content_type = upload.content_type or "application/octet-stream"
        return web.Response(body=upload.content, headers={"Content-Type": content_type})

    # --------------------------------------------------------------- handlers

    async def _get_me(self, call: Call) -> Reply:
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None, locale="en-US", bio="")
        return 200, user

    async def _get_user(self, call: Call) -> Reply:
        user = self.world.user(int(call.params["user_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return 200, user.payload()

    async def _open_dm(self, call: Call) -> Reply:
        recipient = self.world.user(int(call.body["recipient_id"]))
        if recipient is None:
            raise ApiError(404, 10013, "Unknown User")
        channel = next(
            (
                c
                for c in self.world.channels_by_id.values()
                if c.type == 1 and c.recipient_ids == [recipient.id]
            ),
            None,
        )
        if channel is None:
            channel = self.world.add_channel(
                DoubleChannel(self.ids.next(), "", 1, recipient_ids=[recipient.id])
            )
        return 200, self.world.channel_payload(channel)

    async def _get_application(self, call: Call) -> Reply:
        return 200, self.application_payload()

    async def _get_gateway(self, call: Call) -> Reply:
        return 200, {"url": self.gateway_url}

    async def _get_gateway_bot(self, call: Call) -> Reply:
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }

    def _command_scope(self, call: Call) -> int | None:
        if int(call.params["application_id"]) != self.world.application_id:
            raise ApiError(
                404,
                10002,
                "Unknown Application",
                violation="application id is not the bot's own",
            )
        guild_id = call.params.get("guild_id")
        if guild_id is None:
            return None
        self._guild(guild_id)
        return int(guild_id)

    async def _get_commands(self, call: Call) -> Reply:
        return 200, self.synced_commands.get(self._command_scope(call), [])

    async def _put_commands(self, call: Call) -> Reply:
        scope = self._command_scope(call)
        commands = list(call.body or [])
        # Schema errors were caught before the handler; these are Discord's extra rules.
        problems = [
            p for p in validate_command_definitions(commands, self.spec) if p.startswith("/")
        ]
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))
        self.synced_commands[scope] = [self._stored_command(scope, c) for c in commands]
        return 200, self.synced_commands[scope]

    async def _post_command(self, call: Call) -> Reply:
        scope = self._command_scope(call)
        problems = [
            p for p in validate_command_definitions(call.body, self.spec) if p.startswith("/")
        ]
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))
        stored = self._stored_command(scope, call.body)
        existing = [
            c
            for c in self.synced_commands.get(scope, [])
            if (c["name"], c["type"]) != (stored["name"], stored["type"])
        ]
        self.synced_commands[scope] = [*existing, stored]
        return 201, stored

    def _stored_command(self, scope: int | None, definition: Mapping[str, Any]) -> dict[str, Any]:
        kind = int(definition.get("type") or 1)
        # Discord keeps a command's id across syncs while its name and type stay the same.
        key = (scope, str(definition["name"]), kind)
        command_id = self._command_ids.setdefault(key, self.ids.next())
        stored = {
            "id": str(command_id),
            "application_id": str(self.world.application_id),
            "version": str(self.ids.next()),
            "type": kind,
            "name": definition["name"],
            "description": definition.get("description") or "",
            "default_member_permissions": _opt_str(definition.get("default_member_permissions")),
            "dm_permission": definition.get("dm_permission", True),
            "nsfw": bool(definition.get("nsfw", False)),
            "contexts": definition.get("contexts"),
            "integration_types": definition.get("integration_types") or [0],
            "options": list(definition.get("options") or []),
        }
        for key_name in ("name_localizations", "description_localizations"):
            if definition.get(key_name) is not None:
                stored[key_name] = definition[key_name]
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    # -- interactions

    async def _callback(self, call: Call) -> Reply:
        record = self.interactions.get(int(call.params["interaction_id"]))
        if record is None or record.token != call.params["interaction_token"]:
            raise ApiError(
                404,
                10062,
                "Unknown interaction",
                violation="callback for an interaction the double never sent",
            )
        if record.callback is not None:
            raise ApiError(
                400,
                40060,
                "Interaction has already been acknowledged.",
                violation=f"interaction {record.id} acknowledged twice",
            )
        elapsed = time.monotonic() - record.created_at
        if elapsed > self.interaction_ack_timeout:
            raise ApiError(
                404,
                10062,
                "Unknown interaction",
                violation=f"acknowledged after {elapsed:.2f}s; Discord drops interactions "
                f"not answered within {self.interaction_ack_timeout:g}s (defer first)",
            )
        body = call.body or {}
        kind = int(body.get("type", 0))
        if kind not in _CALLBACKS_FOR.get(record.type, set()):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                violation=f"callback type {kind} is not valid for interaction type {record.type}",
            )
        data = body.get("data")
        if kind in (4, 7):
            self._check_message_rules(data or {}, call.files, creating=kind == 4)
        record.callback = CallbackRecord(kind, data)
        message: StoredMessage | None = None
        if kind in (4, 5):
            flags = int((data or {}).get("flags") or 0) & EPHEMERAL
            if kind == 5:
                body_data: dict[str, Any] = {"content": "", "flags": flags | LOADING}
            else:
                body_data = {**(data or {}), "flags": int((data or {}).get("flags") or 0)}
            message = self._interaction_message(record, body_data, call.files)
            record.original = message
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind in (6, 7):
            source = self._source_message(record)
            record.original = source
            if kind == 7 and source is not None:
                self._apply_edit(source, data or {}, call.files)
                await self._dispatch_message("MESSAGE_UPDATE", source)
                message = source
        self.notify()
        if not call.flag("with_response"):
            return 204, None
        interaction = {
            "id": str(record.id),
            "type": record.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(message is not None and message.ephemeral),
        }
        reply: dict[str, Any] = {"interaction": interaction}
        if message is not None:
            interaction["response_message_id"] = str(message.id)
        if message is not None and kind in (4, 7):
            # Discord documents the resource's message only for types 4 and 7.
            reply["resource"] = {"type": kind, "message": message.payload}
        return 200, reply

    def _interaction_for_webhook(self, call: Call) -> InteractionRecord:
        token = call.params["webhook_token"]
        record = next((r for r in self.interactions.values() if r.token == token), None)
        if int(call.params["webhook_id"]) != self.world.application_id or record is None:
            raise ApiError(
                404,
                10015,
                "Unknown Webhook",
                violation="webhook is not an interaction webhook the double issued",
            )
        if record.callback is None:
            raise ApiError(
                404,
                10015,
                "Unknown Webhook",
                violation=f"webhook used before interaction {record.id} was acknowledged",
            )
        return record

    def _webhook_target(self, call: Call, record: InteractionRecord) -> StoredMessage:
        message_id = call.params.get("message_id")
        if message_id is None:
            if record.original is None:
                raise ApiError(404, 10008, "Unknown Message")
            return record.original
        for message in self.interaction_responses(record):
            if message.id == int(message_id):
                return message
        raise ApiError(404, 10008, "Unknown Message")

    async def _post_followup(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        body = call.body or {}
        self._check_message_rules(body, call.files, creating=True)
        original = record.original
        if (
            original is not None
            and original.flags & LOADING
            and original.author_id == self.bot_user.id
        ):
            # The first follow-up after a deferred response replaces the "thinking" message.
            self._apply_edit(original, body, call.files, finish_loading=True)
            await self._dispatch_message("MESSAGE_UPDATE", original)
            message = original
        else:
            message = self._interaction_message(record, body, call.files)
            record.followups.append(message)
            await self._dispatch_message("MESSAGE_CREATE", message)
        return (200, message.payload) if call.flag("wait") else (204, None)

    async def _get_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        return 200, self._webhook_target(call, record).payload

    async def _edit_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        message = self._webhook_target(call, record)
        self._check_message_rules(call.body or {}, call.files, creating=False)
        self._apply_edit(message, call.body or {}, call.files, finish_loading=True)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return 200, message.payload

    async def _delete_webhook_message(self, call: Call) -> Reply:
        record = self._interaction_for_webhook(call)
        await self._delete(self._webhook_target(call, record))
        return 204, None

    # -- channels and messages

    async def _get_channel(self, call: Call) -> Reply:
        return 200, self.world.channel_payload(self._existing_channel(call))

    async def _patch_channel(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        body = call.body or {}
        for key in ("name", "topic", "nsfw", "archived", "locked", "rate_limit_per_user"):
            if key in body and body[key] is not None:
                setattr(channel, key, body[key])
        if body.get("auto_archive_duration"):
            channel.auto_archive_duration = int(body["auto_archive_duration"])
        payload = self.world.channel_payload(channel)
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        await self.gateway.dispatch(Dispatch(event, payload, intent=GUILDS))
        return 200, payload

    async def _list_messages(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        history = [m for m in self.messages_in(channel)]
        limit = int(call.query.get("limit", 50))
        if "before" in call.query:
            history = [m for m in history if m.id < int(call.query["before"])]
        if "after" in call.query:
            history = [m for m in history if m.id > int(call.query["after"])]
            return 200, [m.payload for m in reversed(history[:limit])]
        if "around" in call.query:
            around = int(call.query["around"])
            older = [m for m in history if m.id <= around][-((limit + 1) // 2) :]
            newer = [m for m in history if m.id > around][: limit // 2]
            return 200, [m.payload for m in reversed(older + newer)]
        return 200, [m.payload for m in reversed(history[-limit:])]

    async def _create_message(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        body = call.body or {}
        self._check_message_rules(body, call.files, creating=True)
        if channel.is_thread and (channel.archived or channel.locked):
            raise ApiError(
                400,
                50083,
                "Thread is archived",
                violation=f"posted into archived or locked thread {channel.id}",
            )
        reference = body.get("message_reference")
        if reference and reference.get("fail_if_not_exists", True):
            target = self.messages.get(int(reference.get("message_id") or 0))
            if target is None or target.deleted:
                raise ApiError(400, 50035, "Invalid Form Body")
        message = self._new_message(channel, self.bot_user, body, call.files)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return 200, message.payload

    async def _get_message(self, call: Call) -> Reply:
        return 200, self._existing_message(call).payload

    async def _edit_message(self, call: Call) -> Reply:
        message = self._existing_message(call)
        if message.author_id != self.bot_user.id:
            raise ApiError(
                403,
                50005,
                "Cannot edit a message authored by another user",
                violation=f"edited message {message.id} written by someone else",
            )
        self._check_message_rules(call.body or {}, call.files, creating=False)
        self._apply_edit(message, call.body or {}, call.files)
        await self._dispatch_message("MESSAGE_UPDATE", message)
        return 200, message.payload

    async def _delete_message(self, call: Call) -> Reply:
        await self._delete(self._existing_message(call))
        return 204, None

    async def _put_reaction(self, call: Call) -> Reply:
        message = self._existing_message(call)
        await self._react(self.bot_user, message, call.params["emoji_name"])
        return 204, None

    async def _delete_reactions(self, call: Call) -> Reply:
        """Remove the bot's, one user's, one emoji's, or all reactions, by the route used."""
        message = self._existing_message(call)
        emoji = call.params.get("emoji_name")
        if call.operation.template.endswith("/@me"):
            user_id: int | None = self.bot_user.id
        else:
            user_id = int(call.params["user_id"]) if "user_id" in call.params else None
        removed = [
            r
            for r in self.reactions
            if r.message_id == message.id
            and (emoji is None or r.emoji == emoji)
            and (user_id is None or r.user_id == user_id)
        ]
        for reaction in removed:
            self.reactions.remove(reaction)
        self._refresh_reactions(message)
        intent = self._reaction_intent(message)
        if user_id is not None:
            for reaction in removed:
                user = self._user(reaction.user_id)
                data = self._reaction_event(user, message, reaction.emoji)
                await self.gateway.dispatch(
                    Dispatch("MESSAGE_REACTION_REMOVE", data, intent=intent)
                )
        elif removed:
            data = {
                "channel_id": str(message.channel_id),
                "message_id": str(message.id),
                "guild_id": str(self.world.guild_id),
            }
            event = "MESSAGE_REACTION_REMOVE_ALL"
            if emoji is not None:
                event = "MESSAGE_REACTION_REMOVE_EMOJI"
                data["emoji"] = emoji_object(emoji)
            await self.gateway.dispatch(Dispatch(event, data, intent=intent))
        self.notify()
        return 204, None

    async def _pin(self, call: Call) -> Reply:
        message = self._existing_message(call)
        message.payload["pinned"] = call.method == "PUT"
        return 204, None

    async def _create_thread(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        if channel.type not in (0, 5):
            raise ApiError(
                400,
                50024,
                "Cannot execute action on this channel type",
                violation=f"thread requested in channel {channel.id} of type {channel.type}",
            )
        body = call.body or {}
        source = None
        if "message_id" in call.params:
            source = self._existing_message(call)
            if source.payload.get("thread"):
                raise ApiError(
                    400,
                    160004,
                    "A thread has already been created for this message",
                    violation=f"second thread started from message {source.id}",
                )
            kind = 11
        else:
            kind = int(body.get("type") or 12)
        duration = int(body.get("auto_archive_duration") or 4320)
        thread = await self._open_thread(
            channel, self.bot_user, str(body["name"]), kind, source, duration
        )
        return 201, self.world.channel_payload(thread)

    async def _thread_member(self, call: Call) -> Reply:
        thread = self._existing_channel(call)
        if not thread.is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        raw_user = call.params.get("user_id")
        user_id = self.bot_user.id if raw_user is None else int(raw_user)
        members = self.thread_members.setdefault(thread.id, set())
        if call.method == "PUT":
            members.add(user_id)
        else:
            members.discard(user_id)
        return 204, None

    async def _typing(self, call: Call) -> Reply:
        channel = self._existing_channel(call)
        self.typing.append((channel.id, time.monotonic()))
        return 204, None

    async def _get_guild(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        payload = self.world.guild_payload()
        if call.flag("with_counts"):
            payload.update(
                approximate_member_count=len(self.world.members),
                approximate_presence_count=0,
            )
        return 200, payload

    async def _get_guild_channels(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        channels = [c for c in self.world.channels_by_id.values() if c.guild_id and not c.is_thread]
        return 200, [self.world.channel_payload(c) for c in channels]

    async def _get_roles(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        return 200, [r.payload() for r in self.world.roles.values()]

    async def _get_member(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        user = self.world.user(int(call.params["user_id"]))
        if user is None:
            raise ApiError(404, 10007, "Unknown Member")
        return 200, user.member_payload()

    async def _get_active_threads(self, call: Call) -> Reply:
        self._guild(call.params["guild_id"])
        threads = [t for t in self.threads if not t.archived]
        return 200, {"threads": [self.world.channel_payload(t) for t in threads], "members": []}

    # ------------------------------------------------------------ message model

    def _check_message_rules(
        self, body: Mapping[str, Any], files: list[UploadedFile], *, creating: bool
    ) -> None:
        """Apply Discord's documented message rules that the spec cannot express."""
        if creating and is_empty_message(body, files):
            raise ApiError(400, 50006, "Cannot send an empty message", violation="empty message")
        problems = message_rule_problems(body, content_limit=self.message_content_limit)
        if problems:
            raise ApiError(400, 50035, "Invalid Form Body", violation="; ".join(problems))

    def _new_message(
        self,
        channel: DoubleChannel,
        author: DoubleUser,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        kind: int | None = None,
        extra: Mapping[str, Any] | None = None,
        interaction_id: int | None = None,
    ) -> StoredMessage:
        message_id = self.ids.next()
        reference = body.get("message_reference")
        referenced = None
        if reference:
            referenced = self.messages.get(int(reference.get("message_id") or 0))
        flags = int(body.get("flags") or 0)
        payload: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "author": author.payload(),
            "content": body.get("content") or "",
            "timestamp": iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [normalise_embed(e) for e in body.get("embeds") or []],
            "pinned": False,
            "type": kind if kind is not None else (19 if referenced else 0),
            "flags": flags,
            "components": number_components(list(body.get("components") or [])),
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        if referenced is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(referenced.id),
                "channel_id": str(referenced.channel_id),
                **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
            }
            payload["referenced_message"] = referenced.payload
        if channel.is_thread:
            payload["position"] = channel.message_count
        payload.update(extra or {})
        message = StoredMessage(
            id=message_id,
            channel_id=channel.id,
            author_id=author.id,
            payload=payload,
            files=list(files),
            ephemeral=bool(flags & EPHEMERAL),
            interaction_id=interaction_id,
        )
        payload["attachments"] = [self._attachment(f) for f in files]
        self._refresh_mentions(message, body.get("allowed_mentions"), referenced)
        self.messages[message_id] = message
        if not message.ephemeral:
            channel.last_message_id = message_id
            if channel.is_thread:
                channel.message_count += 1
        return message

    def _interaction_metadata(self, record: InteractionRecord) -> dict[str, Any]:
        user = self._user(record.user_id)
        metadata: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "user": user.payload(),
            "authorizing_integration_owners": {"0": str(self.world.guild_id)},
        }
        if record.original is not None:
            metadata["original_response_message_id"] = str(record.original.id)
        if record.type == 2:
            metadata.update(name=str(record.payload["data"]["name"]), command_type=1)
        elif record.type == 3:
            metadata["interacted_message_id"] = str(record.payload["message"]["id"])
        elif record.type == 5 and record.triggered_by is not None:
            trigger = self.interactions[record.triggered_by]
            metadata["triggering_interaction_metadata"] = self._interaction_metadata(trigger)
        return metadata

    def _interaction_message(
        self, record: InteractionRecord, body: Mapping[str, Any], files: list[UploadedFile]
    ) -> StoredMessage:
        user = self._user(record.user_id)
        extra: dict[str, Any] = {
            "application_id": str(self.world.application_id),
            "webhook_id": str(self.world.application_id),
            "interaction_metadata": self._interaction_metadata(record),
        }
        if record.type == 2:
            extra["interaction"] = {
                "id": str(record.id),
                "type": 2,
                "name": str(record.payload["data"]["name"]),
                "user": user.payload(),
                "member": user.member_payload(with_user=False),
            }
        kind = 20 if record.type == 2 else 0
        channel = self.world.channels_by_id[record.channel_id]
        return self._new_message(
            channel, self.bot_user, body, files, kind=kind, extra=extra, interaction_id=record.id
        )

    def _apply_edit(
        self,
        message: StoredMessage,
        body: Mapping[str, Any],
        files: list[UploadedFile],
        *,
        finish_loading: bool = False,
    ) -> None:
        payload = message.payload
        if "content" in body:
            payload["content"] = body["content"] or ""
        if "embeds" in body:
            payload["embeds"] = [normalise_embed(e) for e in body["embeds"] or []]
        if "components" in body:
            payload["components"] = number_components(list(body["components"] or []))
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS can change on edit; ephemerality is fixed at creation.
            payload["flags"] = (payload["flags"] & ~(1 << 2)) | (int(body["flags"]) & (1 << 2))
        if "attachments" in body and body["attachments"] is not None:
            keep = {str(a.get("id")) for a in body["attachments"]}
            message.files = [f for f in message.files if str(f.id) in keep]
        message.files.extend(files)
        payload["attachments"] = [self._attachment(f) for f in message.files]
        if finish_loading and payload["flags"] & LOADING:
            payload["flags"] &= ~LOADING
        else:
            payload["edited_timestamp"] = iso()
            message.edit_times.append(time.monotonic())
        self._refresh_mentions(message, body.get("allowed_mentions"))

    def _refresh_mentions(
        self,
        message: StoredMessage,
        allowed: Mapping[str, Any] | None,
        referenced: StoredMessage | None = None,
    ) -> None:
        replied_author = None if referenced is None else self.world.user(referenced.author_id)
        users, roles, everyone = notified(self.world, message.content, allowed, replied_author)
        message.payload["mentions"] = [
            {**u.payload(), "member": u.member_payload(with_user=False)} for u in users
        ]
        message.payload["mention_roles"] = roles
        message.payload["mention_everyone"] = everyone

    def _attachment(self, upload: UploadedFile) -> dict[str, Any]:
        url = f"{self.base_url}/attachments/{upload.id}/{upload.filename}"
        return attachment_payload(upload, url=url)

    def _store_file(
        self, filename: str, data: bytes, content_type: str | None, description: str | None
    ) -> UploadedFile:
        if content_type == "application/octet-stream":
            content_type = None  # Discord sniffs the type itself; discord.py always sends this
        upload = UploadedFile(self.ids.next(), filename, data, content_type, description)
        self._files[upload.id] = upload
        return upload

    def _host(self, filename: str, data: bytes) -> UploadedFile:
        return self._store_file(filename, data, None, None)

    def _host_attachment(self, filename: str, data: bytes) -> dict[str, Any]:
        return self._attachment(self._host(filename, data))

    async def _dispatch_message(self, event: str, message: StoredMessage) -> None:
        if message.ephemeral:
            return  # ephemeral messages never reach the bot over the gateway
        channel = self.world.channels_by_id[message.channel_id]
        data = dict(message.payload)
        author = self.world.user(message.author_id)
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            if author is not None and message.payload.get("webhook_id") is None:
                data["member"] = author.member_payload(with_user=False)
        exempt = (
            message.author_id == self.bot_user.id
            or channel.type == 1
            or self.bot_user.id in message.pinged_user_ids
        )
        intent = DIRECT_MESSAGES if channel.type == 1 else GUILD_MESSAGES
        strip = None if exempt else strip_content
        await self.gateway.dispatch(Dispatch(event, data, intent=intent, strip_content=strip))
        self.notify()

    async def _delete(self, message: StoredMessage) -> None:
        message.deleted = True
        channel = self.world.channels_by_id[message.channel_id]
        if not message.ephemeral:
            data: dict[str, Any] = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild_id is not None:
                data["guild_id"] = str(channel.guild_id)
            intent = DIRECT_MESSAGES if channel.type == 1 else GUILD_MESSAGES
            await self.gateway.dispatch(Dispatch("MESSAGE_DELETE", data, intent=intent))
        self.notify()

    async def _react(self, user: DoubleUser, message: StoredMessage, emoji: str) -> Reaction:
        reaction = Reaction(message.id, message.channel_id, user.id, emoji)
        if reaction not in self.reactions:
            self.reactions.append(reaction)
            self._refresh_reactions(message)
            data = self._reaction_event(user, message, emoji)
            await self.gateway.dispatch(
                Dispatch("MESSAGE_REACTION_ADD", data, intent=self._reaction_intent(message))
            )
        self.notify()
        return reaction

    def _reaction_event(
        self, user: DoubleUser, message: StoredMessage, emoji: str
    ) -> dict[str, Any]:
        channel = self.world.channels_by_id[message.channel_id]
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(channel.id),
            "message_id": str(message.id),
            "message_author_id": str(message.author_id),
            "emoji": emoji_object(emoji),
            "burst": False,
            "type": 0,
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            data["member"] = user.member_payload()
        return data

    def _reaction_intent(self, message: StoredMessage) -> int:
        channel = self.world.channels_by_id[message.channel_id]
        return DIRECT_MESSAGE_REACTIONS if channel.type == 1 else GUILD_MESSAGE_REACTIONS

    def _refresh_reactions(self, message: StoredMessage) -> None:
        counts: dict[str, list[Reaction]] = {}
        for reaction in self.reactions:
            if reaction.message_id == message.id:
                counts.setdefault(reaction.emoji, []).append(reaction)
        message.payload["reactions"] = [
            {
                "count": len(rs),
                "count_details": {"burst": 0, "normal": len(rs)},
                "me": any(r.user_id == self.bot_user.id for r in rs),
                "me_burst": False,
                "burst_colors": [],
                "emoji": emoji_object(emoji),
            }
            for emoji, rs in counts.items()
        ]
        if not message.payload["reactions"]:
            del message.payload["reactions"]

    async def _open_thread(
        self,
        parent: DoubleChannel,
        owner: DoubleUser,
        name: str,
        kind: int,
        source: StoredMessage | None,
        duration: int,
    ) -> DoubleChannel:
        # A thread started from a message takes that message's id, as on Discord.
        thread_id = source.id if source is not None else self.ids.next()
        thread = self.world.add_channel(
            DoubleChannel(
                thread_id,
                name,
                kind,
                parent.guild_id,
                parent_id=parent.id,
                owner_id=owner.id,
                auto_archive_duration=duration,
            )
        )
        self.thread_members[thread.id] = {owner.id}
        payload = self.world.channel_payload(thread)
        payload["newly_created"] = True
        if owner.id == self.bot_user.id:
            payload["member"] = {
                "id": str(thread.id),
                "user_id": str(owner.id),
                "join_timestamp": iso(),
                "flags": 1,
            }
        if source is not None:
            source.payload["thread"] = self.world.channel_payload(thread)
            source.payload["flags"] = source.flags | HAS_THREAD
        await self.gateway.dispatch(Dispatch("THREAD_CREATE", payload, intent=GUILDS))
        self.notify()
        return thread

    async def _interact(
        self,
        kind: int,
        user: DoubleUser,
        channel: DoubleChannel,
        data: dict[str, Any],
        *,
        message: StoredMessage | None = None,
        triggered_by: InteractionRecord | None = None,
    ) -> InteractionRecord:
        if channel.guild_id is None:
            raise InvocationError("the double only sends interactions from guild channels")
        interaction_id = self.ids.next()
        token = f"aW50ZXJhY3Rpb24{secrets.token_urlsafe(48)}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(self.world.guild_id),
            "guild": {"id": str(self.world.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": self.world.interaction_channel_payload(channel, user),
            "member": {
                **user.member_payload(),
                "permissions": str(self.world.permissions(user)),
            },
            "token": token,
            "version": 1,
            "app_permissions": str(self.world.permissions(self.bot_user)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(self.world.guild_id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
        }
        if message is not None:
            payload["message"] = {**message.payload, "guild_id": str(self.world.guild_id)}
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=kind,
            user_id=user.id,
            channel_id=channel.id,
            payload=payload,
            triggered_by=None if triggered_by is None else triggered_by.id,
        )
        self.interactions[interaction_id] = record
        await self.gateway.dispatch(Dispatch("INTERACTION_CREATE", payload))
        self.notify()
        return record

    def _source_message(self, record: InteractionRecord) -> StoredMessage | None:
        raw = record.payload.get("message")
        return self.messages.get(int(raw["id"])) if raw else None

    # ---------------------------------------------------------------- lookups

    def _user(self, ref: DoubleUser | str | int) -> DoubleUser:
        if isinstance(ref, DoubleUser):
            return ref
        if isinstance(ref, str):
            return self.users[ref]
        user = self.world.user(ref)
        if user is None:
            raise KeyError(f"no member {ref}")
        return user

    def _channel(self, ref: int | str | DoubleChannel) -> DoubleChannel:
        if isinstance(ref, DoubleChannel):
            return ref
        if isinstance(ref, str):
            return self.channels[ref]
        return self.world.channels_by_id[ref]

    def _message(self, ref: StoredMessage | int) -> StoredMessage:
        return ref if isinstance(ref, StoredMessage) else self.messages[ref]

    def _existing_channel(self, call: Call) -> DoubleChannel:
        channel = self.world.channels_by_id.get(int(call.params["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _existing_message(self, call: Call) -> StoredMessage:
        channel = self._existing_channel(call)
        message = self.messages.get(int(call.params["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise ApiError(404, 10008, "Unknown Message")
        if message.ephemeral:
            raise ApiError(
                404,
                10008,
                "Unknown Message",
                violation="ephemeral messages can only be reached through the interaction webhook",
            )
        return message

    def _guild(self, raw: str) -> None:
        if int(raw) != self.world.guild_id:
            raise ApiError(404, 10004, "Unknown Guild")


def _json(status: int, data: Any) -> web.Response:
    # discord.py decodes JSON only when the content type is exactly application/json.
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json(status, {"message": message, "code": code})


def _invalid_form(problems: list[str]) -> web.Response:
    errors = {
        str(index): {"_errors": [{"code": "BASE_TYPE_INVALID", "message": problem}]}
        for index, problem in enumerate(problems)
    }
    return _json(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})


def _bucket(template: str) -> str:
    return hashlib.sha1(template.encode()).hexdigest()[:16]


def _add_rate_limit_headers(response: web.StreamResponse, template: str) -> None:
    response.headers.update(
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": _bucket(template),
        }
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
