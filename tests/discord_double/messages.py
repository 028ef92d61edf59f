"""Discord's message rules and shapes: mentions, limits, embeds, components."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .models import DoubleUser, UploadedFile, walk_components
from .world import GuildWorld

MAX_EMBED_CHARACTERS = 6000
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def message_rule_problems(body: Mapping[str, Any], *, content_limit: int) -> list[str]:
    """List the ways a message body breaks Discord's documented rules beyond the spec."""
    problems = []
    content = body.get("content") or ""
    if len(content) > content_limit:
        problems.append(
            f"content: {len(content)} characters, more than Discord's "
            f"{content_limit}-character message limit"
        )
    total = sum(embed_characters(e) for e in body.get("embeds") or [])
    if total > MAX_EMBED_CHARACTERS:
        problems.append(f"embeds: {total} characters in all, over Discord's {MAX_EMBED_CHARACTERS}")
    allowed = body.get("allowed_mentions") or {}
    for kind in ("users", "roles"):
        if kind in (allowed.get("parse") or []) and allowed.get(kind):
            problems.append(
                f"allowed_mentions: parse {kind!r} and a {kind} list exclude each other"
            )
    return problems


def is_empty_message(body: Mapping[str, Any], files: Sequence[UploadedFile]) -> bool:
    """Tell whether a new message would have nothing to show."""
    keys = ("content", "embeds", "components", "sticker_ids", "poll")
    return not files and not any(body.get(key) for key in keys)


def notified(
    world: GuildWorld,
    content: str,
    allowed: Mapping[str, Any] | None,
    replied_author: DoubleUser | None,
) -> tuple[list[DoubleUser], list[str], bool]:
    """Work out whom a message notifies (users, role ids, @everyone) under allowed_mentions."""
    # Without allowed_mentions Discord parses every kind of mention and pings a replied user.
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
    listed_users = {int(u) for u in (allowed or {}).get("users") or []}
    listed_roles = {int(r) for r in (allowed or {}).get("roles") or []}
    users = []
    for raw in dict.fromkeys(_USER_MENTION.findall(content)):
        user = world.user(int(raw))
        if user is not None and ("users" in parse or user.id in listed_users):
            users.append(user)
    replied = allowed is None or bool(allowed.get("replied_user"))
    if replied_author is not None and replied and replied_author not in users:
        users.append(replied_author)
    roles = [
        raw
        for raw in dict.fromkeys(_ROLE_MENTION.findall(content))
        if "roles" in parse or int(raw) in listed_roles
    ]
    everyone = ("@everyone" in content or "@here" in content) and "everyone" in parse
    return users, roles, everyone


def attachment_descriptions(payload: Any) -> dict[int, str]:
    """Map file indexes to the descriptions given in a (callback) payload's attachments."""
    found: dict[int, str] = {}
    if isinstance(payload, dict):
        data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
        for item in (data or {}).get("attachments") or []:
            if isinstance(item, dict) and item.get("description") is not None:
                with contextlib.suppress(TypeError, ValueError):
                    found[int(item["id"])] = str(item["description"])
    return found


def emoji_object(raw: str) -> dict[str, Any]:
    """Turn an emoji from a URL (unicode, or name:id) into an emoji object."""
    name, _, emoji_id = raw.partition(":")
    return {"id": emoji_id or None, "name": name}


def normalise_embed(embed: Mapping[str, Any]) -> dict[str, Any]:
    """Return an embed as Discord echoes it back."""
    return {"type": "rich", **embed, "content_scan_version": 0}


def number_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy components, numbering those without an id as Discord does."""
    copied = json.loads(json.dumps(components))
    used = {c["id"] for c in walk_components(copied) if isinstance(c.get("id"), int)}
    counter = 1
    for component in walk_components(copied):
        if not isinstance(component.get("id"), int):
            while counter in used:
                counter += 1
            component["id"] = counter
            used.add(counter)
    return copied


def embed_characters(embed: Mapping[str, Any]) -> int:
    """Count the characters Discord's 6000-per-message embed limit counts."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for item in embed.get("fields") or []:
        total += len(item.get("name") or "") + len(item.get("value") or "")
    return total


def strip_content(data: dict[str, Any]) -> dict[str, Any]:
    """Blank what Discord withholds from a bot without the MESSAGE_CONTENT intent."""
    data.update(content="", embeds=[], attachments=[], components=[])
    data.pop("poll", None)
    return data
