"""Discord's rate limits: per-route buckets, the global limit, and the headers telling of them.

Discord counts requests per bucket: a route's limit, separate for each of its major
parameters (the channel, the server, or the webhook with its token). Every answer carries
the bucket's state (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``, ``-Reset-After``,
``-Bucket``), which discord.py reads to wait before it would run over. A request beyond a
bucket's limit, or beyond the bot's global 50 requests a second, is answered with 429,
``Retry-After`` and a body saying how long to wait and whether the limit was global.
Interaction callbacks and interaction webhooks do not count towards the global limit.

The limits below are those Discord documents or that bots observe; each bucket's window
opens with its first request and lasts ``per`` seconds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"
REACTION = MESSAGE + "/reactions/{emoji_name}"
CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
# Path parameters that make a bucket of their own, as Discord's "major parameters" do.
MAJOR_PARAMETERS = ("channel_id", "guild_id", "webhook_id", "webhook_token")


@dataclass(frozen=True)
class BucketRule:
    """A route's limit: LIMIT requests per PER seconds, counted apart per major parameter."""

    name: str
    limit: int
    per: float

    @property
    def hash(self) -> str:
        """Return the bucket's id as Discord sends it in X-RateLimit-Bucket."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:16]


# (method, route template) -> its bucket; routes sharing a rule's name share the bucket.
ROUTE_BUCKETS: dict[tuple[str, str], BucketRule] = {
    ("POST", "/channels/{channel_id}/messages"): BucketRule("message-create", 5, 5.0),
    ("PATCH", MESSAGE): BucketRule("message-edit", 5, 5.0),
    ("DELETE", MESSAGE): BucketRule("message-delete", 5, 1.0),
    ("PUT", REACTION + "/@me"): BucketRule("reaction", 1, 0.25),
    ("DELETE", REACTION + "/@me"): BucketRule("reaction", 1, 0.25),
    ("POST", "/channels/{channel_id}/typing"): BucketRule("typing", 5, 5.0),
    ("POST", "/channels/{channel_id}/threads"): BucketRule("thread-create", 5, 5.0),
    ("POST", WEBHOOK): BucketRule("webhook", 5, 2.0),
    ("PATCH", WEBHOOK + "/messages/@original"): BucketRule("webhook", 5, 2.0),
    ("PATCH", WEBHOOK + "/messages/{message_id}"): BucketRule("webhook", 5, 2.0),
    ("DELETE", WEBHOOK + "/messages/@original"): BucketRule("webhook", 5, 2.0),
    ("DELETE", WEBHOOK + "/messages/{message_id}"): BucketRule("webhook", 5, 2.0),
}
# Every other route: a generous bucket of its own per major parameter.
DEFAULT_BUCKET = 50, 1.0
GLOBAL_LIMIT = 50
GLOBAL_PER = 1.0
# Each answers one interaction, at most once: Discord counts them nowhere the bot could hit.
UNLIMITED_ROUTES = frozenset({("POST", CALLBACK)})


def bucket_rule(
    method: str, template: str, buckets: Mapping[tuple[str, str], BucketRule] = ROUTE_BUCKETS
) -> BucketRule:
    """Return the bucket a route counts in."""
    rule = buckets.get((method, template))
    if rule is not None:
        return rule
    limit, per = DEFAULT_BUCKET
    return BucketRule(f"{method} {template}", limit, per)


def counts_globally(template: str) -> bool:
    """Tell whether a route counts towards the bot's global limit."""
    return not template.startswith(("/interactions/", "/webhooks/"))


@dataclass
class _Window:
    opened: float
    used: int = 0


@dataclass(frozen=True)
class Verdict:
    """What the limiter says about one request: the headers to send, or a 429 to answer."""

    headers: Mapping[str, str] = field(default_factory=dict)
    refusal: dict[str, Any] | None = None

    @property
    def refused(self) -> bool:
        """Tell whether the request must be answered with 429."""
        return self.refusal is not None


class RateLimiter:
    """Count every request the bot makes, per bucket and globally, as Discord does."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        buckets: Mapping[tuple[str, str], BucketRule] | None = None,
        global_limit: int = GLOBAL_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = enabled
        self.buckets = {**ROUTE_BUCKETS, **(buckets or {})}
        self.global_limit = global_limit
        self._clock = clock
        self._wall_clock = wall_clock
        self._buckets: dict[tuple[str, tuple[str, ...]], _Window] = {}
        self._global: _Window | None = None
        # Every request let through: when, its bucket, major parameters, counted globally.
        self.log: list[tuple[float, str, tuple[str, ...], bool]] = []

    def take(self, method: str, template: str, params: Mapping[str, str]) -> Verdict:
        """Count one request and return its headers, or the 429 Discord would answer."""
        if not self.enabled or (method, template) in UNLIMITED_ROUTES:
            return Verdict()
        now = self._clock()
        rule = bucket_rule(method, template, self.buckets)
        major = tuple(params[name] for name in MAJOR_PARAMETERS if name in params)
        window = self._window(self._buckets.get((rule.name, major)), rule.per, now)
        self._buckets[(rule.name, major)] = window
        reset_after = window.opened + rule.per - now
        if window.used >= rule.limit:
            headers = self._headers(rule, 0, reset_after)
            return self._refuse(reset_after, scope="user", headers=headers)
        is_global = counts_globally(template)
        if is_global:
            self._global = self._window(self._global, GLOBAL_PER, now)
            if self._global.used >= self.global_limit:
                return self._refuse(self._global.opened + GLOBAL_PER - now, scope="global")
            self._global.used += 1
        window.used += 1
        self.log.append((now, rule.name, major, is_global))
        return Verdict(self._headers(rule, rule.limit - window.used, reset_after))

    @staticmethod
    def _window(window: _Window | None, per: float, now: float) -> _Window:
        if window is None or now >= window.opened + per:
            return _Window(opened=now)
        return window

    def _headers(self, rule: BucketRule, remaining: int, reset_after: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{self._wall_clock() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": rule.hash,
        }

    @staticmethod
    def _refuse(
        retry_after: float, *, scope: str, headers: Mapping[str, str] | None = None
    ) -> Verdict:
        retry_after = max(retry_after, 0.001)
        refusal_headers = {
            **(headers or {}),
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Scope": scope,
            # discord.py takes a 429 without Via for a Cloudflare ban.
            "Via": "1.1 google",
        }
        body: dict[str, Any] = {
            "message": "You are being rate limited.",
            "retry_after": round(retry_after, 3),
            "global": scope == "global",
        }
        if scope == "global":
            refusal_headers["X-RateLimit-Global"] = "true"
            body["code"] = 0
        return Verdict(refusal_headers, refusal=body)

    def busiest(self, rule_name: str, window: float) -> int:
        """Return the most requests one bucket of RULE_NAME took within any WINDOW seconds."""
        by_major: dict[tuple[str, ...], list[float]] = {}
        for at, name, major, _is_global in self.log:
            if name == rule_name:
                by_major.setdefault(major, []).append(at)
        return max((_densest(times, window) for times in by_major.values()), default=0)

    def busiest_overall(self, window: float) -> int:
        """Return the most requests counted globally within any WINDOW seconds."""
        return _densest([at for at, _name, _major, is_global in self.log if is_global], window)


def _densest(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
