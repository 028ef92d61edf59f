"""What a story needs in its channel, and how the bot names what is missing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord.permissions import (
    describe_refused_post,
    missing_message,
    missing_permissions,
    story_permissions,
)

INVITE = discord.Permissions(309237763136)


def labels(permissions: Any) -> list[str]:
    return [p.label for p in permissions]


def without(*names: str) -> discord.Permissions:
    held = discord.Permissions(INVITE.value)
    for name in names:
        setattr(held, name, False)
    return held


def test_the_invite_grants_everything_a_story_needs_anywhere() -> None:
    for in_thread, opens_thread in ((False, False), (True, False), (False, True)):
        needed = story_permissions(in_thread=in_thread, opens_thread=opens_thread)
        assert missing_permissions(INVITE, needed) == []


@pytest.mark.parametrize(
    ("in_thread", "opens_thread", "posting"),
    [
        (False, False, "Send Messages"),
        (True, False, "Send Messages in Threads"),
        (False, True, "Send Messages in Threads"),
    ],
)
def test_posting_needs_the_permission_of_where_the_story_is_played(
    in_thread: bool, opens_thread: bool, posting: str
) -> None:
    needed = labels(story_permissions(in_thread=in_thread, opens_thread=opens_thread))
    other = {"Send Messages", "Send Messages in Threads"} - {posting}
    assert posting in needed and not other & set(needed)
    assert ("Create Public Threads" in needed) == opens_thread


def test_only_what_is_missing_is_named() -> None:
    held = without("send_messages", "add_reactions")
    missing = missing_permissions(held, story_permissions(in_thread=False))
    assert labels(missing) == ["Send Messages", "Add Reactions"]
    # A story in a thread does not need Send Messages.
    assert labels(missing_permissions(held, story_permissions(in_thread=True))) == [
        "Add Reactions"
    ]
    text = missing_message(missing, in_thread=False)
    assert "**Send Messages** and **Add Reactions** in this channel" in text


def test_an_administrator_lacks_nothing() -> None:
    held = discord.Permissions(administrator=True)
    assert missing_permissions(held, story_permissions(in_thread=False, opens_thread=True)) == []


class FakeResponse:
    status = 403
    reason = "Forbidden"


def forbidden(code: int, message: str) -> discord.Forbidden:
    return discord.Forbidden(FakeResponse(), {"code": code, "message": message})  # type: ignore[arg-type]


def channel_with(held: discord.Permissions) -> Any:
    return SimpleNamespace(
        mention="<#5>", guild=SimpleNamespace(me=object()), permissions_for=lambda me: held
    )


@pytest.mark.parametrize(
    ("held", "named"),
    [
        # Discord takes embeds and files away with Send Messages: only the cause is named.
        (without("send_messages", "embed_links", "attach_files"), "Send Messages there"),
        (without("view_channel", "send_messages"), "View Channel there"),
        (without("add_reactions"), "Add Reactions there"),
    ],
)
def test_a_refused_post_names_what_takes_the_rest_away(
    held: discord.Permissions, named: str
) -> None:
    text = describe_refused_post(channel_with(held), forbidden(50013, "Missing Permissions"))
    assert text.startswith("I paused the story because I could not post in <#5>")
    assert f"I am missing {named}" in text and "`/story resume`" in text


def test_a_refused_post_with_nothing_missing_in_the_cache_reports_discords_error() -> None:
    access = describe_refused_post(channel_with(INVITE), forbidden(50001, "Missing Access"))
    assert "I can no longer see it (missing View Channel)" in access
    other = describe_refused_post(None, forbidden(50013, "Missing Permissions"))
    assert "the story's channel: Discord refused my message (Missing Permissions)" in other
