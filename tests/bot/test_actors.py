from __future__ import annotations

from types import SimpleNamespace

import discord

from bot.discord.actors import actor_from_user


class FakeMember(discord.Member):
    """A Member without a gateway: just the fields actor_from_user reads."""

    def __init__(self, user_id: int, name: str, *, manage_guild: bool, roles: list[int]) -> None:
        self._fake = SimpleNamespace(
            id=user_id,
            display_name=name,
            guild_permissions=discord.Permissions(manage_guild=manage_guild),
            roles=[SimpleNamespace(id=r) for r in roles],
        )

    id = property(lambda self: self._fake.id)  # type: ignore[assignment]
    display_name = property(lambda self: self._fake.display_name)  # type: ignore[assignment]
    guild_permissions = property(lambda self: self._fake.guild_permissions)  # type: ignore[assignment]
    roles = property(lambda self: self._fake.roles)  # type: ignore[assignment]


def test_member_with_manage_server_is_a_moderator() -> None:
    actor = actor_from_user(FakeMember(5, "Mira", manage_guild=True, roles=[1, 77]))
    assert actor.user_id == 5 and actor.display_name == "Mira"
    assert actor.is_moderator
    assert actor.role_ids == frozenset({1, 77})


def test_member_without_manage_server_is_not_a_moderator() -> None:
    actor = actor_from_user(FakeMember(6, "Tom", manage_guild=False, roles=[77]))
    assert not actor.is_moderator and actor.role_ids == frozenset({77})


def test_plain_user_has_no_powers() -> None:
    user = discord.Object(id=7)
    user.display_name = "Suki"  # type: ignore[attr-defined]
    actor = actor_from_user(user)  # type: ignore[arg-type]
    assert actor.user_id == 7 and not actor.is_moderator and actor.role_ids == frozenset()
