"""Records the double keeps: users, channels, messages, interactions, requests."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000
EPHEMERAL = 1 << 6
LOADING = 1 << 7


class Snowflakes:
    """Hand out increasing snowflake ids carrying the current time, like Discord's."""

    def __init__(self) -> None:
        self._last = 0
        self._increment = itertools.count()

    def next(self) -> int:
        """Return a fresh id, strictly greater than any given before."""
        now_ms = int(time.time() * 1000)
        candidate = ((now_ms - DISCORD_EPOCH_MS) << 22) | (next(self._increment) & 0xFFF)
        self._last = max(candidate, self._last + 1)
        return self._last


def iso(moment: datetime | None = None) -> str:
    """Format a timestamp the way Discord does."""
    return (moment or datetime.now(UTC)).isoformat()


@dataclass
class DoubleUser:
    """A Discord account in the double's guild."""

    id: int
    username: str
    global_name: str | None
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    bot: bool = False
    joined_at: str = field(default_factory=iso)

    @property
    def display_name(self) -> str:
        """Return the name other members see in the guild."""
        return self.nick or self.global_name or self.username

    @property
    def mention(self) -> str:
        """Return the text that mentions this user."""
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        """Return the user object as the API serialises it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "primary_guild": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
            data["global_name"] = None
        return data

    def member_payload(self, *, with_user: bool = True) -> dict[str, Any]:
        """Return the guild member object (the user nested unless asked not to)."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
            "unusual_dm_activity_until": None,
        }
        if with_user:
            data["user"] = self.payload()
        return data


@dataclass
class Overwrite:
    """A channel's permission overwrite for one role (type 0) or one member (type 1)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> dict[str, Any]:
        """Return the overwrite object as the API serialises it."""
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass
class DoubleChannel:
    """A guild text channel, a thread, or a DM channel."""

    id: int
    name: str
    type: int = 0
    guild_id: int | None = None
    nsfw: bool = False
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    rate_limit_per_user: int = 0
    last_message_id: int | None = None
    message_count: int = 0
    recipient_ids: list[int] = field(default_factory=list)
    created_at: str = field(default_factory=iso)
    # Threads have none of their own: they follow their parent channel's.
    overwrites: list[Overwrite] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        """Tell whether this is a thread (public, private or announcement)."""
        return self.type in (10, 11, 12)

    @property
    def mention(self) -> str:
        """Return the text that links this channel."""
        return f"<#{self.id}>"


@dataclass(frozen=True)
class UploadedFile:
    """A file sent with a message: the bytes Discord would store on its CDN."""

    id: int
    filename: str
    content: bytes
    content_type: str | None = None
    description: str | None = None

    @property
    def text(self) -> str:
        """Decode the file as UTF-8 text."""
        return self.content.decode("utf-8")


@dataclass
class StoredMessage:
    """A message as the double keeps it, with its uploads and edit history."""

    id: int
    channel_id: int
    author_id: int
    payload: dict[str, Any]
    files: list[UploadedFile] = field(default_factory=list)
    ephemeral: bool = False
    deleted: bool = False
    interaction_id: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    edit_times: list[float] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]

    @property
    def content(self) -> str:
        """Return the message text."""
        return str(self.payload.get("content") or "")

    @property
    def flags(self) -> int:
        """Return the message flags (64 is ephemeral)."""
        return int(self.payload.get("flags") or 0)

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Return the embeds as sent."""
        return list(self.payload.get("embeds") or [])

    @property
    def components(self) -> list[dict[str, Any]]:
        """Return the component rows as sent."""
        return list(self.payload.get("components") or [])

    @property
    def pinged_user_ids(self) -> list[int]:
        """Return the users this message notified, after allowed_mentions."""
        return [int(u["id"]) for u in self.payload.get("mentions", [])]

    @property
    def pinged_everyone(self) -> bool:
        """Tell whether the message notified @everyone or @here."""
        return bool(self.payload.get("mention_everyone"))

    def edit_gaps(self) -> list[float]:
        """Return the seconds between consecutive edits, to check pacing."""
        return [later - earlier for earlier, later in itertools.pairwise(self.edit_times)]

    def file(self, filename: str) -> UploadedFile:
        """Return the uploaded file with this name."""
        for upload in self.files:
            if upload.filename == filename:
                return upload
        names = [f.filename for f in self.files]
        raise AssertionError(f"message {self.id} has no file {filename!r} (files: {names})")

    def custom_ids(self) -> list[str]:
        """List the custom_id of every component on the message."""
        return [c["custom_id"] for c in walk_components(self.components) if "custom_id" in c]


def walk_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten nested component trees (rows, sections, containers, labels)."""
    flat: list[dict[str, Any]] = []
    for component in components:
        flat.append(component)
        flat.extend(walk_components(list(component.get("components") or [])))
        for key in ("component", "accessory"):
            if isinstance(component.get(key), dict):
                flat.extend(walk_components([component[key]]))
    return flat


@dataclass
class CallbackRecord:
    """The initial response the bot gave to an interaction."""

    type: int
    data: dict[str, Any] | None
    at: float = field(default_factory=time.monotonic)

    @property
    def ephemeral(self) -> bool:
        """Tell whether the response was sent as ephemeral."""
        return bool(int((self.data or {}).get("flags") or 0) & EPHEMERAL)


@dataclass
class InteractionRecord:
    """An interaction the double dispatched and everything the bot answered."""

    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    payload: dict[str, Any]
    triggered_by: int | None = None
    created_at: float = field(default_factory=time.monotonic)
    callback: CallbackRecord | None = None
    original: StoredMessage | None = None
    followups: list[StoredMessage] = field(default_factory=list)

    @property
    def autocomplete_choices(self) -> list[dict[str, Any]]:
        """Return the choices sent for an autocomplete interaction."""
        if self.callback is None or self.callback.type != 8:
            raise AssertionError(f"interaction {self.id} got no autocomplete result")
        return list((self.callback.data or {}).get("choices") or [])

    @property
    def modal(self) -> dict[str, Any]:
        """Return the modal the bot opened in response."""
        if self.callback is None or self.callback.type != 9 or self.callback.data is None:
            raise AssertionError(f"interaction {self.id} was not answered with a modal")
        return self.callback.data


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the bot made."""

    method: str
    path: str
    template: str | None
    query: dict[str, str]
    body: Any
    status: int
    at: float


@dataclass(frozen=True)
class Reaction:
    """A reaction a user (or the bot) put on a message."""

    message_id: int
    channel_id: int
    user_id: int
    emoji: str


@dataclass
class RateLimitRule:
    """Answer the next matching requests with 429."""

    method: str
    template: str
    remaining: int
    retry_after: float
    is_global: bool
