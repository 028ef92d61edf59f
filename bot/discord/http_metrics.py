"""Count Discord's HTTP answers that an operator should see: 429s and failed message posts."""

from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp

from engine.telemetry.metrics import DISCORD_FAILED_POSTS, DISCORD_RATE_LIMITS

# Routes that post or edit a message: channel messages, interaction replies and follow-ups.
_MESSAGE_ROUTE = re.compile(
    r"/channels/\d+/messages(/\d+)?$"
    r"|/webhooks/\d+/[^/]+(/messages/(@original|\d+))?$"
    r"|/interactions/\d+/[^/]+/callback$"
)
_POSTING = frozenset({"POST", "PATCH"})


def _is_message_post(method: str, url: aiohttp.client.URL) -> bool:
    return method in _POSTING and _MESSAGE_ROUTE.search(url.path) is not None


async def _on_request_end(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    status = params.response.status
    if status == 429:
        # discord.py waits and retries these; many of them mean the bot edits too often.
        DISCORD_RATE_LIMITS.labels(
            params.response.headers.get("X-RateLimit-Scope", "unknown")
        ).inc()
    elif status >= 400 and _is_message_post(params.method, params.url):
        DISCORD_FAILED_POSTS.labels(str(status)).inc()


async def _on_request_exception(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestExceptionParams,
) -> None:
    if _is_message_post(params.method, params.url):
        DISCORD_FAILED_POSTS.labels("network").inc()


def discord_http_trace() -> aiohttp.TraceConfig:
    """Return the trace that discord.py's HTTP client runs every request through."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    trace.on_request_exception.append(_on_request_exception)
    return trace
